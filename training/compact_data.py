"""Write a compact copy of the labelled data set, to train on another machine.

    python -m training.compact_data --out gpu_data --split train --short_edge 256 --quality 85

Every image of the chosen split(s) is resized so that its short edge is at most
``--short_edge`` pixels (the model's input size; smaller images are kept as they are) and
re-encoded (WebP by default: about half the bytes of the stored JPEGs at this size). Box
and ignore coordinates are scaled by the same factors, so region labels are unchanged; the
result is a data root (``labels.jsonl`` + images) that ``--root`` / ``$TEXTFILTER_DATA_ROOT``
accepts. It exists because a lent GPU machine takes a working tree of 64 MiB at most: the
training split of ``../shared/data`` (95 MB of JPEG) fits as 256-px WebP (48 MB).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path

from PIL import Image, ImageOps
from tqdm import tqdm

from training.config import default_data_root
from training.data import load_records

log = logging.getLogger("training.compact_data")

FORMATS = {"webp": ("WEBP", ".webp", {"method": 6}), "jpeg": ("JPEG", ".jpg", {"optimize": True})}


def scale_boxes(boxes: list, sx: float, sy: float) -> list:
    """Flat ``x1, y1, ..., xn, yn`` polygons scaled by ``sx`` / ``sy``."""
    return [[round(v * (sx if i % 2 == 0 else sy), 3) for i, v in enumerate(box)] for box in boxes]


def compact_image(src: Path, dst: Path, short_edge: int, fmt: str, quality: int) -> tuple[float, float]:
    """Write ``src`` (upright, RGB) to ``dst`` with its short edge at most ``short_edge``;
    returns the (x, y) scale factors applied to its stored pixel coordinates."""
    name, _, options = FORMATS[fmt]
    with Image.open(src) as img:
        img = ImageOps.exif_transpose(img).convert("RGB")
        w, h = img.size
        f = short_edge / min(w, h)
        if f < 1:
            img = img.resize((max(1, round(w * f)), max(1, round(h * f))), Image.Resampling.BILINEAR)
        dst.parent.mkdir(parents=True, exist_ok=True)
        img.save(dst, name, quality=quality, **options)
        return img.width / w, img.height / h


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=default_data_root(), help="data root with labels.jsonl")
    parser.add_argument("--out", required=True, help="new data root")
    parser.add_argument("--split", nargs="+", default=["train"], help="splits to copy (default: train)")
    parser.add_argument("--short_edge", type=int, default=256)
    parser.add_argument("--format", choices=sorted(FORMATS), default="webp")
    parser.add_argument("--quality", type=int, default=85)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing labels.jsonl under --out")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    root, out = Path(args.root), Path(args.out)
    if out.resolve() == root.resolve():
        parser.error("--out must be a new folder, not the data root itself")
    if (out / "labels.jsonl").exists() and not args.overwrite:
        parser.error(f"{out / 'labels.jsonl'} exists: copy every split in one call (--split train dev), "
                     "or pass --overwrite")
    records = [r for r in load_records(root, split=None) if r.split in args.split]
    suffix = FORMATS[args.format][1]
    written, skipped, total = [], [], 0
    for r in tqdm(records, desc="compact", unit="img"):
        rel = str(Path(r.path).with_suffix(suffix))
        try:
            sx, sy = compact_image(root / r.path, out / rel, args.short_edge, args.format, args.quality)
        except (OSError, ValueError, Image.DecompressionBombError) as e:  # unreadable, truncated, not an image
            log.warning("skipped %s: %s: %s", r.path, type(e).__name__, e)
            skipped.append(r.path)
            continue
        total += (out / rel).stat().st_size
        written.append(dataclasses.replace(r, path=rel, boxes=scale_boxes(r.boxes, sx, sy),
                                           ignore=scale_boxes(r.ignore, sx, sy)))
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "labels.jsonl", "w", encoding="utf-8") as f:
        for r in written:
            f.write(json.dumps(dataclasses.asdict(r)) + "\n")
    log.info("wrote %d images (%.1f MB) and labels.jsonl under %s", len(written), total / 1e6, out)
    if skipped:
        log.warning("%d of %d images could not be read and are not in the copy: %s", len(skipped), len(records),
                    ", ".join(skipped[:10]) + (" ..." if len(skipped) > 10 else ""))
    return len(skipped)


if __name__ == "__main__":
    raise SystemExit(1 if main() else 0)
