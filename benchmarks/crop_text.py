"""Label check of the text-free crops (``DataConfig.crop_share``): how many of the crops
the recipe cuts from text images still hold text that PP-OCR reads.

A crop stays clear of every labelled box and ``ignore`` box of its image
(``training.data.text_free_crops``); text the labels miss ends up in a non-text draw.
This samples one crop from each of ``--n`` random training text images of a source, with
the recipe's crop settings, reads it with OCR at full size and applies the screening rule
(``training.collections.screen.screen_rule``): legible = at least 2 characters read at
confidence > 0.6; "any box" also counts boxes in which nothing legible was read.

    python -m benchmarks.crop_text --sources scenetext-masks icdar2015 --n 80
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from PIL import Image

from pipeline.ocr import load_rgb, make_engine, ocr_image
from training.collections.screen import screen_rule
from training.collections.sheets import fit
from training.config import DataConfig, default_data_root
from training.data import Record, load_records, text_free_crops


@dataclass
class CropCheck:
    source: str
    crops: int = 0
    any_box: int = 0
    legible: int = 0
    read: list = field(default_factory=list)  # (path, crop rectangle, texts) of the legible crops
    boxed: list = field(default_factory=list)  # (path, crop rectangle, RGB crop, boxes) of crops with any box

    def as_dict(self) -> dict:
        return {"source": self.source, "crops": self.crops, "any_box": self.any_box, "legible": self.legible,
                "legible_share": round(self.legible / self.crops, 4) if self.crops else None, "read": self.read}


def sample_crops(records: Sequence[Record], root: str | Path, n: int, seed: int = 0,
                 cfg: DataConfig | None = None) -> Iterator[tuple[Record, tuple, np.ndarray]]:
    """Up to ``n`` (record, rectangle, RGB crop): one crop each of random text records with
    boxes, cut as training cuts them (``cfg``'s crop sizes; images without room are skipped)."""
    cfg = cfg or DataConfig()
    rng = np.random.default_rng(seed)
    found = 0
    for i in rng.permutation(len(records)):
        record = records[int(i)]
        rgb = Image.fromarray(load_rgb((Path(root) / record.path).read_bytes()))  # decoded as screening does
        rects = text_free_crops(rgb.width, rgb.height, list(record.boxes) + list(record.ignore),
                                np.random.default_rng([seed, int(i)]), cfg.crop_min_side, cfg.crop_min_area)
        if not rects:
            continue
        rect = rects[int(rng.integers(len(rects)))]
        yield record, rect, np.asarray(rgb.crop(rect))
        found += 1
        if found >= n:
            return


def check_crops(engine, records: Sequence[Record], root: str | Path, source: str, n: int, seed: int = 0,
                cfg: DataConfig | None = None) -> CropCheck:
    """OCR ``n`` crops of ``source``'s text records (``engine``: ``pipeline.ocr.make_engine()``)."""
    check = CropCheck(source)
    mine = [r for r in records if r.source == source and r.label == 1 and r.boxes]
    for record, rect, crop in sample_crops(mine, root, n, seed, cfg):
        ocr = ocr_image(engine, crop)
        verdict = screen_rule(ocr["boxes"], ocr["text"], ocr["scores"], "text", (crop.shape[1], crop.shape[0]))
        check.crops += 1
        if verdict.boxes or verdict.ignore:
            check.any_box += 1
            check.boxed.append((record.path, list(rect), crop, verdict.boxes + verdict.ignore))
        if verdict.boxes:
            check.legible += 1
            check.read.append((record.path, list(rect), verdict.texts))
    return check


def contact_sheet(boxed: Sequence, cell: int = 320, columns: int = 4) -> Image.Image:
    """The crops of ``CropCheck.boxed`` side by side, each fitted into ``cell`` px with the
    boxes OCR found drawn in red."""
    from PIL import ImageDraw

    rows = (len(boxed) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * cell, rows * cell), "white")
    for k, (_, _, crop, boxes) in enumerate(boxed):
        img = fit(Image.fromarray(crop), cell, cell)
        scale = img.width / crop.shape[1]
        draw = ImageDraw.Draw(img)
        for box in boxes:
            draw.polygon([(x * scale, y * scale) for x, y in zip(box[0::2], box[1::2])], outline="red", width=2)
        sheet.paste(img, ((k % columns) * cell, (k // columns) * cell))
    return sheet


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=default_data_root(), help="data root (labels.jsonl, images/)")
    parser.add_argument("--split", default="train")
    parser.add_argument("--sources", nargs="+", default=["scenetext-masks", "icdar2015"])
    parser.add_argument("--n", type=int, default=80, help="crops per source")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--sheet", help="write a contact sheet (PNG) of the crops with a box found, boxes drawn")
    args = parser.parse_args(argv)
    records = load_records(args.root, split=args.split)
    engine = make_engine(num_threads=args.threads)
    results = []
    for source in args.sources:
        check = check_crops(engine, records, args.root, source, args.n, args.seed)
        results.append(check.as_dict())
        print(f"{source:20s} crops {check.crops:4d}  any box {check.any_box:4d}  legible text {check.legible:4d}"
              + (f" ({check.legible / check.crops:.1%})" if check.crops else ""))
        for path, rect, texts in check.read:
            print(f"    {path} {rect}: {texts}")
        if args.sheet and check.boxed:
            path = Path(args.sheet).with_suffix(f".{source}.png")
            contact_sheet(check.boxed).save(path)
            print(f"    wrote {path}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
