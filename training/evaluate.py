"""Evaluate a checkpoint on a split: image-level P/R/F, the operating threshold, per source.

    python -m training.evaluate --checkpoint model/weights/student.pt [--split dev | --root POOL --split all]
        [--target_recall 0.95] [--write_threshold] [--plots DIR]

The image score is the largest region probability (``model.regions.image_score``), or the
rule named by ``--score_rule`` (default: the checkpoint's ``meta["score_rule"]``, else
``max``). The operating threshold is the one with the highest precision whose recall is at
least ``--target_recall``; ``--write_threshold`` stores it, the rule, the target and the
figures in the checkpoint's ``meta`` (where the pipeline reads them); with ``--threshold`` it
stores that threshold instead (one chosen by another rule). The report also gives
the calibration of the region probabilities (ECE and the Platt fit that would calibrate
them), which is what soft-label distillation passes on. Plots are saved as PNGs in ``--plots``
(default ``runs/eval/<checkpoint name>/``, never next to the shipped weights):
``<name>_<split>_pr.png`` (PR curve, operating threshold
marked), ``_scores.png`` (image-score distribution per class), ``_per_source.png``
(recall per text source, rejection per non-text source) and ``_errors.png`` (the worst
false positives and false negatives, their top region outlined); the figures as JSON and
the per-image scores as ``_scores.npz``. With ``--threshold``, the report also gives the
operating point a threshold set on these images for ``--target_recall`` would reach.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch

from model.preprocessing import PreprocessConfig, preprocess_from_meta, target_size
from model.registry import MODEL_KEYS, load_checkpoint, read_checkpoint, save_checkpoint
from model.regions import DEFAULT_SCORE_RULE, SCORE_RULES, image_score, score_rule_of
from training import metrics
from training.cli import add_config_args, config_from_args
from training.config import DataConfig
from training.data import TextFilterDataset, batches
from training.engine import predict
from training.plots import save_plots

log = logging.getLogger(__name__)


# Buckets of the tallest text line's height at the model's input, in pixels.
TEXT_HEIGHT_EDGES = (6, 10, 16, 32)
ALL_SPLITS = "all"  # --split all: every record of the labels file


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


def evaluate_predictions(pred: dict, threshold: float | None = None, target_recall: float = 0.95,
                         score_rule: str = DEFAULT_SCORE_RULE) -> dict:
    """Figures of ``engine.predict``'s output, images scored by ``score_rule``, at
    ``threshold`` or, when None, at the threshold chosen for ``target_recall``."""
    scores = image_score(pred["probs"], score_rule)
    labels = pred["image_labels"]
    chosen = metrics.threshold_for_recall(scores, labels, target_recall)
    threshold = chosen if threshold is None else threshold
    return {
        "n": int(len(labels)),
        "n_text": int(labels.sum()),
        "score_rule": score_rule,
        "target_recall": target_recall,
        "threshold_for_target": chosen,
        "at_threshold": metrics.prf_at(scores, labels, threshold),
        "at_target": metrics.prf_at(scores, labels, chosen),  # set on these images: what a threshold could do here
        "at_0.5": metrics.prf_at(scores, labels, 0.5),
        "at_best_f": metrics.prf_at(scores, labels, metrics.threshold_for_best_f(scores, labels)),
        "average_precision": metrics.average_precision(scores, labels),
        "region_average_precision": metrics.region_average_precision(pred["probs"], pred["labels"]),
        "region_calibration": metrics.region_calibration(pred["probs"], pred["labels"]),
        "ece": metrics.expected_calibration_error(scores, labels),
        "per_source": metrics.per_source(scores, labels, pred["sources"], threshold),
        **({"recall_by_text_height": metrics.recall_by_bucket(scores, labels, pred["text_heights"], threshold,
                                                               TEXT_HEIGHT_EDGES)} if "text_heights" in pred else {}),
    }


def split_dataset(data_cfg: DataConfig, split: str, preprocess: PreprocessConfig | None = None) -> TextFilterDataset:
    """The images of ``split`` (``"all"``: every record of the labels file) for scoring, at
    ``preprocess``'s input shape; an empty split is an error."""
    dataset = TextFilterDataset.for_split(data_cfg, None if split == ALL_SPLITS else split, train=False,
                                          **({"preprocess": preprocess} if preprocess else {}))
    if not len(dataset):
        raise ValueError(f"split {split!r} has no records under {data_cfg.root}")
    return dataset


