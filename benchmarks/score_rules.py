"""Image scores from the 34 region probabilities: the paper's max (logical OR) against rules
that ask both grids to see text.

    python -m benchmarks.score_rules --checkpoint model/weights/student.pt [--splits dev train]

Prints, per rule and split, AP and F / non-text rejection at the thresholds for recall 0.95
and 0.96 (chosen on that split). ``max`` and ``both_grids`` are the rules of
``model.regions.SCORE_RULES`` (a checkpoint's ``meta["score_rule"]`` picks one for the
pipeline); the others are candidates, measured here only.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from model.preprocessing import preprocess_from_meta
from model.registry import load_checkpoint
from model.regions import SCORE_RULES, grid_maxima
from training import metrics
from training.config import DataConfig
from training.evaluate import evaluate_model

RULES = {
    **SCORE_RULES,
    "mean of the top 2": lambda p: np.sort(p, 1)[:, -2:].mean(1),
    "min(max 5x5, max 3x3)": lambda p: np.minimum(*grid_maxima(p)),
}


def rule_figures(probs: np.ndarray, labels: np.ndarray, recalls=(0.95, 0.96)) -> dict[str, dict]:
    """{rule: {"ap": .., "r0.95": prf_at(..), ...}} for (n, 34) region probabilities."""
    out = {}
    for name, rule in RULES.items():
        scores = rule(probs)
        out[name] = {"ap": metrics.average_precision(scores, labels)}
        for r in recalls:
            out[name][f"r{r}"] = metrics.prf_at(scores, labels, metrics.threshold_for_recall(scores, labels, r))
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="model/weights/student.pt")
    parser.add_argument("--splits", nargs="+", default=["dev"])
    parser.add_argument("--root", default=DataConfig().root)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model, meta = load_checkpoint(args.checkpoint)
    results = {}
    print(f"{args.checkpoint}: AP, and F / rejection at the thresholds for recall 0.95 and 0.96")
    for split in args.splits:
        pred = evaluate_model(model, DataConfig(root=args.root), split, preprocess=preprocess_from_meta(meta))
        results[split] = rule_figures(pred["probs"], pred["image_labels"])
        for name, fig in results[split].items():
            print(f"  {split:<6}{name:<26} AP {fig['ap']:.4f}   r0.95: F {fig['r0.95']['f1']:.3f} rejection "
                  f"{fig['r0.95']['rejection']:.3f}   r0.96: F {fig['r0.96']['f1']:.3f} rejection "
                  f"{fig['r0.96']['rejection']:.3f}")
    return results


if __name__ == "__main__":
    main()
