"""Session 23: session 22's per-kind table again, without the 200 text-line strips of
ocrd-documents (`linegt/`: single printed lines, ~800x40 px, stretched to 341x256 by the fixed
input shape; no crawl holds such images, and their low scores set the six collections' recall-0.95
threshold for every student).

Usage: PYTHONPATH=. python docs/select/session23_subsets.py runs/select23p [--keep_lines]"""
import collections
import glob
import sys

import numpy as np

from training import metrics
from training.neverseen import kept, mean_spread, recipe_of

SIX = {"autnt-nontext", "dtd-textures", "sign-digits", "mattermost-ui", "ocrd-documents", "sroie-receipts"}


def fig(s, y):
    t = metrics.threshold_for_recall(s, y, 0.95)
    return metrics.prf_at(s, y, t)["rejection"], metrics.average_precision(s, y)


def main(folder, keep_lines=False):
    groups = collections.defaultdict(list)
    for f in sorted(glob.glob(f"{folder}/*_scores.npz")):
        name = f.split("/")[-1][:-len("_scores.npz")]
        z = np.load(f)
        keep = kept(z, keep_lines)
        s, y, src = z["scores"][keep], z["labels"][keep], z["sources"][keep]
        six = np.isin(src, list(SIX))
        groups[recipe_of(name)].append([fig(s, y), fig(s[six], y[six]), fig(s[~six], y[~six])])
    print("| recipe | n | all: rej@r95 | AP | 6 collections: rej@r95 | AP | 7 collections: rej@r95 | AP |")
    print("|---|---|---|---|---|---|---|---|")
    for key, rows in groups.items():
        cells = []
        for k in range(3):
            r = [row[k][0] for row in rows]
            a = [row[k][1] for row in rows]
            cells += [mean_spread(r), f"{np.mean(a):.4f}"]
        print(f"| {key} | {len(rows)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1], "--keep_lines" in sys.argv)
