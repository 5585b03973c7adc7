import io

import numpy as np
import pytest
from PIL import Image

from model.preprocessing import (
    DEFAULT_PREPROCESS, ImageDecodeError, ImageTooLarge, PreprocessConfig, decode_image, preprocess_from_meta,
    shape_meta, target_size, to_tensor,
)
from tests.images import encode, gradient, png_declaring


@pytest.mark.parametrize("size,expected", [
    ((400, 300), (352, 256)),   # 341.3 -> rounded to a multiple of 32
    ((300, 400), (256, 352)),
    ((256, 256), (256, 256)),
    ((1920, 1080), (448, 256)),
    ((20000, 1), (2048, 1)),    # long edge capped
])
def test_target_size(size, expected):
    assert target_size(*size) == expected


FIXED = PreprocessConfig(fixed_long_edge=341)


@pytest.mark.parametrize("size,expected", [
    ((400, 300), (341, 256)), ((300, 400), (256, 341)), ((256, 256), (341, 256)),  # squares: landscape
    ((1920, 1080), (341, 256)), ((20000, 1), (341, 256)), ((1, 20000), (256, 341)),
])
def test_fixed_shape_keeps_orientation_not_aspect(size, expected):
    assert target_size(*size, FIXED) == expected


def test_fixed_shape_decode_uses_draft_and_orientation():
    for (w, h), shape in (((1500, 1000), (256, 341, 3)), ((1000, 1500), (341, 256, 3))):
        assert decode_image(encode(Image.fromarray(gradient(w, h)), "JPEG"), FIXED).shape == shape


def test_input_shape_travels_in_meta():
    assert preprocess_from_meta({}) == DEFAULT_PREPROCESS  # weights from before session 7
    assert preprocess_from_meta({"preprocess": shape_meta(FIXED)}).fixed_long_edge == 341
    kept = preprocess_from_meta({"preprocess": shape_meta(FIXED)}, PreprocessConfig(max_pixels=10))
    assert kept.max_pixels == 10  # only the shape fields come from the weights
    with pytest.raises(ValueError, match="does not know"):
        preprocess_from_meta({"preprocess": {"fisheye": 1}})


@pytest.mark.parametrize("mode", ["RGB", "L", "P", "RGBA", "LA", "CMYK", "1", "I;16", "I", "F"])
def test_every_mode_becomes_rgb_uint8(mode):
    base = Image.fromarray(gradient())
    if mode in ("I;16", "I", "F"):
        arr = (np.asarray(base.convert("L"), dtype=np.float64) * 257).astype(np.uint16)
        img = Image.fromarray(arr.astype(np.uint16 if mode == "I;16" else (np.int32 if mode == "I" else np.float32)))
        fmt = "PNG" if mode == "I;16" else "TIFF"
    else:
        img = base.convert(mode)
        fmt = {"CMYK": "JPEG", "LA": "PNG", "RGBA": "PNG", "1": "PNG", "P": "PNG", "L": "PNG", "RGB": "PNG"}[mode]
    out = decode_image(encode(img, fmt))
    assert out.dtype == np.uint8 and out.shape == (256, 352, 3)
    # the gradient survives: left darker than right
    assert out[:, :40].mean() < out[:, -40:].mean() - 100


def test_sixteen_bit_png_uses_full_range():
    arr = np.full((300, 400), 65535, np.uint16)
    arr[:, :200] = 0
    out = decode_image(encode(Image.fromarray(arr), "PNG"))
    assert out[:, :100].max() == 0 and out[:, -100:].min() == 255


