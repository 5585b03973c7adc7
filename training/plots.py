"""Plots of an evaluation (``training.evaluate``), as PNGs a person can look at.

``plot_pr`` (precision-recall curve, operating point marked), ``plot_scores`` (image-score
distribution per class), ``plot_per_source`` (recall / rejection per source) and
``plot_errors`` (contact sheet of the worst false positives and false negatives, each
with its score, source and highest-scoring region outlined). ``save_plots`` writes all.
``plot_curves`` draws training curves of several runs (``python -m training.curves``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from model.regions import DEFAULT_SCORE_RULE, image_score, region_rects
from training import metrics

CURVE_PANELS = (("loss_total", "train loss (each stage's own objective, log)"), ("dev_ap", "dev AP"),
                ("dev_f@r95", "dev F at recall 0.95"), ("dev_reject@r95", "dev non-text rejection at recall 0.95"))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_rule(figures: dict) -> str:
    """The score rule the figures were computed with."""
    return figures.get("score_rule", DEFAULT_SCORE_RULE)


def figure_scores(pred: dict, figures: dict) -> np.ndarray:
    """Image scores by the rule the figures were computed with."""
    return image_score(pred["probs"], figure_rule(figures))


def plot_pr(pred: dict, figures: dict, path: Path) -> Path:
    """Precision-recall curve of the image score, the operating threshold marked (and the
    0.5 point for comparison)."""
    plt = _pyplot()
    scores, labels = figure_scores(pred, figures), pred["image_labels"].astype(bool)
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
           title=f"PR curve, {figures['n']} images ({figures['n_text']} text), score rule {figure_rule(figures)}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    return _save(fig, path, plt)


def plot_scores(pred: dict, figures: dict, path: Path) -> Path:
    """Image-score distributions of text and non-text images, threshold marked."""
    plt = _pyplot()
    scores, labels = figure_scores(pred, figures), pred["image_labels"].astype(bool)
    a = figures["at_threshold"]
    bins = np.linspace(0, 1, 41)
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    ax.hist(scores[labels], bins=bins, alpha=0.6, label=f"text ({int(labels.sum())})")
    ax.hist(scores[~labels], bins=bins, alpha=0.6, label=f"non-text ({int((~labels).sum())})")
    ax.axvline(a["threshold"], color="C3", ls="--", label=f"threshold {a['threshold']:.3f}")
    ax.set(xlabel=f"image score (score rule {figure_rule(figures)})", ylabel="images (log)", yscale="log",
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
           title=f"per source at threshold {figures['at_threshold']['threshold']:.3f} ({figure_rule(figures)}): "
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


def worst_errors(pred: dict, threshold: float, n: int,
                 score_rule: str = DEFAULT_SCORE_RULE) -> tuple[np.ndarray, np.ndarray]:
    """Indices of up to ``n`` false positives (non-text, highest score first) and ``n``
    false negatives (text, lowest score first) at ``threshold``."""
    scores, labels = image_score(pred["probs"], score_rule), pred["image_labels"].astype(bool)
    fp = np.flatnonzero(~labels & (scores >= threshold))
    fn = np.flatnonzero(labels & (scores < threshold))
    return fp[np.argsort(-scores[fp], kind="stable")][:n], fn[np.argsort(scores[fn], kind="stable")][:n]


def plot_errors(pred: dict, figures: dict, image_root: Path, path: Path, n: int = 8) -> Path:
    """Contact sheet: the ``n`` worst false positives (top row) and false negatives
    (bottom row) at the operating threshold, each with its score and source, and the
    region with the highest text probability outlined (where the model looked)."""
    plt = _pyplot()
    threshold = figures["at_threshold"]["threshold"]
    rule = figure_rule(figures)
    rows = list(zip(("false positive", "false negative"), worst_errors(pred, threshold, n, rule)))
    fig, axes = plt.subplots(2, n, figsize=(1.9 * n, 4.6), squeeze=False)
    for r, (kind, indices) in enumerate(rows):
        for c in range(n):
            ax = axes[r][c]
            ax.axis("off")
            if c >= len(indices):
                continue
            i = int(indices[c])
            with Image.open(Path(image_root) / pred["paths"][i]) as img:
                img = ImageOps.exif_transpose(img).convert("RGB")
                w, h = img.size
                img.thumbnail((256, 256))
                ax.imshow(np.asarray(img), extent=(0, w, h, 0))
            probs = pred["probs"][i]
            x0, y0, x1, y1 = region_rects(w, h)[int(np.argmax(probs))]
            ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="red", lw=1.5))
            ax.set_title(f"{float(image_score(probs, rule)):.3f} {pred['sources'][i]}", fontsize=7)
        axes[r][0].text(-0.08, 0.5, f"{kind}s ({len(indices)} shown)", transform=axes[r][0].transAxes,
                        rotation=90, va="center", ha="right", fontsize=8)
    fig.suptitle(f"worst errors at threshold {threshold:.3f}, score rule {rule} (score, source; red: top region)",
                 fontsize=9)
    return _save(fig, path, plt)


def plot_curves(histories: dict[str, list[dict]], path: Path) -> Path:
    """Training curves of several runs (``training.curves.run_history`` of each): one panel
    per ``CURVE_PANELS`` entry, one line per run, points only where a figure was logged."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(CURVE_PANELS), figsize=(4.2 * len(CURVE_PANELS), 3.4))
    for ax, (key, title) in zip(axes, CURVE_PANELS):
        for label, history in histories.items():
            points = [(h["epoch"], h[key]) for h in history if isinstance(h.get(key), (int, float))]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, marker="o" if key != "loss_total" else None, markersize=3, label=label)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch")
        if key == "loss_total":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return _save(fig, Path(path), plt)


def save_plots(pred: dict, figures: dict, out_dir: Path, stem: str, image_root: Path | None = None) -> list[Path]:
    """All plots as PNGs in ``out_dir``: ``<stem>_pr.png``, ``<stem>_scores.png``,
    ``<stem>_per_source.png`` and, given the images' root, ``<stem>_errors.png``."""
    out_dir = Path(out_dir)
    written = [plot_pr(pred, figures, out_dir / f"{stem}_pr.png"),
               plot_scores(pred, figures, out_dir / f"{stem}_scores.png"),
               plot_per_source(figures, out_dir / f"{stem}_per_source.png")]
    if image_root is not None:
        written.append(plot_errors(pred, figures, image_root, out_dir / f"{stem}_errors.png"))
    return written
