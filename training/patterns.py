"""Text-free patterns laid over non-text photos: extra negatives for the textures the student
mistakes for text (blurred noise, stripes and grids, polka dots).

The student keys on high-frequency strokes and repeated edges, so busy non-text pictures
(fabric, shelves, façades, noise) score high. ``render_pattern`` blends one random pattern,
at a random scale, into the whole photo or a large part of it; the result has no text, so
every region is negative.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def noise(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """Random noise at a random grain (1-12 px), in colour or grey, (h, w, 3) float in [0, 255]."""
    grain = float(rng.uniform(1, 12))
    sw, sh = max(2, int(w / grain)), max(2, int(h / grain))
    channels = 3 if rng.random() < 0.5 else 1
    small = rng.integers(0, 256, (sh, sw, channels), dtype=np.uint8)
    img = Image.fromarray(small.squeeze(-1) if channels == 1 else small).resize((w, h), Image.Resampling.BILINEAR)
    if rng.random() < 0.5:
        img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 2.5))))
    return np.asarray(img.convert("RGB"), dtype=np.float64)


def grating(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """Stripes at a random period (4-40 px) and angle, one or two orientations (a grid or
    checks), soft or hard-edged, in two random colours."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    period, angle = rng.uniform(4, 40), rng.uniform(0, np.pi)
    wave = np.sin(2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / period)
    if rng.random() < 0.5:
        wave = wave * np.sin(2 * np.pi * (-x * np.sin(angle) + y * np.cos(angle)) / (period * rng.uniform(0.5, 2)))
    if rng.random() < 0.5:
        wave = np.sign(wave)
    a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = (wave[..., None] + 1) / 2
    return a * t + b * (1 - t)


def dots(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """Polka dots on a lattice (spacing 6-40 px, a little jitter) in two random colours."""
    background, ink = tuple(int(v) for v in rng.integers(0, 256, 3)), tuple(int(v) for v in rng.integers(0, 256, 3))
    img = Image.new("RGB", (w, h), background)
    draw = ImageDraw.Draw(img)
    step = float(rng.uniform(6, 40))
    radius = step * rng.uniform(0.15, 0.4)
    for cy in np.arange(step / 2, h, step):
        shift = step / 2 if rng.random() < 0.5 else 0.0
        for cx in np.arange(step / 2 + shift, w, step):
            jx, jy = rng.normal(0, step * 0.05, 2)
            draw.ellipse([cx + jx - radius, cy + jy - radius, cx + jx + radius, cy + jy + radius], fill=ink)
    return np.asarray(img, dtype=np.float64)


PATTERNS = (noise, grating, dots)
MAX_SIDE = 1024  # patterns are drawn at most this large (memory), then scaled up


def render_pattern(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A copy of ``img`` with a random pattern blended (opacity 0.4-1) into all of it or a
    random rectangle of at least a third of each side."""
    base = np.asarray(img.convert("RGB"), dtype=np.float64)
    h, w = base.shape[:2]
    if rng.random() < 0.5:
        x0, y0, x1, y1 = 0, 0, w, h
    else:
        pw, ph = int(w * rng.uniform(0.33, 1.0)), int(h * rng.uniform(0.33, 1.0))
        x0, y0 = int(rng.integers(0, w - pw + 1)), int(rng.integers(0, h - ph + 1))
        x1, y1 = x0 + pw, y0 + ph
    pw, ph = x1 - x0, y1 - y0
    scale = min(1.0, MAX_SIDE / max(pw, ph))  # a large photo: draw smaller, then scale up
    make = PATTERNS[int(rng.integers(len(PATTERNS)))]
    pattern = make(max(1, round(pw * scale)), max(1, round(ph * scale)), rng)
    if scale < 1.0:
        pattern = np.asarray(Image.fromarray(np.clip(pattern, 0, 255).astype(np.uint8)).resize(
            (pw, ph), Image.Resampling.BILINEAR), dtype=np.float64)
    alpha = float(rng.uniform(0.4, 1.0))
    out = base.copy()
    out[y0:y1, x0:x1] = alpha * pattern + (1 - alpha) * base[y0:y1, x0:x1]
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))
