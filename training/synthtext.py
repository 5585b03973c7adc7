"""Synthetic text on non-text photos, with exact boxes.

Each string is drawn with a TrueType font found on the system onto a transparent layer,
rotated with ``training.augment``'s affine map (so the box corners follow the same matrix
as the pixels), and composited onto the photo. The recorded box of a string is its tight
ink box (``font.getbbox``), like a word-level scene-text annotation.

A share ``page_share`` of the draws are pages instead (``render_page``): dense lines of
small text, the text of documents, screenshots and slides that scene-text photos lack. A share
``caption_share`` are captions (``render_caption``): a photographer's credit in a band under the
photo or in a corner, a credit along a side edge, a camera's date stamp, a faint watermark.
"""

from __future__ import annotations

import logging
import string
import threading
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from training.augment import LUMA_WEIGHTS, Boxes, rotation_matrix, transform_points, warp
from training.config import CAPTION_KINDS, SynthConfig

log = logging.getLogger(__name__)

PAGE_SUPERSAMPLE = 4  # pages are drawn this many times larger, then scaled down ...
PAGE_MAX_SIDE = 2048  # ... but never on a canvas longer than this

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


def random_letters(rng: np.random.Generator, alphabet: str, low: int, high: int) -> str:
    """``low`` to ``high - 1`` characters drawn from ``alphabet``."""
    return "".join(alphabet[i] for i in rng.integers(0, len(alphabet), size=rng.integers(low, high)))


def random_string(rng: np.random.Generator) -> str:
    kind = rng.random()
    if kind < 0.6:
        words = [WORDS[i] for i in rng.integers(0, len(WORDS), size=rng.integers(1, 4))]
        return " ".join(words)
    if kind < 0.8:
        return str(rng.integers(0, 10 ** int(rng.integers(1, 7))))
    return random_letters(rng, string.ascii_letters + string.digits, 3, 10)


def random_word(rng: np.random.Generator) -> str:
    """A word for body text: a sign word or a pseudo-word of lower-case letters, sometimes a number."""
    kind = rng.random()
    if kind < 0.3:
        return WORDS[int(rng.integers(len(WORDS)))]
    if kind < 0.4:
        return str(rng.integers(0, 10 ** int(rng.integers(1, 5))))
    return random_letters(rng, string.ascii_lowercase, 1, 10)


TLDS = ("com", "net", "org", "co.uk", "de", "fr", "jp", "ru", "com.au", "typepad.com", "blogspot.com")
CAPTION_WEIGHTS = (0.25, 0.3, 0.1, 0.15, 0.2)


def caption_choice(kinds: Sequence[str]) -> tuple[tuple[str, ...], np.ndarray]:
    """The caption kinds to draw and their probabilities (``CAPTION_WEIGHTS`` renormalised over
    ``kinds``); an unknown or repeated kind, or none, is an error."""
    unknown = [k for k in kinds if k not in CAPTION_KINDS]
    if unknown or not kinds or len(set(kinds)) != len(kinds):
        raise ValueError(f"caption kinds {tuple(kinds)!r}: give one or more distinct kinds of "
                         f"{', '.join(CAPTION_KINDS)}")
    weights = np.array([CAPTION_WEIGHTS[CAPTION_KINDS.index(k)] for k in kinds], dtype=float)
    return tuple(kinds), weights / weights.sum()


def random_name(rng: np.random.Generator) -> str:
    """A capitalised pseudo-word, as a person's or a studio's name."""
    return random_letters(rng, string.ascii_lowercase, 3, 10).capitalize()


def random_credit(rng: np.random.Generator) -> str:
    """A photo credit, copyright line or web address, the way photos on the web carry them."""
    name = f"{random_name(rng)} {random_name(rng)}"
    year = int(rng.integers(1995, 2027))
    site = f"{'www.' if rng.random() < 0.5 else ''}{random_name(rng).lower()}.{TLDS[int(rng.integers(len(TLDS)))]}"
    templates = (f"\u00a9 {name}", f"\u00a9 {year} {name}", f"Photo: {name}", f"{name}, {year}", site,
                 f"http://{site}", f"Copyright \u00a9 {name}. All Rights Reserved", f"\u00a9 {random_name(rng)} Images",
                 f"{random_name(rng).upper()} PHOTOGRAPHY", f"(c) {name} {year}")
    return templates[int(rng.integers(len(templates)))]


