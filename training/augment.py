"""Augmentation that keeps region labels exact: one affine map moves pixels and boxes alike.

Flip, rotation (canvas expanded so nothing is cut off) and zoom (a crop window the resize
then enlarges) are composed into a single 3x3 matrix ``A`` that maps a point of the stored
image to the augmented image. PIL resamples once with ``A``'s inverse, and the box corners
go through ``A`` itself. Coordinates are continuous: pixel ``(i, j)`` covers
``[i, i+1] x [j, j+1]``, the convention of the box annotations and of PIL's transforms.

The last step is the pipeline's own: ``model.preprocessing.decode_image`` on JPEG
re-encoded bytes (quality jitter) or ``model.preprocessing.resize_image`` on the image.
Region labels are area fractions of grid cells, so they may be computed in the augmented
image's coordinates before that resize. Photometric steps (``photometric``: colour jitter,
grayscale, blur) come after it, on the model's input array; they move no box.
"""

from __future__ import annotations

import io
import math
from typing import Sequence

import numpy as np
from PIL import Image, ImageFilter

from model.preprocessing import DEFAULT_PREPROCESS, PreprocessConfig, decode_image, resize_image
from training.config import AugmentConfig

Boxes = list[list[float]]


def translation(tx: float, ty: float) -> np.ndarray:
    return np.array([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])


def hflip_matrix(width: float) -> np.ndarray:
    return np.array([[-1.0, 0.0, width], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def rotation_matrix(width: float, height: float, degrees: float) -> tuple[np.ndarray, tuple[int, int]]:
    """Rotate by ``degrees`` (counter-clockwise on screen) about the centre, on a canvas
    expanded to hold the whole image. Returns the matrix and the new (width, height)."""
    t = math.radians(degrees)
    c, s = math.cos(t), math.sin(t)
    new_w = int(math.ceil(abs(width * c) + abs(height * s) - 1e-6))
    new_h = int(math.ceil(abs(width * s) + abs(height * c) - 1e-6))
    # y points down in image coordinates, so a screen-CCW rotation is [[c, s], [-s, c]].
    rot = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])
    return translation(new_w / 2, new_h / 2) @ rot @ translation(-width / 2, -height / 2), (new_w, new_h)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """(N, 2) points through a 3x3 affine matrix."""
    return points @ matrix[:2, :2].T + matrix[:2, 2]


def transform_boxes(boxes: Sequence[Sequence[float]], matrix: np.ndarray) -> Boxes:
    """Flat ``x1, y1, ..., xn, yn`` polygons through ``matrix``."""
    out = []
    for box in boxes:
        pts = np.asarray(box, dtype=np.float64).reshape(-1, 2)
        out.append(transform_points(pts, matrix).reshape(-1).tolist())
    return out


def flip_and_crop(img: Image.Image, matrix: np.ndarray, size: tuple[int, int]) -> Image.Image | None:
    """``warp``'s result without resampling when ``matrix`` is an optional horizontal flip
    followed by an integer shift whose window lies inside the image (flip and zoom without
    rotation): a transpose and a crop, ~50x faster and pixel for pixel the same. None
    for any other matrix."""
    linear = matrix[:2, :2]
    flipped = np.allclose(linear, [[-1.0, 0.0], [0.0, 1.0]])
    if not (flipped or np.allclose(linear, np.eye(2))) or not np.allclose(matrix[2], [0.0, 0.0, 1.0]):
        return None
    if flipped:  # matrix = shift @ flip, and a flip is its own inverse
        img, matrix = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT), matrix @ hflip_matrix(img.width)
    shift = -matrix[:2, 2]
    x0, y0 = (int(round(v)) for v in shift)
    if not np.allclose(shift, (x0, y0)) or x0 < 0 or y0 < 0 or x0 + size[0] > img.width or y0 + size[1] > img.height:
        return None
    return img.crop((x0, y0, x0 + size[0], y0 + size[1]))


def warp(img: Image.Image, matrix: np.ndarray, size: tuple[int, int], fill) -> Image.Image:
    """Resample ``img`` so that source point p lands on ``matrix @ p`` in a ``size`` canvas
    (a flip and / or an integer shift inside the image is a transpose and a crop instead)."""
    fast = flip_and_crop(img, matrix, size)
    return fast if fast is not None else resample_affine(img, matrix, size, fill)


def resample_affine(img: Image.Image, matrix: np.ndarray, size: tuple[int, int], fill) -> Image.Image:
    """``warp`` by bilinear resampling, whatever the matrix."""
    inv = np.linalg.inv(matrix)
    coeffs = tuple(inv[0]) + tuple(inv[1])
    return img.transform(size, Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR,
                         fillcolor=fill)


def random_affine(width: int, height: int, rng: np.random.Generator,
                  cfg: AugmentConfig) -> tuple[np.ndarray, tuple[int, int]]:
    """A random flip / rotation / zoom as (matrix, output size); identity when none fires."""
    matrix = np.eye(3)
    size = (width, height)
    if rng.random() < cfg.flip_p:
        matrix = hflip_matrix(width) @ matrix
    if cfg.max_rotation > 0 and rng.random() < cfg.rotate_p:
        rot, size = rotation_matrix(width, height, rng.uniform(-cfg.max_rotation, cfg.max_rotation))
        matrix = rot @ matrix
    if cfg.min_zoom_side < 1 and rng.random() < cfg.zoom_p:
        w, h = size
        cw = max(1, int(round(w * rng.uniform(cfg.min_zoom_side, 1.0))))
        ch = max(1, int(round(h * rng.uniform(cfg.min_zoom_side, 1.0))))
        x0, y0 = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
        matrix = translation(-float(x0), -float(y0)) @ matrix
        size = (cw, ch)
    return matrix, size


