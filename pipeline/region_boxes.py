"""Region-guided OCR boxes: the student's text regions (5x5 and 3x3 grid cells whose
probability is at least the threshold) merged into a few rectangles to OCR."""

from __future__ import annotations

from typing import Sequence

import numpy as np

FINE = 15  # the least common multiple of the 5x5 and 3x3 grids
MARGIN = 0.04  # of the image's width / height, added around each rectangle


def text_mask(regions_5x5: Sequence[Sequence[float]], regions_3x3: Sequence[Sequence[float]], threshold: float) -> np.ndarray:
    """A (15, 15) bool mask: the union of the text cells of both grids."""
    p5 = np.asarray(regions_5x5, dtype=np.float64) >= threshold
    p3 = np.asarray(regions_3x3, dtype=np.float64) >= threshold
    return np.kron(p5, np.ones((3, 3), bool)) | np.kron(p3, np.ones((5, 5), bool))


def mask_rectangles(mask: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Bounding rectangles (col0, row0, col1, row1), end-exclusive, of the 4-connected
    components of ``mask``."""
    seen = np.zeros_like(mask, dtype=bool)
    rects = []
    rows, cols = mask.shape
    for r in range(rows):
        for c in range(cols):
            if not mask[r, c] or seen[r, c]:
                continue
            stack, r0, c0, r1, c1 = [(r, c)], r, c, r, c
            seen[r, c] = True
            while stack:
                y, x = stack.pop()
                r0, r1, c0, c1 = min(r0, y), max(r1, y), min(c0, x), max(c1, x)
                for ny, nx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                    if 0 <= ny < rows and 0 <= nx < cols and mask[ny, nx] and not seen[ny, nx]:
                        seen[ny, nx] = True
                        stack.append((ny, nx))
            rects.append((c0, r0, c1 + 1, r1 + 1))
    return rects


def merge_overlapping(boxes: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Boxes (x0, y0, x1, y1) with every overlapping pair replaced by its union, until none overlap."""
    boxes = list(boxes)
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    boxes[i] = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return sorted(boxes, key=lambda b: (b[1], b[0]))


def region_boxes(
    regions_5x5, regions_3x3, threshold: float, width: int, height: int, margin: float = MARGIN
) -> list[tuple[int, int, int, int]]:
    """Pixel rectangles (x0, y0, x1, y1) to OCR in a ``width`` x ``height`` image: the text
    cells merged into rectangles, each grown by ``margin`` (a fraction of the image's
    width / height: text that crosses a cell's edge is kept), overlapping ones merged."""
    boxes = []
    for c0, r0, c1, r1 in mask_rectangles(text_mask(regions_5x5, regions_3x3, threshold)):
        x0 = max(0, int(np.floor((c0 / FINE - margin) * width)))
        y0 = max(0, int(np.floor((r0 / FINE - margin) * height)))
        x1 = min(width, int(np.ceil((c1 / FINE + margin) * width)))
        y1 = min(height, int(np.ceil((r1 / FINE + margin) * height)))
        if x1 > x0 and y1 > y0:
            boxes.append((x0, y0, x1, y1))
    return merge_overlapping(boxes)