def random_date(rng: np.random.Generator) -> str:
    """A camera's date (and time) stamp."""
    y, m, d = int(rng.integers(1998, 2027)), int(rng.integers(1, 13)), int(rng.integers(1, 29))
    forms = (f"{m:02d}/{d:02d}/{y}", f"{y}.{m:02d}.{d:02d}", f"'{y % 100:02d} {m} {d}", f"{d:02d}-{m:02d}-{y}",
             f"{y}/{m:02d}/{d:02d} {int(rng.integers(0, 24)):02d}:{int(rng.integers(0, 60)):02d}")
    return forms[int(rng.integers(len(forms)))]


def _luminance(rgb) -> float:
    return sum(w * c for w, c in zip(LUMA_WEIGHTS, rgb[:3]))


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
        self.caption_kinds, self.caption_weights = caption_choice(cfg.caption_kinds)

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
        """A copy of ``img`` with 1..max_strings strings drawn on it, and their boxes (or, with
        probability ``page_share``, a page of text: ``render_page``)."""
        if self.cfg.page_share > 0 and rng.random() < self.cfg.page_share:
            return self.render_page(img, rng)
        if self.cfg.caption_share > 0 and rng.random() < self.cfg.caption_share:
            return self.render_caption(img, rng)
        img = img.convert("RGB")  # a copy: cached images stay untouched
        boxes: Boxes = []
        for _ in range(int(rng.integers(self.cfg.min_strings, self.cfg.max_strings + 1))):
            box = self._draw_string(img, boxes, rng)
            if box is not None:
                boxes.append(box)
        return img, boxes

    def render_page(self, img: Image.Image, rng: np.random.Generator,
                    supersample: int = PAGE_SUPERSAMPLE) -> tuple[Image.Image, Boxes]:
        """A page of text the size of ``img``, and one box per line: a plain background (paper, a
        light or dark screen) or, half the time, a panel over part of the photo (a slide, an
        infographic). One or two columns of paragraphs, sometimes a larger heading; line height
        ``page_line_range`` of the short edge. Drawn ``supersample`` times larger and scaled
        down, so small text is blurred the way a scan or a screenshot shrinks it."""
        w, h = img.size
        supersample = max(1, min(supersample, PAGE_MAX_SIDE // max(w, h)))  # large photos: less (or no) upscaling
        bw, bh = w * supersample, h * supersample
        full = rng.random() < 0.5
        if full:
            panel = (0, 0, bw, bh)
        else:
            pw, ph = (int(bw * rng.uniform(0.5, 0.95)), int(bh * rng.uniform(0.5, 0.95)))
            x, y = int(rng.integers(0, bw - pw + 1)), int(rng.integers(0, bh - ph + 1))
            panel = (x, y, x + pw, y + ph)
        dark = rng.random() < 0.25
        shade = rng.integers(0, 50, size=3) if dark else rng.integers(215, 256, size=3)
        background = tuple(int(v) for v in shade)
        # under a full panel the photo would be painted over: start from the plain page
        big = Image.new("RGB", (bw, bh), background) if full else \
            img.convert("RGB").resize((bw, bh), Image.Resampling.BILINEAR)
        draw = ImageDraw.Draw(big)
        draw.rectangle(panel, fill=background)
        colour = contrasting_colour(np.asarray(background, dtype=np.uint8).reshape(1, 1, 3), rng)
        line = max(6, int(min(big.size) * rng.uniform(*self.cfg.page_line_range)))
        font_path = self.fonts[int(rng.integers(len(self.fonts)))]
        boxes: Boxes = []
        x0, y0, x1, y1 = panel
        margin = int(rng.uniform(0.03, 0.1) * (x1 - x0))
        columns = 2 if (x1 - x0) > 40 * line and rng.random() < 0.4 else 1
        gap = 2 * line
        col_w = (x1 - x0 - 2 * margin - (columns - 1) * gap) // columns
        for c in range(columns):
            left, y = x0 + margin + c * (col_w + gap), y0 + margin
            if c == 0 and rng.random() < 0.5:  # a heading
                size = int(line * rng.uniform(1.6, 2.5))
                y = self._page_line(draw, boxes, _font(font_path, size), colour, left, y, col_w, rng, full=False)
                y += line
            font = _font(font_path, line)
            while y + 1.3 * line < y1 - margin:
                for _ in range(int(rng.integers(2, 8))):  # a paragraph
                    if y + 1.3 * line >= y1 - margin:
                        break
                    y = self._page_line(draw, boxes, font, colour, left, y, col_w, rng, full=True)
                y += int(line * rng.uniform(0.5, 2.0))
        scale = 1.0 / supersample
        small = big.resize((w, h), Image.Resampling.BILINEAR, reducing_gap=2.0)
        return small, [(np.asarray(b) * scale).tolist() for b in boxes]

    def render_caption(self, img: Image.Image, rng: np.random.Generator,
                       kind: str | None = None) -> tuple[Image.Image, Boxes]:
        """``img`` with a caption of one ``CAPTION_KINDS`` kind (when None, one of the configured
        ``caption_kinds`` drawn by their ``CAPTION_WEIGHTS``) and its boxes:
        "band": a plain band added under (or over) the photo with a credit at one or both ends
        (the image grows by the band); "corner": a credit in a corner, plain or on a small
        panel; "edge": a credit turned 90 degrees along the left or right edge; "date": a
        camera's orange date stamp near the bottom right; "watermark": a large faint credit or
        address anywhere. Text height 2-6 % of the short edge (watermarks 6-14 %)."""
        kind = kind or self.caption_kinds[int(rng.choice(len(self.caption_kinds), p=self.caption_weights))]
        if kind not in CAPTION_KINDS:
            raise ValueError(f"unknown caption kind {kind!r}; known: {', '.join(CAPTION_KINDS)}")
        img = img.convert("RGB")  # a copy: cached images stay untouched
        short = min(img.size)
        if kind == "band":
            return self._caption_band(img, rng)
        if kind == "watermark":
            size, text, alpha = short * rng.uniform(0.06, 0.14), random_credit(rng), int(rng.integers(60, 150))
            colour = (255, 255, 255) if rng.random() < 0.6 else (0, 0, 0)
        elif kind == "date":
            size, text, alpha = short * rng.uniform(0.03, 0.06), random_date(rng), int(rng.integers(200, 256))
            colour = (255, int(rng.integers(120, 220)), int(rng.integers(0, 80)))
        else:
            size, text, alpha = short * rng.uniform(0.02, 0.05), random_credit(rng), int(rng.integers(170, 256))
            colour = (255, 255, 255) if rng.random() < 0.5 else contrasting_colour(np.asarray(img), rng)
        layer, corners = self._text_layer(text, max(6, int(size)), colour, rng, alpha=alpha, stroke_p=0.1)
        if kind == "corner" and rng.random() < 0.35:  # on a small panel
            panel = Image.new("RGBA", layer.size, (255, 255, 255, 255) if sum(colour) < 384 else (0, 0, 0, 255))
            layer = Image.alpha_composite(panel, layer)
        if kind == "edge":
            rot, rot_size = rotation_matrix(layer.width, layer.height, 90.0 if rng.random() < 0.5 else -90.0)
            layer, corners = warp(layer, rot, rot_size, (0, 0, 0, 0)), transform_points(corners, rot)
        if layer.width >= img.width or layer.height >= img.height:
            return img, []
        margin = int(short * rng.uniform(0.0, 0.03))
        free_x, free_y = img.width - layer.width, img.height - layer.height
        if kind == "watermark":
            x, y = int(rng.integers(0, free_x + 1)), int(rng.integers(0, free_y + 1))
        elif kind == "edge":
            x = min(margin, free_x) if rng.random() < 0.5 else max(0, free_x - margin)
            y = int(rng.integers(0, free_y + 1))
        else:  # a corner, the bottom right most often (dates: always)
            right = kind == "date" or rng.random() < 0.6
            bottom = kind == "date" or rng.random() < 0.75
            x = max(0, free_x - margin) if right else min(margin, free_x)
            y = max(0, free_y - margin) if bottom else min(margin, free_y)
        img.paste(layer, (x, y), layer)
        return img, [(corners + (x, y)).reshape(-1).tolist()]

    def _caption_band(self, img: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, Boxes]:
        """A plain band under (or, a quarter of the time, over) ``img`` with a credit at its left
        end, its right end or both."""
        w, h = img.size
        font = _font(self.fonts[int(rng.integers(len(self.fonts)))], max(6, int(min(w, h) * rng.uniform(0.02, 0.045))))
        band = int(font.size * rng.uniform(1.3, 2.2))
        shade = int(rng.integers(225, 256)) if rng.random() < 0.6 else int(rng.integers(0, 40))
        canvas = Image.new("RGB", (w, h + band), (shade, shade, shade))
        top = rng.random() < 0.25
        canvas.paste(img, (0, band if top else 0))
        draw = ImageDraw.Draw(canvas)
        colour = contrasting_colour(np.full((1, 1, 3), shade, dtype=np.uint8), rng)
        y = (0 if top else h) + (band - font.size) // 2
        pad = int(band * 0.3)
        ends = ("left", "right") if rng.random() < 0.35 else (("left",) if rng.random() < 0.5 else ("right",))
        boxes: Boxes = []
        for end in ends:
            text = random_credit(rng)
            length = font.getlength(text)
            if length >= w / len(ends) - 2 * pad:
                continue
            x = pad if end == "left" else int(w - pad - length)
            draw.text((x, y), text, font=font, fill=colour)
            l, t, r, b = draw.textbbox((x, y), text, font=font)
            boxes.append([l, t, r, t, r, b, l, b])
        return canvas, boxes

    def _page_line(self, draw: ImageDraw.ImageDraw, boxes: Boxes, font, colour, left: int, top: int, width: int,
                   rng, full: bool) -> int:
        """One line of words at (left, top), as wide as ``width`` allows (a last line of a
        paragraph or a heading: shorter); its ink box goes to ``boxes``. Returns the next top."""
        target = width * (rng.uniform(0.85, 1.0) if full and rng.random() < 0.8 else rng.uniform(0.2, 0.7))
        text = ""
        while True:
            word = random_word(rng)
            candidate = f"{text} {word}" if text else word
            if font.getlength(candidate) > target:
                break
            text = candidate
        step = int(font.size * rng.uniform(1.25, 1.6))
        if text:
            draw.text((left, top), text, font=font, fill=colour)
            l, t, r, b = draw.textbbox((left, top), text, font=font)
            boxes.append([l, t, r, t, r, b, l, b])
        return top + step

    def _text_layer(self, text: str, size: int, colour, rng, alpha: int | None = None,
                    stroke_p: float = 0.25) -> tuple[Image.Image, np.ndarray]:
        """A transparent layer with ``text`` (opacity ``alpha``, random 190-255 when None; an
        outline with probability ``stroke_p``) and the 4 corners of its ink box."""
        font = _font(self.fonts[int(rng.integers(len(self.fonts)))], size)
        stroke = int(max(1, size // 12)) if rng.random() < stroke_p else 0
        left, top, right, bottom = font.getbbox(text, stroke_width=stroke)
        pad = 2 + stroke
        layer = Image.new("RGBA", (right - left + 2 * pad, bottom - top + 2 * pad), (0, 0, 0, 0))
        alpha = int(rng.integers(190, 256)) if alpha is None else alpha
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
