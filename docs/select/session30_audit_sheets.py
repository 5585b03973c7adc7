"""Session 30: contact sheets of every text image of the never-seen-text basis (the evaluation-only
pool's and the people pool's), for a label audit blind to any student's score.

Usage: PYTHONPATH=. python docs/select/session30_audit_sheets.py OUT [POOL ...]
(default pools: /work/pool-new /work/pool-people4). Images in order of collection, then path, 25 a
sheet (OUT/sheet_NN.png; OUT/index.txt: number, collection, pool path), each drawn with its OCR
boxes in red and, under it, what OCR read there (from the committed labels files). The verdicts
go into an audit file (training.collections.audit; session 30's: docs/select/session30-audit.tsv)."""
import sys
from pathlib import Path

from PIL import Image, ImageDraw

from training.collections.labels import LABELS_DIR, read_labels
from training.collections.manifest import load_manifests
from training.collections.sheets import fit
from training.data import load_records

TILE, COLUMNS, ROWS = 240, 5, 5


def main(out, pools):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records = sorted(((r.source, r.path, Path(pool), r.boxes) for pool in pools for r in load_records(Path(pool))
                      if r.label == 1), key=lambda t: (t[0], t[1]))
    manifests = {m.name: m for m in load_manifests(names={t[0] for t in records})}
    read = {}  # pool path -> what OCR read
    for name, m in manifests.items():
        for path, e in read_labels(LABELS_DIR / f"{name}.jsonl").items():
            read[m.stored_path(path)] = e.get("texts", [])
    per, lines = COLUMNS * ROWS, []
    for s in range(0, len(records), per):
        chunk = records[s:s + per]
        sheet = Image.new("RGB", (COLUMNS * TILE, -(-len(chunk) // COLUMNS) * (TILE + 24)), "white")
        draw = ImageDraw.Draw(sheet)
        for i, (source, path, pool, boxes) in enumerate(chunk):
            with Image.open(pool / path) as im:
                im = im.convert("RGB")
            pen = ImageDraw.Draw(im)
            for b in boxes:
                pen.polygon([(b[k], b[k + 1]) for k in range(0, len(b), 2)], outline=(255, 0, 0),
                            width=max(1, round(max(im.size) / 150)))
            im = fit(im, TILE - 4, TILE - 16)
            x, y = (i % COLUMNS) * TILE, (i // COLUMNS) * (TILE + 24)
            sheet.paste(im, (x + 2, y + 14))
            draw.text((x + 2, y + 1), f"{s + i} {source}", fill=(255, 0, 0))
            draw.text((x + 2, y + TILE - 2), " | ".join(read.get(path, ["?"]))[:40], fill=(0, 0, 255))
            lines.append(f"{s + i}\t{source}\t{path}")
        sheet.save(out / f"sheet_{s // per:02d}.png")
    (out / "index.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(records)} text images, {-(-len(records) // per)} sheets in {out}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:] or ["/work/pool-new", "/work/pool-people4"])
