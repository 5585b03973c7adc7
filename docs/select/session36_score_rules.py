"""Session 36: does another image score than the max over the 34 regions rank the never-seen basis better?

The rules of ``benchmarks.score_rules`` (the paper's max, ``both_grids``, the mean of the top 2,
min of the two grids' maxima) plus a few more, on the enlarged never-seen basis (session 35's rule:
the evaluation-only non-text rejected at the threshold that keeps 95 % of the never-seen text of the
three pools), for students already scored by ``training.select``: their region probabilities are
read from its score cache (``--cache``), so nothing is run again. The figure per rule is the
basis's ranking figure; the dev F at the rule's own dev threshold (recall 0.96, the product's rule)
is printed beside it, since a rule that wins on the basis must still keep dev.

    PYTHONPATH=. python docs/select/session36_score_rules.py kdTuP20-s0=model/weights/student.pt \\
        kdTuP20-s2=runs/crossval/kdTuP20/dev-s2/student.pt ... --cache runs/score_cache
"""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks.score_rules import RULES
from model.preprocessing import preprocess_from_meta
from model.regions import grid_maxima
from model.registry import load_checkpoint
from training import metrics
from training.config import DataConfig, default_data_root
from training.data import load_records
from training.evaluate import ALL_SPLITS
from training.neverseen import threshold95
from training.score_cache import ScoreCache
from training.select import candidate_names, candidate_path

EXTRA_RULES = {
    "max of the 5x5 grid": lambda p: grid_maxima(p)[0],
    "max of the 3x3 grid": lambda p: grid_maxima(p)[1],
    "mean of the top 3": lambda p: np.sort(p, 1)[:, -3:].mean(1),
    "noisy OR": lambda p: 1 - np.exp(np.log1p(-np.clip(p, 0, 1 - 1e-6)).sum(1)),
}
ALL_RULES = {**RULES, **EXTRA_RULES}
POOLS = {"new": "/work/pool-new", "people4": "/work/pool-people4", "extra": "/work/pool-extra"}


def cached_probs(cache: ScoreCache, checkpoint: str, root: str, split: str, preprocess) -> dict:
    cfg = DataConfig(root=root)
    paths = [r.path for r in load_records(root, cfg.labels_file, None if split == ALL_SPLITS else split)]
    entry = cache.load(cache.key(checkpoint, cfg, split, preprocess), paths)
    if entry is None:
        raise SystemExit(f"{checkpoint} has no cached scores on {root} ({split}): score it with training.select first")
    return entry


def figures(checkpoint: str, cache: ScoreCache) -> dict[str, dict]:
    _, meta = load_checkpoint(checkpoint)
    pre = preprocess_from_meta(meta)
    dev = cached_probs(cache, checkpoint, default_data_root(), "dev", pre)
    pools = {name: cached_probs(cache, checkpoint, root, ALL_SPLITS, pre) for name, root in POOLS.items()}
    out = {}
    for rule, fn in ALL_RULES.items():
        d = fn(dev["probs"])
        thr = metrics.threshold_for_recall(d, dev["image_labels"], 0.96)
        score = {name: fn(e["probs"]) for name, e in pools.items()}
        text = np.concatenate([score[n][pools[n]["image_labels"] == 1] for n in POOLS])
        neg = score["new"][pools["new"]["image_labels"] == 0]
        out[rule] = {"rej95": float((neg < threshold95(text, neg)).mean()),
                     "dev_f": metrics.prf_at(d, dev["image_labels"], thr)["f1"], "n_text": len(text)}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("students", nargs="+", help="NAME=CHECKPOINT")
    ap.add_argument("--cache", default="runs/score_cache")
    args = ap.parse_args(argv)
    cache = ScoreCache(args.cache)
    rows = {name: figures(candidate_path(spec), cache) for name, spec in zip(candidate_names(args.students), args.students)}
    first = next(iter(rows.values()))
    print(f"never-seen basis ({first['max']['n_text']} text images): non-text rejected at recall 0.95 "
          f"(dev F at the rule's dev threshold, recall >= 0.96)\n")
    print("| rule | " + " | ".join(rows) + " | mean | vs max |")
    print("|---|" + "---|" * (len(rows) + 2))
    base = np.mean([r["max"]["rej95"] for r in rows.values()])
    for rule in ALL_RULES:
        vals = [r[rule]["rej95"] for r in rows.values()]
        cells = [f"{r[rule]['rej95']:.3f} ({r[rule]['dev_f']:.3f})" for r in rows.values()]
        print(f"| {rule} | " + " | ".join(cells) + f" | {np.mean(vals):.3f} | {np.mean(vals) - base:+.3f} |")


if __name__ == "__main__":
    main()
