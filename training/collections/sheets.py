"""Contact sheets for the label check: a deterministic random sample of a pool's images of
one label, drawn as PNG grids (each tile numbered; ``index.txt`` says which image it is)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Iterable

from PIL import Image, ImageDraw

from training.data import load_records

TILE = 240  # 5 x 240 = 1200 px wide: shown at full size by image viewers that cap the width


def fit(img: Image.Image, width: int, height: int) -> Image.Image:
    """``img`` scaled (up or down, aspect kept) to fit in ``width`` x ``height``."""
    scale = min(width / img.width, height / img.height)
    return img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.LANCZOS)


def contact_sheets(pool: str | Path, out: str | Path, sources: Iterable[str], label: int = 0, n: int = 300,
                   per_sheet: int = 20, seed: int = 0, tile: int = TILE, columns: int = 5) -> list[Path]:
    """Write ``sheet_NN.png`` files of ``n`` sampled images of ``label`` from ``sources``
    (sorted by path, then shuffled with ``seed``), each image scaled to fill its tile
    (small ones enlarged, so that small text shows); returns their paths."""
    pool, out = Path(pool), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sources = set(sources)
    records = sorted((r for r in load_records(pool) if r.label == label and r.source in sources), key=lambda r: r.path)
    sample = random.Random(seed).sample(records, min(n, len(records)))
    sheets, lines = [], []
    for s in range(0, len(sample), per_sheet):
        chunk = sample[s:s + per_sheet]
        rows = -(-len(chunk) // columns)
        sheet = Image.new("RGB", (columns * tile, rows * tile), (255, 255, 255))
        draw = ImageDraw.Draw(sheet)
        for i, r in enumerate(chunk):
            with Image.open(pool / r.path) as img:
                img = fit(img.convert("RGB"), tile - 4, tile - 16)
                x, y = (i % columns) * tile, (i // columns) * tile
                sheet.paste(img, (x + 2, y + 14))
            number = s + i
            draw.text((x + 2, y + 1), str(number), fill=(255, 0, 0))
            lines.append(f"{number}\t{r.source}\t{r.path}")
        path = out / f"sheet_{s // per_sheet:02d}.png"
        sheet.save(path)
        sheets.append(path)
    (out / "index.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return sheets
