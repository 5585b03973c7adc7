"""A tiny generated training set and the flags that keep training runs on it to seconds."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw

TINY = ["--epoch_size", "8", "--batch_size", "4", "--num_threads", "1", "--no-synth.enabled", "--crop_share", "0",
        "--augment.rotate_p", "0", "--augment.jpeg_p", "0", "--augment.zoom_p", "0", "--warmup_steps", "1"]


def make_tiny_dataset(root: Path) -> str:
    """8 train and 4 dev images (half with a white "text" block) and their labels.jsonl under
    ``root``, small so each training step is fast. Returns ``root`` as a string."""
    lines = []
    (root / "images").mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 8), ("dev", 4)):
        for i in range(n):
            text = i % 2 == 0
            img = Image.new("RGB", (96, 64), (20 + 10 * i, 40, 60))
            boxes = []
            if text:
                ImageDraw.Draw(img).rectangle([10, 10, 60, 30], fill=(255, 255, 255))
                boxes = [[10, 10, 61, 10, 61, 31, 10, 31]]
            rel = f"images/{split}_{i}.png"
            img.save(root / rel)
            lines.append(json.dumps({"path": rel, "label": int(text), "boxes": boxes, "ignore": [],
                                     "source": "synthetic-blocks" if text else "plain", "split": split}))
    (root / "labels.jsonl").write_text("\n".join(lines) + "\n")
    return str(root)
