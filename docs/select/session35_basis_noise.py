"""Session 35: how much of each recipe's figure on the never-seen basis is the images' chance.

For every training.select pair of folders on disk (sessions 32-35), a paired bootstrap over the
basis's images (``training.neverseen.bootstrap_noise``): per recipe, the mean over its scored
seeds of the difference from kdTuP20-s0 (the shipped student) and the sd of that mean over the
resamples. Seeds vary the training; the bootstrap varies only which images the basis holds.
The second table asks whether another figure of the same scores is less noisy: non-text
rejected at recall 0.95 (the rule's), at recall 0.90, averaged over recall 0.90-0.98, and the
AUC (text above non-text), each with the bootstrap sd of the 4-seed mean difference and the
seeds' half-range.

    PYTHONPATH=. python docs/select/session35_basis_noise.py > docs/select/session35-basis-noise-tables.md
    PYTHONPATH=. python docs/select/session35_basis_noise.py runs extra > docs/select/session35-basis-noise-extra.md

With ``extra`` the text of session 35's extra-text pool (``build --eval_pool extra-text``, scored by
training.select into ``<folder>-extra``) joins the threshold (``training.neverseen --extra_text``).
"""

import json
import sys

import numpy as np

from training.neverseen import basis_scores, bootstrap_noise, recipe_bootstrap, recipe_of

FOLDERS = ["select32-kdTuP20w96", "select33-kdTuP20v", "select33-kdTuP20d", "select34-kdTuP20vm", "select35-kdTuP20t"]
REFERENCE = "kdTuP20-s0"
FIGURES = ("recall 0.95", "recall 0.90", "recall 0.90-0.98", "AUC")


def figures(text: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """The four figures of FIGURES for one candidate (quantile thresholds: fast enough to bootstrap)."""
    def rejected(recall):
        return (neg < np.quantile(text, 1 - recall)).mean()
    auc = np.searchsorted(np.sort(neg), text).mean() / len(neg)
    return np.array([rejected(0.95), rejected(0.90), np.mean([rejected(r) for r in np.linspace(0.90, 0.98, 9)]), auc])


def folders(root, extra=False):
    for folder in FOLDERS:
        text_dir, eval_dir = f"{root}/{folder}-people4", f"{root}/{folder}-new"
        yield (text_dir, eval_dir, list(json.load(open(f"{eval_dir}/select.json"))["candidates"]),
               [f"{root}/{folder}-extra"] if extra else [])


def rule_table(root, resamples, extra=False):
    print("| recipe | seeds | mean difference from kdTuP20-s0 | its bootstrap sd | per seed: difference (sd) |")
    print("|---|---|---|---|---|")
    for text_dir, eval_dir, names, extra_text in folders(root, extra):
        noise = bootstrap_noise(text_dir, eval_dir, names, REFERENCE, resamples, keep_draws=True, extra_text=extra_text)
        seeds = [n for n in names if n != REFERENCE]
        (recipe, mean), = recipe_bootstrap(noise, [{"name": n, "recipe": recipe_of(n)} for n in names],
                                           recipe_of(REFERENCE)).items()
        per_seed = ", ".join(f"{noise[n]['diff']:+.3f} ({noise[n]['diff_sd']:.3f})" for n in seeds)
        print(f"| {recipe} | {len(seeds)} | {mean['diff']:+.3f} | {mean['sd']:.3f} | {per_seed} |")
    print(f"\nkdTuP20-s0 itself: {noise[REFERENCE]['rej95']:.3f}, bootstrap sd {noise[REFERENCE]['sd']:.3f}.")


def figure_table(root, resamples, extra=False):
    rng = np.random.default_rng(0)
    print("\n| recipe | " + " | ".join(f"{f}: mean diff / boot sd / seed half-range" for f in FIGURES) + " |")
    print("|---" * (1 + len(FIGURES)) + "|")
    for text_dir, eval_dir, names, extra_text in folders(root, extra):
        bases = {n: basis_scores(text_dir, eval_dir, n, extra_text=extra_text) for n in names}
        texts = {n: np.concatenate([s for s, _ in b["text"].values()]) for n, b in bases.items()}  # none trained on them
        n_eval, n_text = len(bases[REFERENCE]["eval"][0]), len(texts[REFERENCE])

        def of(name, ie, it):
            sn, yn = bases[name]["eval"][0][ie], bases[name]["eval"][1][ie]
            return figures(np.concatenate([texts[name][it], sn[yn == 1]]), sn[yn == 0])

        seeds = [n for n in names if n != REFERENCE]
        full = {n: of(n, np.arange(n_eval), np.arange(n_text)) for n in bases}
        draws = []
        for _ in range(resamples):
            ie, it = rng.integers(0, n_eval, n_eval), rng.integers(0, n_text, n_text)
            v = {n: of(n, ie, it) for n in bases}
            draws.append(np.mean([v[n] - v[REFERENCE] for n in seeds], axis=0))
        diff = np.mean([full[n] - full[REFERENCE] for n in seeds], axis=0)
        sd = np.std(draws, axis=0, ddof=1)
        per_seed = np.array([full[n] for n in seeds])
        half = (per_seed.max(0) - per_seed.min(0)) / 2
        print(f"| {recipe_of(seeds[0])} ({len(seeds)}) | "
              + " | ".join(f"{d:+.3f} / {s:.3f} / {h:.3f}" for d, s, h in zip(diff, sd, half)) + " |")


if __name__ == "__main__":
    root = sys.argv[1] if len(sys.argv) > 1 else "runs"
    extra = sys.argv[2:3] == ["extra"]
    rule_table(root, 400, extra)
    figure_table(root, 300, extra)
