"""Image-level metrics of a text filter (numpy only).

Scores are image scores (max region probability), labels 1 = text, 0 = non-text. An
image is predicted text when ``score >= threshold``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import numpy as np


def prf_at(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
    """Precision, recall, F1, non-text rejection rate and the confusion counts."""
    pred = np.asarray(scores) >= threshold
    labels = np.asarray(labels).astype(bool)
    tp, fp = int((pred & labels).sum()), int((pred & ~labels).sum())
    fn, tn = int((~pred & labels).sum()), int((~pred & ~labels).sum())
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    rejection = tn / (tn + fp) if tn + fp else 1.0
    return {"threshold": float(threshold), "precision": p, "recall": r, "f1": f, "rejection": rejection,
            "tp": tp, "fp": fp, "fn": fn, "tn": tn}


def pr_curve(scores: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Precision and recall at every distinct score used as threshold (descending)."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(bool)
    thresholds = np.unique(scores)[::-1]
    order = np.sort(scores[labels])
    order_neg = np.sort(scores[~labels])
    tp = len(order) - np.searchsorted(order, thresholds, side="left")
    fp = len(order_neg) - np.searchsorted(order_neg, thresholds, side="left")
    precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 1.0)
    recall = tp / max(len(order), 1)
    return {"thresholds": thresholds, "precision": precision, "recall": recall}


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the PR curve as the sum of precision x recall increments."""
    curve = pr_curve(scores, labels)
    recall = np.concatenate([[0.0], curve["recall"]])
    return float(np.sum(np.diff(recall) * curve["precision"]))


def threshold_for_recall(scores: np.ndarray, labels: np.ndarray, target_recall: float) -> float:
    """The threshold with the highest precision among those whose recall >= target (ties:
    the higher recall). It is placed halfway to the next lower score, which classifies
    these scores the same way but leaves a margin for unseen images."""
    curve = pr_curve(scores, labels)
    ok = np.flatnonzero(curve["recall"] >= target_recall - 1e-12)
    if not len(ok):
        return float(curve["thresholds"][-1])
    return _with_margin(curve["thresholds"], ok[np.lexsort((-curve["recall"][ok], -curve["precision"][ok]))[0]])


def threshold_for_best_f(scores: np.ndarray, labels: np.ndarray) -> float:
    """The threshold with the highest F1 (ties: the higher recall), placed halfway to the
    next lower score like ``threshold_for_recall``. Chosen on the scores it is reported
    on, so the F there is an optimistic upper bound, not an operating point."""
    curve = pr_curve(scores, labels)
    p, r = curve["precision"], curve["recall"]
    f = np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-12), 0.0)
    return _with_margin(curve["thresholds"], np.lexsort((-r, -f))[0])


def _with_margin(thresholds: np.ndarray, best: int) -> float:
    """``thresholds[best]`` (descending distinct scores) moved halfway to the next lower
    score: the same decisions on these scores, with a margin for unseen ones."""
    lower = thresholds[best + 1] if best + 1 < len(thresholds) else 0.0
    return float((thresholds[best] + lower) / 2)


def per_source(scores: np.ndarray, labels: np.ndarray, sources: Sequence[str], threshold: float) -> dict:
    """Per source: image count, label, and the rate that matters for it: recall for text
    sources, rejection rate (share predicted non-text) for non-text sources."""
    groups: dict[tuple[str, int], list[int]] = defaultdict(list)
    for i, (src, lab) in enumerate(zip(sources, labels)):
        groups[(src, int(lab))].append(i)
    out = {}
    for (src, lab), idx in sorted(groups.items()):
        pred = np.asarray(scores)[idx] >= threshold
        rate = float(pred.mean()) if lab == 1 else float((~pred).mean())
        key = src if sum(1 for s, _ in groups if s == src) == 1 else f"{src} (label {lab})"
        out[key] = {"n": len(idx), "label": lab, "metric": "recall" if lab == 1 else "rejection", "rate": rate}
    return out


