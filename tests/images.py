"""Image bytes for tests and the bad-input corpus (PIL and numpy only: no torch, no pytest)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def gradient(w=400, h=300):
    """A (h, w, 3) uint8 array, dark on the left, bright on the right."""
    x = np.linspace(0, 255, w, dtype=np.uint8)[None, :, None]
    return np.broadcast_to(x, (h, w, 3)).copy()


def png_declaring(width: int, height: int) -> bytes:
    """A PNG header that declares a huge image (no real pixel data): a decompression bomb."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")


def image_bytes(fmt: str, size=(64, 48), mode="RGB", color=(200, 30, 30), **save_kwargs) -> bytes:
    img = Image.new(mode, size, color if mode in ("RGB", "RGBA") else 128)
    if mode in ("RGB", "RGBA"):
        arr = np.asarray(img).copy()
        arr[: size[1] // 2, : size[0] // 2] = 20  # some structure
        img = Image.fromarray(arr, mode)
    return encode(img, fmt, **save_kwargs)
