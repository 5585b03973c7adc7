"""How the student treats image kinds the dev photos lack: pages of text by text size,
captioned photos, and text-free images (plain colours, gradients, blurred noise).

    python -m benchmarks.synthetic_checks [--n 8] [--model_path A.pt B.pt]

Pages are white 850x1100 canvases with left-aligned lines of words in one font size (a
letter page at 100 dpi); at the model's 256-px input a 10-px font is 3 px tall. Captions
are large outlined words on a dev non-text photo. The text-free kinds should score low.
Prints, per kind and checkpoint, the share called text at the checkpoint's threshold and
the median score. The pages are drawn with PIL, like the training's synthetic pages
(``--synth.page_share``), so they favour a model trained on those; ``benchmarks.screenshots``
is the independent check on real pages.
"""

from __future__ import annotations

import argparse
import os
import random

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from benchmarks.common import SHARED_DATA, labelled_images
from benchmarks.screenshots import Scorer, summarise
from pipeline.handler import default_model_path
from training.config import SynthConfig
from training.synthtext import WORDS, find_fonts

PAGE_FONT_SIZES = (10, 14, 18, 24, 32)


def page(rng: random.Random, fonts: list[str], size: int) -> Image.Image:
    img = Image.new("RGB", (850, 1100), "white")
    draw, font, y = ImageDraw.Draw(img), ImageFont.truetype(rng.choice(fonts), size), 60
    while y < 1040:
        draw.text((60, y), " ".join(rng.choice(WORDS) for _ in range(10)), fill="black", font=font)
        y += int(size * 1.6)
    return img


def caption(rng: random.Random, fonts: list[str], photo: Image.Image) -> Image.Image:
    img = photo.convert("RGB").resize((600, 600))
    text = " ".join(rng.choice(WORDS) for _ in range(3)).upper()
    ImageDraw.Draw(img).text((20, 20), text, fill="white", font=ImageFont.truetype(rng.choice(fonts), 48),
                             stroke_width=3, stroke_fill="black")
    return img


def plain(rng: random.Random) -> Image.Image:
    return Image.new("RGB", (640, 480), tuple(rng.randrange(256) for _ in range(3)))


def gradient(rng: random.Random) -> Image.Image:
    ramp = np.linspace(0, 255, 640)[None, :, None] * np.asarray([rng.random() for _ in range(3)])
    return Image.fromarray(np.repeat(ramp, 480, axis=0).astype(np.uint8))


def noise(rng: random.Random) -> Image.Image:
    pixels = np.random.default_rng(rng.randrange(2**31)).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    return Image.fromarray(pixels).filter(ImageFilter.GaussianBlur(2))


def build_kinds(n: int, seed: int, fonts: list[str], photos: list[str]) -> dict[str, list[Image.Image]]:
    """{kind: n images} (each scorer resizes them to its model's input shape); kinds with text first."""
    rng = random.Random(seed)
    kinds = {f"page, {s}-px text (~{s * 256 / 850:.1f} px at input)": [page(rng, fonts, s) for _ in range(n)]
             for s in PAGE_FONT_SIZES}
    if photos:
        kinds["caption on a non-text photo"] = [caption(rng, fonts, Image.open(rng.choice(photos))) for _ in range(n)]
        kinds["non-text photo (dev), no text"] = [Image.open(p) for p in rng.sample(photos, min(n, len(photos)))]
    kinds["plain colour, no text"] = [plain(rng) for _ in range(n)]
    kinds["gradient, no text"] = [gradient(rng) for _ in range(n)]
    kinds["blurred noise, no text"] = [noise(rng) for _ in range(n)]
    return kinds


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=8, help="images per kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model_path", nargs="+", default=[default_model_path("torch")])
    parser.add_argument("--data_dir", default=SHARED_DATA, help="labelled data whose dev non-text photos are used")
    args = parser.parse_args(argv)
    fonts = find_fonts(SynthConfig().font_dirs, 16)
    if not fonts:
        parser.error("no TrueType fonts (apt-get install fonts-dejavu-core fonts-liberation2)")
    photos = []
    if os.path.exists(os.path.join(args.data_dir, "labels.jsonl")):
        photos = [r["file"] for r in labelled_images(args.data_dir, "dev") if r["label"] == 0]
    kinds = build_kinds(args.n, args.seed, fonts, photos)
    print("share called text (median score):")
    return summarise({os.path.relpath(m): Scorer(m) for m in args.model_path}, kinds, "kind")


if __name__ == "__main__":
    main()
