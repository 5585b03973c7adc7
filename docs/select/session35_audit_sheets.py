"""Session 35: crop sheets for auditing OCR's text verdicts (docs/select/session35-audit.tsv).

For each image a collection's labels file calls text, the region around OCR's boxes (the union of
the boxes, widened by 60 % of its longer side + 20 px) is scaled into a 240-px tile with OCR's
reads under it, 30 tiles a sheet, in labels-file order, blind to any student's score. A tile where
nothing can be read is an OCR artifact (two digits over a pair of shoes, a knit pattern read as
000000000). ``index.tsv`` maps tile numbers to collection and path.

    PYTHONPATH=. python docs/select/session35_audit_sheets.py /work/pool-extra /tmp/sheets clothing-more grocery-produce-more
"""

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from training.collections.labels import LABELS_DIR, labels_path, read_labels
from training.collections.manifest import load_manifests
from training.collections.sheets import TILE, fit

PER_SHEET, COLUMNS = 30, 6


def crop_around_boxes(img: Image.Image, boxes) -> Image.Image:
    pts = np.array([p for b in boxes for p in b], float).reshape(-1, 2)
    (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
    m = max(x1 - x0, y1 - y0) * 0.6 + 20
    return fit(img.crop((max(0, x0 - m), max(0, y0 - m), min(img.width, x1 + m), min(img.height, y1 + m))), TILE, TILE)


def main(pool, out, *collections):
    pool, out = Path(pool), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stored = {r["path"]: r for r in map(json.loads, (pool / "labels.jsonl").read_text().splitlines())}
    manifests = {m.name: m for m in load_manifests(names=collections)}
    entries = [(c, e) for c in collections for e in read_labels(labels_path(LABELS_DIR, c)).values()
               if e["label"] == 1 and manifests[c].stored_path(e["path"]) in stored]  # else a duplicate the pool leaves out
    index = []
    for start in range(0, len(entries), PER_SHEET):
        rows = -(-PER_SHEET // COLUMNS)
        sheet = Image.new("RGB", (COLUMNS * TILE, rows * (TILE + 20)), "white")
        draw = ImageDraw.Draw(sheet)
        for k, (c, e) in enumerate(entries[start:start + PER_SHEET]):
            path = manifests[c].stored_path(e["path"])
            img = Image.open(pool / path).convert("RGB")
            x, y = (k % COLUMNS) * TILE, (k // COLUMNS) * (TILE + 20)
            sheet.paste(crop_around_boxes(img, stored[path]["boxes"]), (x, y))
            reads = " | ".join(e.get("texts", []))
            draw.text((x + 2, y + TILE + 2), f"{start + k} {reads[:34]}", fill="red")
            index.append(f"{start + k}\t{c}\t{e['path']}\t{reads}")
        sheet.save(out / f"sheet_{start // PER_SHEET:02d}.png")
    (out / "index.tsv").write_text("\n".join(index) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
