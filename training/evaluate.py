"""Evaluate a checkpoint on a split: image-level P/R/F, the operating threshold, per source.

    python -m training.evaluate --checkpoint model/weights/student.pt [--split dev]
        [--target_recall 0.95] [--write_threshold] [--plots DIR]

The image score is the largest region probability (``model.regions.image_score``). The
operating threshold is the one with the highest precision whose recall is at least
``--target_recall``; ``--write_threshold`` stores it, the target and the figures in the
checkpoint's ``meta`` (where the pipeline reads it). Plots are saved as PNGs next to the
checkpoint (or in ``--plots``): ``<name>_<split>_pr.png`` (PR curve, operating threshold
marked), ``_scores.png`` (image-score distribution per class) and ``_per_source.png``
(recall per text source, rejection per non-text source); the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch

from model.preprocessing import target_size
from model.registry import load_checkpoint, read_checkpoint, save_checkpoint
from model.regions import image_score
from training import metrics
from training.cli import add_config_args, config_from_args
from training.config import DataConfig
from training.data import TextFilterDataset, batches
from training.engine import predict

log = logging.getLogger(__name__)


# Buckets of the tallest text line's height at the model's input, in pixels.
TEXT_HEIGHT_EDGES = (6, 10, 16, 32)


def quad_height(quad) -> float:
    """Height of a text quadrilateral (x1, y1, ..., x4, y4): its shorter side pair's mean length."""
    p = np.asarray(quad, dtype=np.float64).reshape(4, 2)
    sides = np.linalg.norm(p - np.roll(p, -1, axis=0), axis=1)  # 0-1, 1-2, 2-3, 3-0
    return float(min(sides[0] + sides[2], sides[1] + sides[3]) / 2)


def text_heights(dataset: TextFilterDataset, paths) -> np.ndarray:
    """For each image path of ``dataset``, the height in model-input pixels of its tallest
    text box (NaN for images without boxes): how large the text the network must see is."""
    boxes = {r.path: r.boxes for r in dataset.records}
    out = np.full(len(paths), np.nan)
    for i, path in enumerate(paths):
        if boxes.get(path):
            w, h = dataset.store.size(path, dataset.preprocess)
            scale = min(target_size(w, h, dataset.preprocess)) / min(w, h)
            out[i] = max(quad_height(q) for q in boxes[path]) * scale
    return out


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
        **({"recall_by_text_height": metrics.recall_by_bucket(scores, labels, pred["text_heights"], threshold,
                                                               TEXT_HEIGHT_EDGES)} if "text_heights" in pred else {}),
    }