def mean_colour(img: Image.Image) -> tuple[int, ...]:
    """Mean colour (of a thumbnail), used to fill the corners a rotation uncovers."""
    small = img.resize((16, 16), Image.Resampling.BOX)
    return tuple(int(v) for v in np.asarray(small).reshape(-1, len(img.getbands())).mean(axis=0))


def augment_geometry(img: Image.Image, boxes: Sequence, ignore: Sequence, rng: np.random.Generator,
                     cfg: AugmentConfig) -> tuple[Image.Image, Boxes, Boxes]:
    """Random flip / rotation / zoom of the image and of its text and ignore boxes."""
    matrix, size = random_affine(img.width, img.height, rng, cfg)
    if np.allclose(matrix, np.eye(3)) and size == img.size:
        return img, [list(b) for b in boxes], [list(b) for b in ignore]
    out = warp(img, matrix, size, mean_colour(img))
    return out, transform_boxes(boxes, matrix), transform_boxes(ignore, matrix)


def jpeg_bytes(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=int(quality))
    return buf.getvalue()


def to_model_input(img: Image.Image, rng: np.random.Generator | None, cfg: AugmentConfig | None,
                   preprocess: PreprocessConfig = DEFAULT_PREPROCESS) -> np.ndarray:
    """The pipeline's final step: optionally JPEG re-encode at a random quality and decode
    with ``decode_image``, else ``resize_image``. Either way a uint8 (H, W, 3) array."""
    if rng is not None and cfg is not None and rng.random() < cfg.jpeg_p:
        lo, hi = cfg.jpeg_quality
        return decode_image(jpeg_bytes(img, rng.integers(lo, hi + 1)), preprocess)
    return resize_image(img, preprocess)


LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma of R, G, B
LUMA = np.array(LUMA_WEIGHTS, dtype=np.float32)


def photometric(image: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """Random colour jitter (brightness, contrast, saturation), grayscale and Gaussian blur of
    a uint8 (H, W, 3) model input, each with its own probability. Returns a new array (the
    input may be a cached decode) or ``image`` itself when nothing fires; draws nothing from
    ``rng`` when every probability is 0, so recipes without these steps keep their draws."""
    if cfg.colour_p <= 0 and cfg.gray_p <= 0 and cfg.blur_p <= 0:
        return image
    out = None
    if rng.random() < cfg.colour_p:
        # brightness b, contrast c about the mean luma, saturation s about each pixel's luma, in
        # that order, fold into one linear map: s*c*b*x + (1 - s)*c*b*luma(x) + (1 - c)*b*mean luma.
        b, c, s = rng.uniform(1 - cfg.colour_strength, 1 + cfg.colour_strength, size=3)
        x = image.astype(np.float32)
        luma = x @ LUMA
        out = x * np.float32(s * c * b)
        out += (luma * np.float32((1 - s) * c * b) + np.float32((1 - c) * b * luma.mean()))[..., None]
    if rng.random() < cfg.gray_p:
        luma = (image.astype(np.float32) if out is None else out) @ LUMA
        out = np.repeat(luma[..., None], 3, axis=2)
    if out is not None:
        image = (np.clip(out, 0, 255) + 0.5).astype(np.uint8)
    if rng.random() < cfg.blur_p:
        sigma = rng.uniform(0.3, max(0.3, cfg.max_blur_sigma))
        image = np.asarray(Image.fromarray(np.ascontiguousarray(image)).filter(ImageFilter.GaussianBlur(sigma)))
    return image


MIX_KINDS = ("mixup", "cutmix")


def check_mix_kind(kind: str, what: str = "mix") -> None:
    """Raise a clear error for a mix kind ``mix_images`` does not know."""
    if kind not in MIX_KINDS:
        raise ValueError(f"unknown {what} {kind!r}; known: {', '.join(MIX_KINDS)}")


def mix_images(image: np.ndarray, other: np.ndarray, rng: np.random.Generator, kind: str) -> np.ndarray:
    """``image`` mixed with ``other`` (two uint8 (H, W, 3) model inputs; ``other`` is resized to
    ``image``'s shape first): "mixup" blends them with a weight uniform in [0, 1]; "cutmix"
    pastes the window of ``other`` at a random place whose share of the area is uniform in [0, 1]."""
    check_mix_kind(kind)
    h, w = image.shape[:2]
    if other.shape[:2] != (h, w):
        other = np.asarray(Image.fromarray(np.ascontiguousarray(other)).resize((w, h), Image.BILINEAR))
    if kind == "mixup":
        lam = np.float32(rng.uniform())
        return (image.astype(np.float32) * lam + other.astype(np.float32) * (1 - lam) + 0.5).astype(np.uint8)
    side = np.sqrt(rng.uniform())
    ch, cw = max(1, round(h * side)), max(1, round(w * side))
    y, x = int(rng.integers(h - ch + 1)), int(rng.integers(w - cw + 1))
    out = image.copy()
    out[y:y + ch, x:x + cw] = other[y:y + ch, x:x + cw]
    return out
