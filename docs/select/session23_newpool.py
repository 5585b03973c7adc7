"""Session 23: students on the evaluation-only collections (never trained on, /work/pool-new:
weather, face-masks, clothing, sr-benchmarks*), beside the labelled pool (/work/pool-unl).

Usage: PYTHONPATH=. python docs/select/session23_newpool.py runs/select23a runs/select23n
(two training.select --out folders: the pool, then the evaluation-only pool, same candidates).

Per candidate: non-text of the new collections rejected (a) at the candidate's own dev
threshold (recall 0.96 on dev: the product's rule), (b) at the threshold for recall 0.95 on
every text image of both pools (free of the dev threshold's noise); recall of both pools' text
at the dev threshold; per recipe (name before -sN; shipped counts as wide104) the mean ± half
the range over seeds. The text-line strips of ocrd-documents are left out of the text unless
--keep_lines.
--text_without SRC,SRC leaves those pool collections' text out of that threshold (session 26: text
whose collections a candidate saw unlabelled images of).
--audit TSV relabels the images it lists (training.collections.audit's format; label 0 rows) as non-text before anything
is computed (session 30: docs/select/session30-audit.tsv, 29 "text" labels that are OCR artifacts)."""
import collections
import json
import os
import sys

import numpy as np

from session23_subsets import kept, mean_spread, recipe_of  # this script's folder is on sys.path when it runs
from training import metrics
from training.collections import audit
from training.collections.manifest import load_manifests


def read_audit(path):
    """The pool paths of the images an audit file (training.collections.audit) calls non-text."""
    rows = [r for r in audit.read_audit(path) if r.label == 0]
    manifests = {m.name: m for m in load_manifests(names={r.collection for r in rows})}
    return {manifests[r.collection].stored_path(r.path) for r in rows}


def load(folder, name, keep_lines=True, non_text=frozenset()):
    z = np.load(f"{folder}/{name}_scores.npz")
    keep = kept(z, keep_lines)
    labels = np.where(np.isin(z["paths"], list(non_text)), 0, z["labels"])
    return z["scores"][keep], labels[keep], z["sources"][keep]


def main(unl_dir, new_dir, keep_lines=False, text_without=(), non_text=frozenset()):
    cands = json.load(open(f"{new_dir}/select.json"))["candidates"]
    rows, groups = [], collections.defaultdict(list)
    for name, c in cands.items():
        sn, yn, srcn = load(new_dir, name, non_text=non_text)
        # a candidate trained on the pool (not in unl_dir) is judged on the new collections' text alone
        seen = not os.path.exists(f"{unl_dir}/{name}_scores.npz")
        su, yu, srcu = (sn[:0], yn[:0], srcn[:0]) if seen else load(unl_dir, name, keep_lines, non_text)
        use = ~np.isin(srcu, list(text_without))
        su, yu = su[use], yu[use]
        t_dev = c["threshold"]
        text = np.concatenate([su[yu == 1], sn[yn == 1]])
        t95 = metrics.threshold_for_recall(np.concatenate([text, sn[yn == 0]]),
                                           np.concatenate([np.ones(len(text)), np.zeros((yn == 0).sum())]), 0.95)
        neg = sn[yn == 0]
        row = {"name": name + (" (pool-trained: new text only)" if seen else ""),
               "rej_dev": float((neg < t_dev).mean()), "rej95": float((neg < t95).mean()),
               "recall_dev": float((text >= t_dev).mean()),
               "by_source": {s: float((sn[(yn == 0) & (srcn == s)] < t_dev).mean()) for s in sorted(set(srcn))}}
        rows.append(row)
        groups[recipe_of(name)].append(row)
    srcs = sorted(rows[0]["by_source"])
    print("| candidate | new non-text rejected at dev threshold | at recall 0.95 on both pools' text | text recall at dev threshold | "
          + " | ".join(srcs) + " |")
    print("|---" * (4 + len(srcs)) + "|")
    for r in rows:
        print(f"| {r['name']} | {r['rej_dev']:.3f} | {r['rej95']:.3f} | {r['recall_dev']:.3f} | "
              + " | ".join(f"{r['by_source'][s]:.3f}" for s in srcs) + " |")
    print()
    print("| recipe | n | rejected at dev threshold | rejected at recall 0.95 | text recall at dev threshold |")
    print("|---|---|---|---|---|")
    for key, rs in groups.items():
        cells = [mean_spread(r[k] for r in rs) for k in ("rej_dev", "rej95", "recall_dev")]
        print(f"| {key} | {len(rs)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    without = sys.argv[sys.argv.index("--text_without") + 1].split(",") if "--text_without" in sys.argv else ()
    audited = read_audit(sys.argv[sys.argv.index("--audit") + 1]) if "--audit" in sys.argv else frozenset()
    main(*sys.argv[1:3], keep_lines="--keep_lines" in sys.argv, text_without=without, non_text=audited)