def evaluate_model(model: torch.nn.Module, data_cfg: DataConfig, split: str, batch_size: int = 32) -> dict:
    """``engine.predict`` on every image of ``split``, decoded exactly as the pipeline does."""
    dataset = TextFilterDataset.for_split(data_cfg, split, train=False)
    if not len(dataset):
        raise ValueError(f"split {split!r} has no records under {data_cfg.root}")
    pred = predict(model, batches(dataset, dataset.items(), batch_size))
    pred["text_heights"] = text_heights(dataset, pred["paths"])
    return pred


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
    if "recall_by_text_height" in figures:
        lines.append(f"  {'tallest text at model input (px)':<36}{'n':>6}  {'recall':>8}")
        for bucket, row in figures["recall_by_text_height"].items():
            rate = "-" if row["recall"] is None else f"{row['recall']:.4f}"
            lines.append(f"  {bucket:<36}{row['n']:>6}  {rate:>8}")
    return "\n".join(lines)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_pr(pred: dict, figures: dict, path: Path) -> Path:
    """Precision-recall curve of the image score, the operating threshold marked (and the
    0.5 point for comparison)."""
    plt = _pyplot()
    scores, labels = image_score(pred["probs"]), pred["image_labels"].astype(bool)
    curve = metrics.pr_curve(scores, labels)
    a, h = figures["at_threshold"], figures["at_0.5"]
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    ax.plot(curve["recall"], curve["precision"], lw=1.5, label=f"AP {figures['average_precision']:.3f}")
    ax.plot([a["recall"]], [a["precision"]], "o", color="C3", ms=8,
            label=f"threshold {a['threshold']:.3f}: P {a['precision']:.3f} R {a['recall']:.3f} F {a['f1']:.3f}")
    ax.plot([h["recall"]], [h["precision"]], "s", color="C2", ms=6,
            label=f"0.5: P {h['precision']:.3f} R {h['recall']:.3f}")
    ax.axvline(figures["target_recall"], color="C3", ls=":", lw=1)
    ax.set(xlabel="recall (text images)", ylabel="precision", xlim=(0, 1.01), ylim=(0, 1.01),
           title=f"PR curve, {figures['n']} images ({figures['n_text']} text)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    return _save(fig, path, plt)


def plot_scores(pred: dict, figures: dict, path: Path) -> Path:
    """Image-score distributions of text and non-text images, threshold marked."""
    plt = _pyplot()
    scores, labels = image_score(pred["probs"]), pred["image_labels"].astype(bool)
    a = figures["at_threshold"]
    bins = np.linspace(0, 1, 41)
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    ax.hist(scores[labels], bins=bins, alpha=0.6, label=f"text ({int(labels.sum())})")
    ax.hist(scores[~labels], bins=bins, alpha=0.6, label=f"non-text ({int((~labels).sum())})")
    ax.axvline(a["threshold"], color="C3", ls="--", label=f"threshold {a['threshold']:.3f}")
    ax.set(xlabel="image score (max region probability)", ylabel="images (log)", yscale="log",
           title="score distribution per class")
    ax.legend(fontsize=8)
    return _save(fig, path, plt)


def plot_per_source(figures: dict, path: Path) -> Path:
    """Per source at the operating threshold: recall for text sources, rejection (share
    predicted non-text) for non-text sources, with the image count of each."""
    plt = _pyplot()
    rows = sorted(figures["per_source"].items(), key=lambda kv: (kv[1]["label"], kv[0]))
    fig, ax = plt.subplots(figsize=(7, 0.35 * max(len(rows), 1) + 1.5))
    names = [f"{k} (n={r['n']})" for k, r in rows]
    rates = [r["rate"] for _, r in rows]
    colours = ["C0" if r["label"] == 1 else "C1" for _, r in rows]
    ax.barh(range(len(rows)), rates, color=colours)
    for i, v in enumerate(rates):
        ax.text(min(v + 0.01, 0.93), i, f"{v:.2f}", va="center", fontsize=8)
    ax.set_yticks(range(len(rows)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set(xlim=(0, 1.0), xlabel="rate at the operating threshold",
           title=f"per source at threshold {figures['at_threshold']['threshold']:.3f}: "
                 "recall (text, blue) / rejection (non-text, orange)")
    ax.title.set_fontsize(9)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path, plt)


def _save(fig, path: Path, plt) -> Path:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def save_plots(pred: dict, figures: dict, out_dir: Path, stem: str) -> list[Path]:
    """All plots as PNGs in ``out_dir``: ``<stem>_pr.png``, ``<stem>_scores.png``,
    ``<stem>_per_source.png``."""
    out_dir = Path(out_dir)
    return [plot_pr(pred, figures, out_dir / f"{stem}_pr.png"),
            plot_scores(pred, figures, out_dir / f"{stem}_scores.png"),
            plot_per_source(figures, out_dir / f"{stem}_per_source.png")]


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
    parser.add_argument("--plots", default=None, help="folder for the PNGs and JSON (default: next to the checkpoint)")
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
    out_dir.mkdir(parents=True, exist_ok=True)
    written = save_plots(pred, figures, out_dir, stem)
    (out_dir / f"{stem}_eval.json").write_text(json.dumps(figures, indent=2))
    print(f"wrote {', '.join(map(str, written))} and {out_dir / (stem + '_eval.json')}")
    if args.write_threshold:
        write_threshold(args.checkpoint, figures, args.split)
        print(f"stored threshold {figures['at_threshold']['threshold']:.4f} in {args.checkpoint}")
    return figures


if __name__ == "__main__":
    main()
