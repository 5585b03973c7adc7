"""Session 23: session 22's per-kind table again, without the 200 text-line strips of
ocrd-documents (`linegt/`: single printed lines, ~800x40 px, stretched to 341x256 by the fixed
input shape; no crawl holds such images, and their low scores set the six collections' recall-0.95
threshold for every student).

Usage: PYTHONPATH=. python docs/select/session23_subsets.py runs/select23p [--keep_lines]"""
import collections
import glob
import re
import sys

import numpy as np

from training import metrics

SIX = {"autnt-nontext", "dtd-textures", "sign-digits", "mattermost-ui", "ocrd-documents", "sroie-receipts"}
LINES = "/linegt/"  # the text-line strips' folder


def kept(z, keep_lines=False):
    """Which rows of a training.select score file to use: all, or all but the text-line strips."""
    return np.ones(len(z["scores"]), bool) if keep_lines else np.char.find(z["paths"].astype(str), LINES) < 0


def recipe_of(name):
    """The recipe of a candidate: the name before -sN (seed) or -bBASE (a base's soup or fine-tune);
    the shipped student is one of wide104's."""
    if name == "shipped":
        return "wide104"
    m = re.match(r"^(.*)-(s\d+|b(?:shipped|s\d+))$", name)
    return m.group(1) if m else name


def mean_spread(values) -> str:
    """"mean ± half the range" of a recipe's per-seed figures (one seed: the figure alone)."""
    v = list(values)
    return f"{np.mean(v):.3f} ± {(max(v) - min(v)) / 2:.3f}" if len(v) > 1 else f"{v[0]:.3f}"


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
