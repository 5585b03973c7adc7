"""The one decode-and-resize step shared by training and the pipeline.

``decode_image(data)`` turns the bytes of any image file PIL reads into an upright RGB
``uint8`` array whose short edge is ``short_edge`` pixels (256, as in the paper). What the
model sees in production is what it saw in training because both call this function.

- The format is decided by content, never by the file name.
- Large JPEGs are decoded in draft mode: libjpeg scales by 1/2, 1/4 or 1/8 while
  decoding, so a 12 MP photo is never decoded at full size. The drafted image may fall
  short of the target by ``draft_tolerance`` (5 %): a 1500x1000 photo is decoded at 1/4
  (375x250, then upscaled by 2.4 %) instead of 1/2 (750x500), which costs 40 % less.
- EXIF orientation is applied; palette, grey, LA/RGBA (composited on white), CMYK,
  16-bit and float images all become 8-bit RGB; animated images use their first frame.
- A declared size above ``max_pixels`` raises ``ImageTooLarge`` before any pixel is
  decoded (decompression bombs); anything PIL cannot decode raises ``ImageDecodeError``.
- The long edge is rounded to a multiple of ``long_edge_multiple`` (at most a few percent
  of aspect change) so that images of similar shape batch together, and capped at
  ``max_long_edge`` for panoramas; very thin images are padded to ``min_edge``.
- Or, with ``fixed_long_edge`` (341 for the shipped student), every image becomes
  ``short_edge`` x ``fixed_long_edge`` in its own orientation (256x341 landscape, 341x256
  portrait; squares count as landscape): the aspect ratio is not kept, and every batch has
  one of two shapes. Which of the two a model expects is stored with its weights
  (``meta["preprocess"]``, ``shape_meta`` / ``preprocess_from_meta``), so training, evaluation
  and the pipeline resize alike.
"""

from __future__ import annotations

import dataclasses
import io
import math
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Normalisation applied to the uint8 RGB array before the network (ImageNet statistics).
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class ImageDecodeError(ValueError):
    """The bytes are not an image PIL can decode (empty, truncated, HTML, SVG, ...)."""


class ImageTooLarge(ImageDecodeError):
    """The image declares more pixels than allowed (a decompression bomb guard)."""


@dataclass(frozen=True)
class PreprocessConfig:
    short_edge: int = 256
    long_edge_multiple: int = 32
    max_long_edge: int = 2048
    min_edge: int = 32
    draft_tolerance: float = 0.05  # how far below the target a JPEG draft may decode
    max_pixels: int = 100_000_000
    background: tuple[int, int, int] = (255, 255, 255)
    fixed_long_edge: int = 0  # > 0: every image short_edge x fixed_long_edge (aspect not kept)


DEFAULT_PREPROCESS = PreprocessConfig()
# The fields that decide the model's input shape: stored with the weights (meta["preprocess"]).
SHAPE_FIELDS = ("short_edge", "long_edge_multiple", "max_long_edge", "fixed_long_edge")


def shape_meta(cfg: PreprocessConfig = DEFAULT_PREPROCESS) -> dict:
    """The input-shape fields of ``cfg``, as stored in a checkpoint's ``meta["preprocess"]``."""
    return {name: getattr(cfg, name) for name in SHAPE_FIELDS}


def preprocess_from_meta(meta: dict | None, base: PreprocessConfig = DEFAULT_PREPROCESS) -> PreprocessConfig:
    """``base`` with the input-shape fields a checkpoint's meta stores (weights without
    them were trained on ``base``'s shapes: short edge 256, aspect kept). Unknown fields are
    refused, so weights from a newer version never run on the wrong shapes silently."""
    stored = dict((meta or {}).get("preprocess") or {})
    unknown = sorted(set(stored) - set(SHAPE_FIELDS))
    if unknown:
        raise ValueError(f"the weights ask for preprocessing fields this version does not know: {unknown}")
    return dataclasses.replace(base, **{k: int(v) for k, v in stored.items()})


def target_size(width: int, height: int, cfg: PreprocessConfig = DEFAULT_PREPROCESS) -> tuple[int, int]:
    """(width, height) after resizing: short edge ``cfg.short_edge``, aspect kept up to
    rounding the long edge, long edge capped; or, with ``cfg.fixed_long_edge``, that fixed
    shape in the image's orientation."""
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"image has no pixels ({width}x{height})")
    if cfg.fixed_long_edge > 0:
        short, long_ = cfg.short_edge, cfg.fixed_long_edge
        return (short, long_) if height > width else (long_, short)
    short, long_ = (width, height) if width <= height else (height, width)
    scale = cfg.short_edge / short
    new_long = long_ * scale
    if new_long > cfg.max_long_edge:
        scale = cfg.max_long_edge / long_
        new_long = cfg.max_long_edge
    new_short = max(1, round(short * scale))
    m = cfg.long_edge_multiple
    new_long = max(m, int(round(new_long / m)) * m) if m > 1 else max(1, round(new_long))
    new_long = min(new_long, cfg.max_long_edge)
    return (new_short, new_long) if width <= height else (new_long, new_short)


