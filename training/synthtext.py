"""Synthetic text on non-text photos, with exact boxes.

Each string is drawn with a TrueType font found on the system onto a transparent layer,
rotated with ``training.augment``'s affine map (so the box corners follow the same matrix
as the pixels), and composited onto the photo. The recorded box of a string is its tight
ink box (``font.getbbox``), like a word-level scene-text annotation.
"""

from __future__ import annotations

import logging
import string
import threading
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from training.augment import Boxes, rotation_matrix, transform_points, warp
from training.config import SynthConfig

log = logging.getLogger(__name__)

WORDS = (
    "OPEN SALE EXIT STOP HOTEL CAFE BAR PIZZA BANK TAXI POLICE PHARMACY MARKET PARKING NO ENTRY "
    "welcome menu coffee street avenue road station center city park bakery books fashion shoes "
    "Restaurant Museum Library Hospital Airport Bus Metro Station Office Store Shop Mall Cinema "
    "Sale 50% OFF FREE NEW Hello Thank you Information Toilets Tickets Platform Gate Floor Level "
    "Push Pull Danger Caution Keep Out Private Fire Emergency Open 24h Daily Fresh Hot Cold "
    "apple river garden summer winter music coffee tea water juice bread milk news daily "
).split()


def find_fonts(dirs: Sequence[str], limit: int = 64) -> list[str]:
    """TrueType / OpenType fonts under ``dirs`` (sorted, so runs are reproducible)."""
    found: list[str] = []
    for d in dirs:
        root = Path(d)
        if root.is_dir():
            found.extend(str(p) for p in root.rglob("*") if p.suffix.lower() in (".ttf", ".otf"))
    fonts = []
    for path in sorted(set(found)):
        try:
            ImageFont.truetype(path, 12).getbbox("Ag")
        except Exception:  # symbol fonts, broken files
            continue
        fonts.append(path)
        if len(fonts) >= limit:
            break
    return fonts


_FONTS = threading.local()  # one cache per thread: a FreeType face is not safe to share between threads


def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    cache = getattr(_FONTS, "cache", None)
    if cache is None:
        cache = _FONTS.cache = {}
    if (path, size) not in cache:
        if len(cache) >= 512:
            cache.clear()
        cache[(path, size)] = ImageFont.truetype(path, size)
    return cache[(path, size)]


def random_string(rng: np.random.Generator) -> str:
    kind = rng.random()
    if kind < 0.6:
        words = [WORDS[i] for i in rng.integers(0, len(WORDS), size=rng.integers(1, 4))]
        return " ".join(words)
    if kind < 0.8:
        return str(rng.integers(0, 10 ** int(rng.integers(1, 7))))
    alphabet = string.ascii_letters + string.digits
    return "".join(alphabet[i] for i in rng.integers(0, len(alphabet), size=rng.integers(3, 10)))


def _luminance(rgb) -> float:
    r, g, b = rgb[:3]
    return 0.299 * r + 0.587 * g + 0.114 * b


def contrasting_colour(background: np.ndarray, rng: np.random.Generator) -> tuple[int, int, int]:
    """A random colour whose luminance differs from the mean of ``background`` by >= 80."""
    bg = _luminance(background.reshape(-1, 3).mean(axis=0))
    for _ in range(20):
        colour = tuple(int(v) for v in rng.integers(0, 256, size=3))
        if abs(_luminance(colour) - bg) >= 80:
            return colour
    return (0, 0, 0) if bg > 127 else (255, 255, 255)


class TextRenderer:
    """Draws random strings on images; ``render`` returns the new image and the boxes."""

    def __init__(self, fonts: Sequence[str], cfg: SynthConfig):
        if not fonts:
            raise ValueError("no fonts to draw synthetic text with")
        self.fonts = list(fonts)
        self.cfg = cfg

    @classmethod
    def from_config(cls, cfg: SynthConfig) -> "TextRenderer | None":
        """A renderer, or None (with a warning) when synthetic text is off or no font exists."""
        if not cfg.enabled:
            return None
        fonts = find_fonts(cfg.font_dirs, cfg.max_fonts)
        if not fonts:
            log.warning("synthetic text disabled: no .ttf/.otf fonts under %s "
                        "(apt-get install fonts-dejavu-core fonts-liberation2)", ", ".join(cfg.font_dirs))
            return None
        return cls(fonts, cfg)

    def render(self, img: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, Boxes]:
        """A copy of ``img`` with 1..max_strings strings drawn on it, and their boxes."""
        img = img.convert("RGB")  # a copy: cached images stay untouched
        boxes: Boxes = []
        for _ in range(int(rng.integers(self.cfg.min_strings, self.cfg.max_strings + 1))):
            box = self._draw_string(img, boxes, rng)
            if box is not None:
                boxes.append(box)
        return img, boxes

    def _text_layer(self, text: str, size: int, colour, rng) -> tuple[Image.Image, np.ndarray]:
        """A transparent layer with ``text`` and the 4 corners of its ink box."""
        font = _font(self.fonts[int(rng.integers(len(self.fonts)))], size)
        stroke = int(max(1, size // 12)) if rng.random() < 0.25 else 0
        left, top, right, bottom = font.getbbox(text, stroke_width=stroke)
        pad = 2 + stroke
        layer = Image.new("RGBA", (right - left + 2 * pad, bottom - top + 2 * pad), (0, 0, 0, 0))
        alpha = int(rng.integers(190, 256))
        stroke_fill = tuple(255 - c for c in colour) + (alpha,)
        ImageDraw.Draw(layer).text((pad - left, pad - top), text, font=font, fill=tuple(colour) + (alpha,),
                                   stroke_width=stroke, stroke_fill=stroke_fill)
        x0, y0, x1, y1 = pad, pad, pad + right - left, pad + bottom - top
        corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)
        return layer, corners

    def _draw_string(self, img: Image.Image, placed: Boxes, rng) -> list[float] | None:
        """Draw one string at a random free spot; its box, or None when it does not fit."""
        short = min(img.size)
        size = max(8, int(short * rng.uniform(*self.cfg.size_range)))
        text = random_string(rng)
        colour = contrasting_colour(np.asarray(img), rng)
        layer, corners = self._text_layer(text, size, colour, rng)
        rot, rot_size = rotation_matrix(layer.width, layer.height,
                                        rng.uniform(-self.cfg.max_angle, self.cfg.max_angle))
        layer = warp(layer, rot, rot_size, (0, 0, 0, 0))
        corners = transform_points(corners, rot)
        if layer.width >= img.width or layer.height >= img.height:
            return None
        for _ in range(10):
            x = int(rng.integers(0, img.width - layer.width))
            y = int(rng.integers(0, img.height - layer.height))
            box = corners + (x, y)
            if not any(_overlaps(box, np.asarray(p).reshape(-1, 2)) for p in placed):
                break
        else:
            return None
        if rng.random() < 0.3:
            layer = layer.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
        img.paste(layer, (x, y), layer)
        return box.reshape(-1).tolist()


def _overlaps(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether the bounding rectangles of two point sets intersect."""
    return bool(a[:, 0].min() < b[:, 0].max() and b[:, 0].min() < a[:, 0].max()
                and a[:, 1].min() < b[:, 1].max() and b[:, 1].min() < a[:, 1].max())
