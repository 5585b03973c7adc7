"""Session 26: the blind confirmation of a student picked on the pool (docs/select/session26-rule.md).

Usage: PYTHONPATH=. python docs/select/session26_confirm.py runs/select26 runs/select26n runs/select26p \
    kdT-s0 shipped
(training.select --out folders of the pool, the evaluation-only pool and the confirmation pool, with
both candidates in each; the candidate, then the student it must beat).

Per student: the threshold for recall 0.95 on the text of all three pools (the pool's text-line strips
left out), the confirmation pool's non-text rejected there, overall and per collection, and its AP on
the confirmation pool; the same at the student's own dev threshold (the product's operating point).
The difference of the two rejections comes with a 95 % paired bootstrap interval: 1,000 resamples of
the confirmation pool's non-text and of the text, the same images for both students."""
import json
import sys

import numpy as np

from session23_newpool import load  # this script's folder is on sys.path when it runs
from training import metrics


def at_recall95(text, neg):
    """(threshold, non-text rejected) at the threshold for recall 0.95 on ``text``."""
    return metrics.rejection_at_recall(np.concatenate([text, neg]),
                                       np.concatenate([np.ones(len(text)), np.zeros(len(neg))]), 0.95)


def main(unl_dir, new_dir, conf_dir, cand, base, resamples=1000, seed=0):
    text, neg, figs = {}, {}, {}
    dev_thresholds = {n: c["threshold"] for n, c in json.load(open(f"{conf_dir}/select.json"))["candidates"].items()}
    for name in (cand, base):
        parts = [load(d, name, keep_lines=False) for d in (unl_dir, new_dir, conf_dir)]
        s, y, src = parts[2]
        text[name] = np.concatenate([p[0][p[1] == 1] for p in parts])
        neg[name] = s[y == 0]
        t95, rej95 = at_recall95(text[name], neg[name])
        t_dev = dev_thresholds[name]
        figs[name] = {"rej95": rej95, "ap": metrics.average_precision(s, y),
                      "by_source": {c: float((s[(y == 0) & (src == c)] < t95).mean()) for c in sorted(set(src[y == 0]))},
                      "dev_threshold": t_dev, "recall_dev": float((text[name] >= t_dev).mean()),
                      "rej_dev": float((neg[name] < t_dev).mean())}
    rng = np.random.default_rng(seed)
    n_text, n_neg = len(text[cand]), len(neg[cand])
    diffs = []
    for _ in range(resamples):
        it, ineg = rng.integers(0, n_text, n_text), rng.integers(0, n_neg, n_neg)
        diffs.append(at_recall95(text[cand][it], neg[cand][ineg])[1] - at_recall95(text[base][it], neg[base][ineg])[1])
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    print(f"Confirmation pool {conf_dir}: {n_neg} non-text; text of the three pools: {n_text}\n")
    srcs = sorted(figs[cand]["by_source"])
    print("| student | rejected at recall 0.95 | AP | " + " | ".join(srcs)
          + " | dev threshold | text recall there | rejected there |")
    print("|---" * (6 + len(srcs)) + "|")
    for name in (cand, base):
        f = figs[name]
        print(f"| {name} | {f['rej95']:.3f} | {f['ap']:.4f} | " + " | ".join(f"{f['by_source'][c]:.3f}" for c in srcs)
              + f" | {f['dev_threshold']:.4f} | {f['recall_dev']:.3f} | {f['rej_dev']:.3f} |")
    d = figs[cand]["rej95"] - figs[base]["rej95"]
    print(f"\n{cand} - {base}: {d:+.3f} rejected at recall 0.95, 95 % paired bootstrap interval "
          f"[{lo:+.3f}, {hi:+.3f}] ({resamples} resamples); AP {figs[cand]['ap'] - figs[base]['ap']:+.4f}")


if __name__ == "__main__":
    main(*sys.argv[1:6])