def recall_by_bucket(scores: np.ndarray, labels: np.ndarray, values: np.ndarray, threshold: float,
                     edges: Sequence[float]) -> dict:
    """Recall of the text images grouped by ``values`` (e.g. text height in pixels) into
    buckets ``[-inf, e0), [e0, e1), ..., [e_last, inf)``; NaN values are left out."""
    scores, labels, values = np.asarray(scores), np.asarray(labels), np.asarray(values, dtype=np.float64)
    bounds = [-np.inf, *edges, np.inf]
    out = {}
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        mask = (labels == 1) & (values >= lo) & (values < hi)
        name = f"< {hi:g}" if lo == -np.inf else (f">= {lo:g}" if hi == np.inf else f"{lo:g}-{hi:g}")
        n = int(mask.sum())
        out[name] = {"n": n, "recall": float((scores[mask] >= threshold).mean()) if n else None}
    return out


def expected_calibration_error(scores: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """Mean |accuracy - confidence| over equal-width score bins, weighted by bin size."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(scores, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            ece += m.mean() * abs(labels[m].mean() - scores[m].mean())
    return float(ece)


def kept_regions(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Region probabilities and labels, flattened, ignored (-1) regions left out."""
    probs, labels = np.asarray(probs).reshape(-1), np.asarray(labels).reshape(-1)
    keep = labels >= 0
    return probs[keep], labels[keep]


def region_average_precision(probs: np.ndarray, labels: np.ndarray) -> float:
    """Average precision over all regions, leaving out ignored (-1) regions."""
    return average_precision(*kept_regions(probs, labels))


def platt_fit(probs: np.ndarray, labels: np.ndarray, iterations: int = 50) -> tuple[float, float]:
    """(a, b) of the logistic fit ``sigmoid(a * logit(p) + b)`` of ``labels`` (Newton's method).
    a = 1, b = 0: already calibrated; b > 0 at a ~ 1: probabilities too low (under-confident)."""
    p = np.clip(np.asarray(probs, dtype=np.float64).reshape(-1), 1e-6, 1 - 1e-6)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    x = np.stack([np.log(p / (1 - p)), np.ones_like(p)], axis=1)
    w = np.array([1.0, 0.0])
    for _ in range(iterations):
        q = 1.0 / (1.0 + np.exp(-(x @ w)))
        hessian = (x * (q * (1 - q))[:, None]).T @ x + 1e-9 * np.eye(2)
        step = np.linalg.solve(hessian, x.T @ (q - y))
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return float(w[0]), float(w[1])


def region_calibration(probs: np.ndarray, labels: np.ndarray) -> dict:
    """Calibration of the region probabilities (ignored regions left out): their ECE and
    the Platt fit that would calibrate them on this split."""
    probs, labels = kept_regions(probs, labels)
    a, b = platt_fit(probs, labels)
    return {"ece": expected_calibration_error(probs, labels), "platt_a": a, "platt_b": b}


def rejection_at_recall(scores: np.ndarray, labels: np.ndarray, target_recall: float = 0.95) -> tuple[float, float]:
    """(threshold, non-text rejection) at the threshold chosen on these scores for recall >=
    ``target_recall``: how much non-text a filter keeps from OCR when it must find that
    share of the text. Threshold-free in the sense that matters for ranking models."""
    threshold = threshold_for_recall(scores, labels, target_recall)
    return threshold, prf_at(scores, labels, threshold)["rejection"]


def recall_at_rejection(scores: np.ndarray, labels: np.ndarray, target_rejection: float = 0.9) -> tuple[float, float]:
    """(threshold, text recall) at the lowest threshold that keeps at least
    ``target_rejection`` of the non-text images below it (scores >= threshold are text)."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(bool)
    negatives = np.sort(scores[~labels])
    if not len(negatives):
        return 0.0, 1.0
    k = int(np.ceil(target_rejection * len(negatives)))  # non-text images that must fall below
    threshold = float(np.nextafter(negatives[k - 1], np.inf)) if k > 0 else float(negatives[0])
    recall = float((scores[labels] >= threshold).mean()) if labels.any() else 1.0
    return threshold, recall


def decision_flips(scores: np.ndarray, other: np.ndarray, threshold: float) -> float:
    """Share of images decided differently by two sets of scores at one threshold (e.g. an
    image and its JPEG re-encoding)."""
    a, b = np.asarray(scores) >= threshold, np.asarray(other) >= threshold
    return float((a != b).mean()) if len(a) else 0.0