def evaluate_model(model: torch.nn.Module, data_cfg: DataConfig, split: str, batch_size: int = 32,
                   preprocess: PreprocessConfig | None = None) -> dict:
    """``engine.predict`` on every image of ``split`` (``"all"``: every record of the labels
    file, e.g. a whole collections pool the model never trained on), decoded exactly as the
    pipeline does (at ``preprocess``'s input shape: pass the checkpoint's, ``preprocess_from_meta``)."""
    dataset = split_dataset(data_cfg, split, preprocess)
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
        f"  regions: ECE {figures['region_calibration']['ece']:.4f}, Platt fit sigmoid(a logit p + b) a "
        f"{figures['region_calibration']['platt_a']:.3f} b {figures['region_calibration']['platt_b']:+.3f} "
        f"(b > 0: under-confident)",
        f"  {'operating point':<28}{'thr':>8}{'P':>8}{'R':>8}{'F':>8}{'reject':>8}{'FP':>6}{'FN':>6}",
    ]
    here = [] if figures["at_target"] == a else [(f"at recall >= {figures['target_recall']} here", figures["at_target"])]
    for name, row in (("at threshold", a), *here, ("at 0.5", figures["at_0.5"]),
                      ("at best F (optimistic)", figures["at_best_f"])):
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


def write_threshold(checkpoint: str, figures: dict, split: str) -> None:
    """Store the operating threshold and the figures in the checkpoint's meta, keeping
    everything else the checkpoint holds (optimiser state of training checkpoints)."""
    state = read_checkpoint(checkpoint)
    model, meta = load_checkpoint(checkpoint)
    a = figures["at_threshold"]
    meta.update({
        "threshold": a["threshold"],
        "score_rule": figures["score_rule"],
        "target_recall": figures["target_recall"],
        f"{split}_figures": {k: a[k] for k in ("precision", "recall", "f1", "rejection", "tp", "fp", "fn", "tn")}
        | {"average_precision": figures["average_precision"], "n": figures["n"],
           "per_source": {s: round(r["rate"], 4) for s, r in figures["per_source"].items()}},
    })
    extra = {k: v for k, v in state.items() if k not in MODEL_KEYS}
    save_checkpoint(checkpoint, model, meta, **extra)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--split", default="dev",
                        help=f"the split to score; {ALL_SPLITS!r}: every record of --labels_file (e.g. --root POOL)")
    parser.add_argument("--target_recall", type=float, default=0.95)
    parser.add_argument("--threshold", type=float, default=None,
                        help="report at this threshold instead of the one chosen for --target_recall")
    parser.add_argument("--score_rule", choices=tuple(SCORE_RULES), default=None,
                        help="image score from the region probabilities (default: the checkpoint's, else max)")
    parser.add_argument("--write_threshold", action="store_true")
    parser.add_argument("--plots", default=None, help="folder for the PNGs and JSON (default: runs/eval/<checkpoint name>)")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--num_threads", type=int, default=1)
    add_config_args(parser, DataConfig)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    torch.set_num_threads(args.num_threads)

    model, meta = load_checkpoint(args.checkpoint)
    model = model.to(memory_format=torch.channels_last)
    pred = evaluate_model(model, config_from_args(DataConfig, args), args.split, args.batch_size,
                          preprocess_from_meta(meta))
    score_rule = score_rule_of(meta, args.score_rule)
    figures = evaluate_predictions(pred, args.threshold, args.target_recall, score_rule)
    print(format_report(figures, f"{args.checkpoint} on {args.split} (image score: {score_rule})"))

    ckpt = Path(args.checkpoint)
    out_dir = Path(args.plots) if args.plots else Path("runs", "eval", ckpt.stem)
    stem = f"{ckpt.stem}_{args.split}"
    out_dir.mkdir(parents=True, exist_ok=True)
    written = save_plots(pred, figures, out_dir, stem, image_root=Path(args.root))
    (out_dir / f"{stem}_eval.json").write_text(json.dumps(figures, indent=2))
    # per-image scores, to compare students image by image or on subsets (collections) later
    np.savez_compressed(out_dir / f"{stem}_scores.npz", paths=np.asarray(pred["paths"]),
                        sources=np.asarray(pred["sources"]), labels=np.asarray(pred["image_labels"]),
                        scores=image_score(pred["probs"], score_rule))
    print(f"wrote {', '.join(map(str, written))}, {out_dir / (stem + '_eval.json')} and {out_dir / (stem + '_scores.npz')}")
    if args.write_threshold:
        write_threshold(args.checkpoint, figures, args.split)
        print(f"stored threshold {figures['at_threshold']['threshold']:.4f} in {args.checkpoint}")
    return figures


if __name__ == "__main__":
    main()
