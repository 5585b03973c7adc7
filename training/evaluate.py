"""Evaluate a checkpoint on a split: image-level P/R/F, the operating threshold, per source.

    python -m training.evaluate --checkpoint model/weights/student.pt [--split dev]
        [--target_recall 0.95] [--write_threshold] [--plots DIR]

The image score is the largest region probability (``model.regions.image_score``). The
operating threshold is the one with the highest precision whose recall is at least
``--target_recall``; ``--write_threshold`` stores it, the target and the figures in the
checkpoint's ``meta`` (where the pipeline reads it). A PR curve and the score histograms
are saved as a PNG next to the checkpoint (or in ``--plots``), the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch

from model.registry import load_checkpoint, read_checkpoint, save_checkpoint
from model.regions import image_score
from training import metrics
from training.cli import add_config_args, config_from_args
from training.config import DataConfig
from training.data import TextFilterDataset, batches
from training.engine import predict

log = logging.getLogger(__name__)


def evaluate_predictions(pred: dict, threshold: float | None = None, target_recall: float = 0.95) -> dict:
    """Figures of ``engine.predict``'s output, at ``threshold`` or, when None, at the
    threshold chosen for ``target_recall``."""
    scores = image_score(pred["probs"])
    labels = pred["image_labels"]
    chosen = metrics.threshold_for_recall(scores, labels, target_recall)
    threshold = chosen if threshold is None else threshold
    return {
        "n": int(len(labels)),
        "n_text": int(labels.sum()),
        "target_recall": target_recall,
        "threshold_for_target": chosen,
        "at_threshold": metrics.prf_at(scores, labels, threshold),
        "at_0.5": metrics.prf_at(scores, labels, 0.5),
        "average_precision": metrics.average_precision(scores, labels),
        "region_average_precision": metrics.region_average_precision(pred["probs"], pred["labels"]),
        "ece": metrics.expected_calibration_error(scores, labels),
        "per_source": metrics.per_source(scores, labels, pred["sources"], threshold),
    }


def evaluate_model(model: torch.nn.Module, data_cfg: DataConfig, split: str, batch_size: int = 32) -> dict:
    """``engine.predict`` on every image of ``split``, decoded exactly as the pipeline does."""
    dataset = TextFilterDataset.for_split(data_cfg, split, train=False)
    if not len(dataset):
        raise ValueError(f"split {split!r} has no records under {data_cfg.root}")
    return predict(model, batches(dataset, dataset.items(), batch_size))


def format_report(figures: dict, title: str) -> str:
    """The figures as a plain-text table."""
    a = figures["at_threshold"]
    lines = [
        title,
        f"  images {figures['n']} (text {figures['n_text']}), AP {figures['average_precision']:.4f}, "
        f"region AP {figures['region_average_precision']:.4f}, ECE {figures['ece']:.4f}",
        f"  {'operating point':<28}{'thr':>8}{'P':>8}{'R':>8}{'F':>8}{'reject':>8}{'FP':>6}{'FN':>6}",
    ]
    for name, row in (("at threshold", a), ("at 0.5", figures["at_0.5"])):
        lines.append(f"  {name:<28}{row['threshold']:>8.4f}{row['precision']:>8.4f}{row['recall']:>8.4f}"
                     f"{row['f1']:>8.4f}{row['rejection']:>8.4f}{row['fp']:>6}{row['fn']:>6}")
    lines.append(f"  (threshold for recall >= {figures['target_recall']}: {figures['threshold_for_target']:.4f})")
    lines.append(f"  {'source':<36}{'n':>6}  {'metric':<10}{'rate':>8}")
    for src, row in figures["per_source"].items():
        lines.append(f"  {src:<36}{row['n']:>6}  {row['metric']:<10}{row['rate']:>8.4f}")
    return "\n".join(lines)


def save_plots(pred: dict, figures: dict, path: Path) -> None:
    """PR curve (operating point marked) and score histograms per class, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores, labels = image_score(pred["probs"]), pred["image_labels"].astype(bool)
    curve = metrics.pr_curve(scores, labels)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(curve["recall"], curve["precision"], lw=1.5)
    a = figures["at_threshold"]
    ax1.plot([a["recall"]], [a["precision"]], "o", color="C3", label=f"thr {a['threshold']:.3f}")
    ax1.set(xlabel="recall", ylabel="precision", xlim=(0, 1.01), ylim=(0, 1.01),
            title=f"PR, AP {figures['average_precision']:.3f}")
    ax1.grid(alpha=0.3)
    ax1.legend(loc="lower left")
    bins = np.linspace(0, 1, 41)
    ax2.hist(scores[labels], bins=bins, alpha=0.6, label="text")
    ax2.hist(scores[~labels], bins=bins, alpha=0.6, label="non-text")
    ax2.axvline(a["threshold"], color="C3", ls="--")
    ax2.set(xlabel="image score (max region prob)", ylabel="images", yscale="log", title="scores")
    ax2.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_threshold(checkpoint: str, figures: dict, split: str) -> None:
    """Store the operating threshold and the figures in the checkpoint's meta, keeping
    everything else the checkpoint holds (optimiser state of training checkpoints)."""
    state = read_checkpoint(checkpoint)
    model, meta = load_checkpoint(checkpoint)
    a = figures["at_threshold"]
    meta.update({
        "threshold": a["threshold"],
        "target_recall": figures["target_recall"],
        f"{split}_figures": {k: a[k] for k in ("precision", "recall", "f1", "rejection", "tp", "fp", "fn", "tn")}
        | {"average_precision": figures["average_precision"], "n": figures["n"],
           "per_source": {s: round(r["rate"], 4) for s, r in figures["per_source"].items()}},
    })
    extra = {k: v for k, v in state.items() if k not in ("format", "model", "config", "state_dict", "meta")}
    save_checkpoint(checkpoint, model, meta, **extra)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--split", default="dev")
    parser.add_argument("--target_recall", type=float, default=0.95)
    parser.add_argument("--threshold", type=float, default=None,
                        help="report at this threshold instead of the one chosen for --target_recall")
    parser.add_argument("--write_threshold", action="store_true")
    parser.add_argument("--plots", default=None, help="folder for the PNG and JSON (default: next to the checkpoint)")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--num_threads", type=int, default=1)
    add_config_args(parser, DataConfig)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    torch.set_num_threads(args.num_threads)
    if args.write_threshold and args.threshold is not None:
        parser.error("--write_threshold stores the threshold chosen for --target_recall; drop --threshold")

    model, meta = load_checkpoint(args.checkpoint)
    model = model.to(memory_format=torch.channels_last)
    pred = evaluate_model(model, config_from_args(DataConfig, args), args.split, args.batch_size)
    figures = evaluate_predictions(pred, args.threshold, args.target_recall)
    print(format_report(figures, f"{args.checkpoint} on {args.split}"))

    ckpt = Path(args.checkpoint)
    out_dir = Path(args.plots) if args.plots else ckpt.parent
    stem = f"{ckpt.stem}_{args.split}"
    save_plots(pred, figures, out_dir / f"{stem}_pr.png")
    (out_dir / f"{stem}_eval.json").write_text(json.dumps(figures, indent=2))
    print(f"wrote {out_dir / (stem + '_pr.png')} and {out_dir / (stem + '_eval.json')}")
    if args.write_threshold:
        write_threshold(args.checkpoint, figures, args.split)
        print(f"stored threshold {figures['at_threshold']['threshold']:.4f} in {args.checkpoint}")
    return figures


if __name__ == "__main__":
    main()
