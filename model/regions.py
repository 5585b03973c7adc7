"""The paper's multi-scale regions: a 5x5 and a 3x3 grid, 34 regions in all.

Region order everywhere (labels, model outputs, manifests): the 25 cells of the 5x5 grid
row by row, then the 9 cells of the 3x3 grid row by row.

A region is text (1) when the area of text boxes inside it is at least ``min_fraction``
(1 %) of the region's area; a region with less text but at least that much "ignore" area
(illegible text) is neither (-1, left out of losses); every other region is background (0).
An image is text when any region is (logical OR); its score is the largest region
probability. ``SCORE_RULES`` holds that rule (``max``, the default) and ``both_grids``, the
geometric mean of each grid's largest probability: text must be seen at both scales. A
checkpoint's ``meta["score_rule"]`` says which one its threshold was chosen for.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

GRIDS: tuple[int, ...] = (5, 3)
NUM_REGIONS: int = sum(g * g for g in GRIDS)  # 34
MIN_TEXT_FRACTION: float = 0.01
IGNORE: int = -1


def region_rects(width: float, height: float, grids: Sequence[int] = GRIDS) -> np.ndarray:
    """(NUM_REGIONS, 4) array of ``x0, y0, x1, y1`` rectangles in image coordinates."""
    rects = []
    for g in grids:
        xs = np.linspace(0.0, width, g + 1)
        ys = np.linspace(0.0, height, g + 1)
        for r in range(g):
            for c in range(g):
                rects.append((xs[c], ys[r], xs[c + 1], ys[r + 1]))
    return np.asarray(rects, dtype=np.float64)


def polygon_area(points) -> float:
    """Area of a simple polygon given as an (N, 2) array or a list of (x, y) pairs
    (shoelace formula, in plain Python: faster than numpy for the few points of a box)."""
    pts = points.tolist() if isinstance(points, np.ndarray) else points
    n = len(pts)
    if n < 3:
        return 0.0
    return 0.5 * abs(sum(pts[i][0] * pts[(i + 1) % n][1] - pts[(i + 1) % n][0] * pts[i][1] for i in range(n)))


def _clip_half_plane(points: list, axis: int, bound: float, keep_greater: bool) -> list:
    """One Sutherland-Hodgman pass: keep the part of a polygon on one side of a line."""
    if not points:
        return points

    def inside(p):
        return p[axis] >= bound if keep_greater else p[axis] <= bound

    out = []
    prev = points[-1]
    for cur in points:
        if inside(cur):
            if not inside(prev):
                out.append(_intersect(prev, cur, axis, bound))
            out.append(cur)
        elif inside(prev):
            out.append(_intersect(prev, cur, axis, bound))
        prev = cur
    return out


def _intersect(p, q, axis: int, bound: float):
    t = (bound - p[axis]) / (q[axis] - p[axis])
    return (p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1]))


def clipped_area(polygon: np.ndarray, rect: Sequence[float]) -> float:
    """Area of the part of ``polygon`` ((N, 2) array) inside ``rect`` (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = rect
    pts = [tuple(p) for p in np.asarray(polygon, dtype=np.float64).tolist()]
    pts = _clip_half_plane(pts, 0, x0, True)
    pts = _clip_half_plane(pts, 0, x1, False)
    pts = _clip_half_plane(pts, 1, y0, True)
    pts = _clip_half_plane(pts, 1, y1, False)
    return polygon_area(pts)


def as_polygons(boxes: Iterable[Sequence[float]]) -> list[np.ndarray]:
    """Boxes as flat ``x1, y1, ..., xn, yn`` lists -> (n, 2) arrays. Degenerate boxes are dropped."""
    polys = []
    for box in boxes:
        pts = np.asarray(box, dtype=np.float64).reshape(-1, 2)
        if len(pts) >= 3 and np.all(np.isfinite(pts)):
            polys.append(pts)
    return polys


def covered_fractions(polygons: Sequence[np.ndarray], width: float, height: float) -> np.ndarray:
    """Fraction of each region's area covered by the polygons (areas of overlapping
    polygons add up, capped at 1)."""
    rects = region_rects(width, height)
    areas = (rects[:, 2] - rects[:, 0]) * (rects[:, 3] - rects[:, 1])
    covered = np.zeros(len(rects))
    for poly in polygons:
        bx0, by0 = poly.min(axis=0)
        bx1, by1 = poly.max(axis=0)
        whole = None
        for i, (rx0, ry0, rx1, ry1) in enumerate(rects.tolist()):
            if bx1 <= rx0 or bx0 >= rx1 or by1 <= ry0 or by0 >= ry1:
                continue
            if rx0 <= bx0 and bx1 <= rx1 and ry0 <= by0 and by1 <= ry1:  # wholly inside: nothing to clip
                whole = polygon_area(poly) if whole is None else whole
                covered[i] += whole
            else:
                covered[i] += clipped_area(poly, (rx0, ry0, rx1, ry1))
    return np.minimum(covered / np.maximum(areas, 1e-12), 1.0)


def region_labels(
    boxes: Iterable[Sequence[float]],
    width: float,
    height: float,
    ignore: Iterable[Sequence[float]] = (),
    min_fraction: float = MIN_TEXT_FRACTION,
) -> np.ndarray:
    """Labels of the 34 regions: 1 text, 0 background, -1 (``IGNORE``) neither."""
    text = covered_fractions(as_polygons(boxes), width, height)
    labels = (text >= min_fraction).astype(np.int64)
    ignored = as_polygons(ignore)
    if ignored:
        dont_care = covered_fractions(ignored, width, height) >= min_fraction
        labels[(labels == 0) & dont_care] = IGNORE
    return labels


def _max_score(p):
    return p.max(-1) if isinstance(p, np.ndarray) else p.amax(-1)


def grid_maxima(p):
    """(max over the 5x5 cells, max over the 3x3 cells) of (..., NUM_REGIONS) probabilities."""
    five = GRIDS[0] * GRIDS[0]
    return _max_score(p[..., :five]), _max_score(p[..., five:])


def _both_grids_score(p):
    five, three = grid_maxima(p)
    return (five * three) ** 0.5


# Image score from the 34 region probabilities; each works on numpy arrays and torch tensors
# of shape (..., NUM_REGIONS).
SCORE_RULES = {
    "max": _max_score,  # the paper's logical OR
    "both_grids": _both_grids_score,  # sqrt(max over the 5x5 grid x max over the 3x3 grid)
}
DEFAULT_SCORE_RULE = "max"


def check_score_rule(rule: str) -> str:
    if rule not in SCORE_RULES:
        raise ValueError(f"unknown score rule {rule!r}; known: {', '.join(SCORE_RULES)}")
    return rule


def score_rule_of(meta: dict, override: str | None = None) -> str:
    """The rule to score with: ``override`` if given, else the one stored in a checkpoint's
    ``meta`` (the rule its threshold was chosen for), else the paper's max."""
    return check_score_rule(override or meta.get("score_rule", DEFAULT_SCORE_RULE))


def image_score(region_probs, rule: str = DEFAULT_SCORE_RULE):
    """Image-level score by ``rule`` (default: max over regions, the paper's logical OR).
    Never above the largest region probability, so an image scored at or above a threshold
    always has a region at or above it."""
    return SCORE_RULES[check_score_rule(rule)](region_probs)


def split_grids(values) -> dict[str, list]:
    """Region values as nested lists per grid: {"5x5": [[...] * 5] * 5, "3x3": ...}."""
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    out, start = {}, 0
    for g in GRIDS:
        out[f"{g}x{g}"] = flat[start:start + g * g].reshape(g, g).round(4).tolist()
        start += g * g
    return out
