"""Session 22: per recipe (candidate name prefix before -s or _x): mean ± half-range of rejection at recall 0.95 and AP,
Usage: PYTHONPATH=. python docs/select/session22_subsets.py runs/select22e  (a training.select --out folder)
on the whole pool, on the 6 collections with no unlabelled remainder, and on the 7 with one."""
import sys, glob, collections
import numpy as np
from training import metrics
SIX = {"autnt-nontext", "dtd-textures", "sign-digits", "mattermost-ui", "ocrd-documents", "sroie-receipts"}
def fig(z, mask):
    s, y = z["scores"][mask], z["labels"][mask]
    t = metrics.threshold_for_recall(s, y, 0.95)
    return metrics.prf_at(s, y, t)["rejection"], metrics.average_precision(s, y)
groups = collections.defaultdict(list)
for f in sorted(glob.glob(f"{sys.argv[1]}/*_scores.npz")):
    name = f.split("/")[-1][:-len("_scores.npz")]
    z = np.load(f); src = z["sources"]
    six = np.isin(src, list(SIX))
    seven = ~six
    key = name.rsplit("-s", 1)[0] if "-s" in name and name.rsplit("-s", 1)[1].isdigit() else name
    if name == "shipped": key = "wide104"
    groups[key].append((name, fig(z, np.ones(len(src), bool)), fig(z, six), fig(z, seven)))
print("| recipe | n | all: rej@r95 | AP | 6 collections: rej@r95 | AP | 7 collections: rej@r95 | AP |")
print("|---|---|---|---|---|---|---|---|")
for key, rows in groups.items():
    cells = []
    for k in (1, 2, 3):
        r = [row[k][0] for row in rows]; a = [row[k][1] for row in rows]
        cells += [f"{np.mean(r):.3f} ± {(max(r)-min(r))/2:.3f}" if len(r) > 1 else f"{r[0]:.3f}", f"{np.mean(a):.4f}"]
    print(f"| {key} | {len(rows)} | " + " | ".join(cells) + " |")
