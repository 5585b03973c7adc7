"""Session 26: does a student's figure on the pool predict its figure on the evaluation-only
collections? Over every dev-fold student of session 25 (26 students, 8 recipes): the pool's
non-text rejected at recall 0.95 (training.select on /work/pool-unl, 13 collections none of them
trained on: ``rejection_here`` of its select.json) against the evaluation-only figure
(rejected at recall 0.95 on both pools' text: session23_newpool.py's table).

Usage: PYTHONPATH=. python docs/select/session26_pool_vs_new.py docs/select/session25.json docs/select/session25-new.md"""
import json
import re
import sys

import numpy as np

from training.select import rank_correlation


def main(pool_json, new_md):
    pool = json.load(open(pool_json))["candidates"]
    new = {}
    for line in open(new_md):
        m = re.match(r"\| (shipped|\S+-s\d+) \| [\d.]+ \| ([\d.]+) \|", line)
        if m:
            new[m.group(1)] = float(m.group(2))
    names = sorted((n for n in pool if n in new), key=lambda n: -pool[n]["rejection_here"])
    x = np.array([pool[n]["rejection_here"] for n in names])
    ap = np.array([pool[n]["ap"] for n in names])
    y = np.array([new[n] for n in names])
    print(f"{len(names)} students. Pool rej@r95 against evaluation-only rej@r95: Pearson "
          f"{np.corrcoef(x, y)[0, 1]:.2f}, Spearman {rank_correlation(x, y):.2f}; pool AP against "
          f"it: Spearman {rank_correlation(ap, y):.2f}\n")
    print("| student | pool: rej@r95 | pool: AP | evaluation-only: rej@r95 |")
    print("|---|---|---|---|")
    for n, a, b, c in zip(names, x, ap, y):
        print(f"| {n} | {a:.3f} | {b:.3f} | {c:.3f} |")


if __name__ == "__main__":
    main(*sys.argv[1:3])
