"""Generate the bad-input corpus: broken files, valid but unusual images, odd names.

    python -m tests.data.make_bad_corpus            # writes tests/data/bad/ (git-ignored)
    python -m tests.data.make_bad_corpus DEST_DIR

``make_corpus(dest)`` writes every kind into ``dest`` and returns ``{name: expected}``:
``"decided"`` (a valid image, however unusual: it must reach text or non_text),
``"failed"`` (it must reach failed with a readable reason, see ``REASONS``), or
``"either"`` (depends on the environment: a mode-000 file is readable by root).
Run the pipeline with ``CORPUS_FLAGS`` so that the limits the corpus tests are the ones set.
"""

from __future__ import annotations

import gzip
import os
import shutil
import sys
from typing import Callable

import numpy as np
from PIL import Image

from tests.images import encode, gradient, png_declaring

DECIDED, FAILED, EITHER = "decided", "failed", "either"

MAX_BYTES = 1_000_000
CORPUS_FLAGS = ["--max_bytes", str(MAX_BYTES)]

# Words the readable reason of a failed kind must contain (case-insensitive).
REASONS = {
    "zero_byte.jpg": "empty",
    "html_error_page.jpg": "html",
    "svg_named.jpg": "svg",
    "json_error.jpg": "json",
    "bomb_huge_declared.png": "pixels",
    "bomb_over_max_pixels.png": "limit",
    "bomb_jpeg_65500x65500.jpg": "pixels",
    "valid_but_over_max_bytes.jpg": "max_bytes",
    "a directory.jpg": "directory",
    "dangling_symlink.jpg": "not found",
    "fifo.jpg": "regular file",
    "dev_zero_link.jpg": "regular file",
    "truncated.jpg": "truncated",
}


def _rgb(w=400, h=300) -> Image.Image:
    return Image.fromarray(gradient(w, h))


def _jpeg(**kw) -> bytes:
    return encode(_rgb(), "JPEG", **kw)


def _png(**kw) -> bytes:
    return encode(_rgb(), "PNG", **kw)