def test_transparency_is_composited_on_white():
    rgba = np.zeros((300, 400, 4), np.uint8)  # fully transparent black
    out = decode_image(encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert out.min() == 255
    pal = Image.new("P", (300, 300), 0)
    pal.putpalette([0, 0, 0] * 256)
    out = decode_image(encode(pal, "PNG", transparency=0))
    assert out.min() == 255


def test_exif_orientation_is_applied():
    arr = gradient(400, 300)  # landscape: dark left, bright right
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    data = encode(Image.fromarray(arr), "JPEG", exif=exif.tobytes())
    out = decode_image(data)
    assert out.shape == (352, 256, 3)  # portrait after orientation
    assert out[:40].mean() < out[-40:].mean() - 100  # dark at the top


@pytest.fixture
def resize_inputs(monkeypatch) -> list:
    """Sizes of the images ``Image.resize`` is called on (after any JPEG draft)."""
    seen = []
    original = Image.Image.resize

    def spy(self, size, *a, **kw):
        seen.append(self.size)
        return original(self, size, *a, **kw)

    monkeypatch.setattr(Image.Image, "resize", spy)
    return seen


def test_large_jpeg_is_decoded_in_draft_mode(resize_inputs):
    big = Image.fromarray(np.random.default_rng(0).integers(0, 255, (3000, 4000, 3), dtype=np.uint8))
    data = encode(big, "JPEG", quality=70)
    out = decode_image(data)
    assert out.shape == (256, 352, 3)
    assert resize_inputs and resize_inputs[0][0] <= 1000, f"decoded at {resize_inputs[0]}, not near the target size"


@pytest.mark.parametrize("size, drafted", [
    ((1500, 1000), (375, 250)),   # 1/4 lands 2.4 % short of 256: taken, then upscaled
    ((1000, 1500), (250, 375)),
    ((1280, 720), (640, 360)),    # 1/4 would be 180 px: 30 % short, so 1/2
    ((1920, 1080), (480, 270)),   # 1/4 reaches 256 anyway
    ((300, 200), (300, 200)),     # small: no draft
])
def test_jpeg_draft_scale_allows_a_few_percent_below_target(resize_inputs, size, drafted):
    data = encode(Image.new("RGB", size, (120, 60, 30)), "JPEG", quality=80)
    out = decode_image(data)
    tw, th = target_size(*size)
    assert out.shape == (th, tw, 3)
    assert resize_inputs == [drafted]
    assert min(drafted) >= (1 - DEFAULT_PREPROCESS.draft_tolerance) * 256 or drafted == size


def test_draft_tolerance_zero_never_decodes_below_target(resize_inputs):
    data = encode(Image.new("RGB", (1500, 1000), (120, 60, 30)), "JPEG", quality=80)
    out = decode_image(data, PreprocessConfig(draft_tolerance=0.0))
    assert out.shape == (256, 384, 3) and resize_inputs == [(750, 500)]


def test_animated_gif_uses_first_frame():
    frames = [Image.new("RGB", (200, 150), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    out = decode_image(buf.getvalue())
    assert out[..., 0].mean() > 200 and out[..., 2].mean() < 50


def test_thin_image_is_padded_to_min_edge():
    out = decode_image(encode(Image.new("RGB", (20000, 1), (0, 0, 0)), "PNG"))
    assert out.shape == (32, 2048, 3)
    assert out[0].max() == 0 and out[-1].min() == 255  # padding is the background colour


def test_decompression_bombs_are_refused():
    with pytest.raises(ImageTooLarge):
        decode_image(png_declaring(100_000, 100_000))  # past PIL's own hard limit
    with pytest.raises(ImageTooLarge, match="more than the limit"):
        decode_image(png_declaring(12_000, 10_000))  # past ours (100 MP)
    with pytest.raises(ImageTooLarge):
        decode_image(encode(Image.new("RGB", (400, 300)), "PNG"), PreprocessConfig(max_pixels=1000))


@pytest.mark.parametrize("data,match", [
    (b"", "empty"),
    (b"<!DOCTYPE html><html>Not found</html>", "HTML"),
    (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>', "SVG"),
    (b"hello world", "not a recognised image"),
])
def test_non_images_raise_clear_errors(data, match):
    with pytest.raises(ImageDecodeError, match=match):
        decode_image(data)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_files_raise_decode_error(fmt):
    data = encode(Image.fromarray(gradient()), fmt)
    with pytest.raises(ImageDecodeError):
        decode_image(data[: len(data) // 3])


def test_to_tensor_normalises_and_is_channels_last():
    x = to_tensor([np.zeros((256, 320, 3), np.uint8), np.full((256, 320, 3), 255, np.uint8)])
    assert x.shape == (2, 3, 256, 320)
    assert x.is_contiguous(memory_format=__import__("torch").channels_last)
    assert x[0].mean() < -1.5 and x[1].mean() > 1.5
    assert DEFAULT_PREPROCESS.short_edge == 256