def to_rgb(img: Image.Image, background: tuple[int, int, int] = DEFAULT_PREPROCESS.background) -> Image.Image:
    """Any PIL mode -> 8-bit RGB (alpha composited on ``background``, 16-bit scaled)."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.nan_to_num(np.asarray(img, dtype=np.float64))
        hi = float(arr.max()) if arr.size else 0.0
        if mode == "F" and hi <= 1.0:
            arr = arr * 255.0  # float images in [0, 1]
        elif hi > 65535:
            arr = arr * (255.0 / hi)
        elif hi > 255 or mode.startswith("I;16"):
            arr = arr / 257.0  # 16-bit range
        arr = np.clip(np.nan_to_num(arr), 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
        mode = img.mode
    if mode in ("LA", "La", "PA", "RGBa"):
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode == "RGBA":
        canvas = Image.new("RGB", img.size, background)
        canvas.paste(img, mask=img.getchannel("A"))
        return canvas
    return img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


def open_image(data: bytes, cfg: PreprocessConfig = DEFAULT_PREPROCESS) -> Image.Image:
    """Open ``data`` and check its declared size, without decoding pixels."""
    if not data:
        raise ImageDecodeError("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            # Our own max_pixels check below replaces PIL's warning; PIL still raises
            # DecompressionBombError past twice its own limit.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise ImageTooLarge(str(e)) from e
    except UnidentifiedImageError as e:
        raise ImageDecodeError(f"not a recognised image format ({_sniff(data)})") from e
    except Exception as e:  # PIL raises many types on malformed headers
        raise ImageDecodeError(f"unreadable image header: {type(e).__name__}: {e}") from e
    w, h = img.size
    if w * h > cfg.max_pixels:
        raise ImageTooLarge(f"image declares {w}x{h} = {w * h} pixels, more than the limit {cfg.max_pixels}")
    if w <= 0 or h <= 0:
        raise ImageDecodeError(f"image has no pixels ({w}x{h})")
    return img


def _sniff(data: bytes) -> str:
    head = data[:64].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        return "looks like an HTML page"
    if head.startswith(b"<?xml") or head.startswith(b"<svg"):
        return "looks like XML/SVG, which is not decoded"
    if head[:1] in (b"{", b"["):
        return "looks like JSON"
    return f"first bytes {data[:8]!r}"


def decode_image(data: bytes, cfg: PreprocessConfig = DEFAULT_PREPROCESS) -> np.ndarray:
    """Bytes of an image file -> upright RGB ``uint8`` array (H, W, 3), short edge
    ``cfg.short_edge``. Raises ``ImageDecodeError`` / ``ImageTooLarge``."""
    img = open_image(data, cfg)
    try:
        w, h = img.size
        tw, th = target_size(w, h, cfg)
        if img.format == "JPEG":
            # libjpeg decodes at 1/2, 1/4, 1/8 scale, never below the requested size.
            img.draft("RGB", draft_request((tw, th), cfg))
        img = ImageOps.exif_transpose(img)  # loads pixels (first frame of animations)
        return resize_image(img, cfg)
    except (ImageDecodeError, MemoryError):
        raise
    except Exception as e:  # truncated data, corrupt streams, codec errors
        raise ImageDecodeError(f"cannot decode image: {type(e).__name__}: {e}") from e
    finally:
        img.close()


def draft_request(size: tuple[int, int], cfg: PreprocessConfig = DEFAULT_PREPROCESS) -> tuple[int, int]:
    """The size to ask a JPEG draft for: ``size`` less ``cfg.draft_tolerance``, so a scale
    that lands a few percent short of the target is taken (and the rest upscaled)."""
    keep = 1.0 - cfg.draft_tolerance
    return tuple(max(1, math.ceil(v * keep)) for v in size)  # type: ignore[return-value]


def resize_image(img: Image.Image, cfg: PreprocessConfig = DEFAULT_PREPROCESS) -> np.ndarray:
    """The part of ``decode_image`` after decoding: an upright PIL image of any mode ->
    RGB ``uint8`` array (H, W, 3) at ``target_size``, padded to ``cfg.min_edge``.

    Training calls this on augmented images (whose box coordinates it transformed itself),
    so the resize the model learns from is the one the pipeline applies."""
    img = to_rgb(img, cfg.background)
    w, h = img.size
    tw, th = target_size(w, h, cfg)
    if (w, h) != (tw, th):
        img = img.resize((tw, th), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return pad_to_min_edge(np.asarray(img, dtype=np.uint8), cfg)


def pad_to_min_edge(arr: np.ndarray, cfg: PreprocessConfig = DEFAULT_PREPROCESS) -> np.ndarray:
    """Pad a very thin image (a 1x20000 strip) with the background colour so that the
    network's strided layers still see at least ``cfg.min_edge`` pixels."""
    h, w = arr.shape[:2]
    if h >= cfg.min_edge and w >= cfg.min_edge:
        return arr
    out = np.empty((max(h, cfg.min_edge), max(w, cfg.min_edge), 3), dtype=np.uint8)
    out[...] = np.asarray(cfg.background, dtype=np.uint8)
    out[:h, :w] = arr
    return out


def to_tensor(images):
    """uint8 (H, W, 3) array, or a list of same-shape arrays -> normalised float tensor
    (N, 3, H, W) in channels_last memory format."""
    import torch

    if isinstance(images, np.ndarray):
        images = [images]
    # (x / 255 - mean) / std as one subtraction and one multiplication, in place: the
    # permuted NHWC batch already has channels_last strides, which float() keeps.
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()
    shift = torch.tensor([255.0 * m for m in MEAN], dtype=x.dtype).view(1, 3, 1, 1)
    scale = torch.tensor([1.0 / (255.0 * s) for s in STD], dtype=x.dtype).view(1, 3, 1, 1)
    return x.sub_(shift).mul_(scale).contiguous(memory_format=torch.channels_last)