def _exif_jpeg(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(_rgb(), "JPEG", exif=exif.tobytes())


def _animated_gif() -> bytes:
    frames = [Image.new("RGB", (200, 150), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def _palette_with_transparency() -> bytes:
    img = _rgb().convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return encode(img, "PNG", transparency=0)


def _sixteen_bit() -> bytes:
    arr = (gradient()[..., 0].astype(np.uint16) * 257)
    return encode(Image.fromarray(arr), "PNG")


def _float_tiff() -> bytes:
    return encode(Image.fromarray(gradient()[..., 0].astype(np.float32) / 255.0), "TIFF")


def _jpeg_declaring(width: int, height: int) -> bytes:
    """A small JPEG whose frame header (SOF0) claims ``width`` x ``height``."""
    data = bytearray(encode(Image.new("RGB", (16, 16), (9, 9, 9)), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


def _bad_crc_png() -> bytes:
    data = bytearray(_png())
    idat = data.index(b"IDAT")
    data[idat + 20] ^= 0xFF  # corrupt the compressed pixels; the chunk's CRC no longer fits
    return bytes(data)


def _noise(n: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


# name -> (expected, bytes). Names are chosen to be odd: the pipeline decides by content.
FILES: dict[str, tuple[str, Callable[[], bytes]]] = {
    # valid, ordinary content under odd names
    "photo with spaces.jpg": (DECIDED, _jpeg),
    "ünïcødé 文字.png": (DECIDED, _png),
    "hash#tag.jpg": (DECIDED, _jpeg),
    "question?.png": (DECIDED, _png),
    "no_extension": (DECIDED, _jpeg),
    "double::colon.jpg": (DECIDED, _jpeg),
    "percent%20encoded.jpg": (DECIDED, _jpeg),
    "back\\slash.png": (DECIDED, _png),
    "UPPER CASE.JPEG": (DECIDED, _jpeg),
    "png_named.gif": (DECIDED, _png),
    "jpeg_named.png": (DECIDED, _jpeg),
    "webp_named.jpg": (DECIDED, lambda: encode(_rgb(), "WEBP")),
    # valid but unusual images
    "tiny_1x1.png": (DECIDED, lambda: encode(Image.new("RGB", (1, 1), (0, 0, 0)), "PNG")),
    "extreme_aspect_1x20000.png": (DECIDED, lambda: encode(Image.new("L", (1, 20000), 0), "PNG")),
    "extreme_aspect_20000x1.png": (DECIDED, lambda: encode(Image.new("RGB", (20000, 1), (0, 0, 0)), "PNG")),
    "animated.gif": (DECIDED, _animated_gif),
    "cmyk.jpg": (DECIDED, lambda: encode(_rgb().convert("CMYK"), "JPEG")),
    "sixteen_bit.png": (DECIDED, _sixteen_bit),
    "palette_transparency.png": (DECIDED, _palette_with_transparency),
    "rgba.png": (DECIDED, lambda: encode(_rgb().convert("RGBA"), "PNG")),
    "grey_alpha.png": (DECIDED, lambda: encode(_rgb().convert("LA"), "PNG")),
    "bilevel.png": (DECIDED, lambda: encode(_rgb().convert("1"), "PNG")),
    "grayscale.jpg": (DECIDED, lambda: encode(_rgb().convert("L"), "JPEG")),
    "exif_rotate_3.jpg": (DECIDED, lambda: _exif_jpeg(3)),
    "exif_rotate_6.jpg": (DECIDED, lambda: _exif_jpeg(6)),
    "exif_rotate_8.jpg": (DECIDED, lambda: _exif_jpeg(8)),
    "progressive.jpg": (DECIDED, lambda: _jpeg(progressive=True)),
    "lossless.webp": (DECIDED, lambda: encode(_rgb(), "WEBP", lossless=True)),
    "float32.tiff": (DECIDED, _float_tiff),
    "bitmap.bmp": (DECIDED, lambda: encode(_rgb(), "BMP")),
    "trailing_garbage.jpg": (DECIDED, lambda: _jpeg() + b"<html>appended junk</html>" * 50),
    # broken content
    "zero_byte.jpg": (FAILED, lambda: b""),
    "truncated.jpg": (FAILED, lambda: _jpeg()[:600]),
    "truncated.png": (FAILED, lambda: _png()[: len(_png()) // 3]),
    "header_only.jpg": (FAILED, lambda: b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"),
    "bad_crc.png": (FAILED, _bad_crc_png),
    "html_error_page.jpg": (FAILED, lambda: b"<!DOCTYPE html><html><body><h1>403 Forbidden</h1></body></html>"),
    "json_error.jpg": (FAILED, lambda: b'{"error": {"code": 404, "message": "No such object"}}'),
    "svg_named.jpg": (FAILED, lambda: b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>'),
    "plain_text.png": (FAILED, lambda: b"just some text, not an image\n" * 10),
    "random_bytes.jpg": (FAILED, lambda: _noise(4096)),
    "gzip_named.png": (FAILED, lambda: gzip.compress(_png())),
    "zero_width.png": (FAILED, lambda: png_declaring(0, 10)),
    "bomb_huge_declared.png": (FAILED, lambda: png_declaring(100_000, 100_000)),
    "bomb_over_max_pixels.png": (FAILED, lambda: png_declaring(12_000, 10_000)),
    "bomb_jpeg_65500x65500.jpg": (FAILED, lambda: _jpeg_declaring(65_500, 65_500)),
    "valid_but_over_max_bytes.jpg": (FAILED, lambda: _jpeg() + b"\0" * MAX_BYTES),
}


def _special(dest: str) -> dict[str, str]:
    """Entries that are not plain files: a folder, links, a FIFO, an unreadable file."""
    os.mkdir(os.path.join(dest, "a directory.jpg"))
    os.symlink("no-such-target.jpg", os.path.join(dest, "dangling_symlink.jpg"))
    os.symlink("cmyk.jpg", os.path.join(dest, "symlink_to_valid.jpg"))
    os.symlink("/dev/zero", os.path.join(dest, "dev_zero_link.jpg"))
    os.mkfifo(os.path.join(dest, "fifo.jpg"))
    unreadable = os.path.join(dest, "unreadable.jpg")
    with open(unreadable, "wb") as f:
        f.write(_jpeg())
    os.chmod(unreadable, 0)
    return {
        "a directory.jpg": FAILED,
        "dangling_symlink.jpg": FAILED,
        "symlink_to_valid.jpg": DECIDED,
        "dev_zero_link.jpg": FAILED,
        "fifo.jpg": FAILED,
        "unreadable.jpg": EITHER,  # readable when the tests run as root (CI does)
    }


def make_corpus(dest_dir) -> dict[str, str]:
    """Write the corpus into ``dest_dir`` (created; must not hold a corpus yet)."""
    dest = os.fspath(dest_dir)
    os.makedirs(dest, exist_ok=True)
    expected = {}
    for name, (outcome, make) in FILES.items():
        with open(os.path.join(dest, name), "wb") as f:
            f.write(make())
        expected[name] = outcome
    expected.update(_special(dest))
    return expected


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    dest = argv[0] if argv else os.path.join(os.path.dirname(os.path.abspath(__file__)), "bad")
    if os.path.exists(dest):
        shutil.rmtree(dest)
    expected = make_corpus(dest)
    print(f"{len(expected)} entries in {dest}: "
          f"{sum(v == DECIDED for v in expected.values())} decided, {sum(v == FAILED for v in expected.values())} failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
