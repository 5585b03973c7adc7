"""Recall on screenshots of real web pages: text the dev set (photos) does not have.

    python -m benchmarks.screenshots --html_dir /usr/share/doc --n 20 \
        [--model_path model/weights/student.pt runs/x/student.pt]

Takes ``--n`` HTML files found under ``--html_dir`` (sampled with ``--seed``), has headless
Chromium screenshot each at every ``--sizes`` window (a laptop, a full-HD and a QHD
monitor, a portrait page, a phone), and scores the screenshots with each checkpoint as the
pipeline does (``decode_image``: 256-px short edge; the checkpoint's threshold, 0.5 without
one). Every screenshot shows text, so the share called text is the recall on screenshots.
Body text of 14-16 px is ~5 px at the model's input on a 1280x800 screen, ~4 px on a
1920x1080 one and ~3 px on a 2560x1440 one.

Screenshots are kept in ``--shots_dir`` and reused by later runs. Needs ``chromium`` (or
``--chromium PATH``).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from model.preprocessing import decode_image, preprocess_from_meta, resize_image
from model.regions import image_score
from pipeline.handler import StudentModelHandler, default_model_path
from pipeline.run import decision_of, stored_meta

SIZES = ("1280x800", "1920x1080", "2560x1440", "850x1100", "390x844")


def find_pages(dirs: list[str], n: int, seed: int, min_bytes: int = 3000) -> list[Path]:
    """``n`` HTML files of at least ``min_bytes`` under ``dirs``, a seeded sample of the sorted list."""
    pages = sorted(p for d in dirs for p in Path(d).rglob("*.html") if p.stat().st_size >= min_bytes)
    return sorted(random.Random(seed).sample(pages, min(n, len(pages))))


def screenshot(chromium: str, page: Path, size: str, dest: Path, timeout: float = 60.0) -> Path | None:
    """A PNG of ``page`` in a ``size`` ("WxH") window, or None when Chromium fails."""
    if dest.exists() and dest.stat().st_size:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    width, height = size.split("x")
    cmd = [chromium, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars", f"--screenshot={dest}",
           f"--window-size={width},{height}", page.resolve().as_uri()]
    try:
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None
    return dest if dest.exists() and dest.stat().st_size else None


class Scorer:
    """A student checkpoint loaded once, scoring images as the pipeline does: resized to the
    input shape stored with it, decided by its ``threshold`` and ``score_rule``."""

    def __init__(self, model_path: str):
        self.handler = StudentModelHandler(model_path)
        self.model = self.handler.load_model()
        meta = stored_meta(model_path)
        self.threshold, self.score_rule = decision_of(meta)
        self.preprocess = preprocess_from_meta(meta)

    def scores(self, images: list) -> np.ndarray:
        """Image scores of encoded files (bytes, decoded as the pipeline does) or PIL images."""
        arrays = (decode_image(x, self.preprocess) if isinstance(x, bytes) else resize_image(x, self.preprocess)
                  for x in images)
        return np.asarray([float(image_score(self.handler.predict(self.model, [a]), self.score_rule)[0]) for a in arrays])


def summarise(scorers: dict[str, Scorer], groups: dict[str, list], label: str,
              rate: str = "text_rate") -> dict:
    """Print, per group of arrays and scorer, the share called text (median score); return
    ``{(group, scorer name): {"n", rate, "median"}}``."""
    print(f"  {label:<42}" + "".join(f"{name:>30}" for name in scorers))
    results = {}
    for group, arrays in groups.items():
        row = ""
        for name, scorer in scorers.items():
            scores = scorer.scores(arrays)
            results[(group, name)] = {"n": len(arrays), rate: float((scores >= scorer.threshold).mean()),
                                      "median": float(np.median(scores))}
            row += f"{results[(group, name)][rate]:>21.2f} ({np.median(scores):.3f})"
        print(f"  {f'{group} (n={len(arrays)})':<42}{row}")
    return results


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--html_dir", nargs="+", required=True, help="folders searched for *.html")
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), help="window sizes WxH")
    parser.add_argument("--model_path", nargs="+", default=[default_model_path("torch")])
    parser.add_argument("--shots_dir", default="runs/screenshots")
    parser.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser"))
    args = parser.parse_args(argv)
    if not args.chromium:
        parser.error("no chromium on PATH (--chromium PATH)")
    pages = find_pages(args.html_dir, args.n, args.seed)
    if not pages:
        parser.error(f"no HTML files under {' '.join(args.html_dir)}")
    shots: dict[str, list[Path]] = {}
    for size in args.sizes:
        for i, page in enumerate(pages):
            shot = screenshot(args.chromium, page, size, Path(args.shots_dir) / size / f"{i:03d}-{page.stem}.png")
            if shot is None:
                print(f"warning: no screenshot of {page} at {size}", file=sys.stderr)
            else:
                shots.setdefault(size, []).append(shot)
    scorers = {os.path.relpath(m): Scorer(m) for m in args.model_path}
    print(f"{len(pages)} pages under {' '.join(args.html_dir)}; share of screenshots called text "
          f"(median score):")
    encoded = {size: [f.read_bytes() for f in files] for size, files in shots.items()}
    return summarise(scorers, encoded, "window", rate="recall")  # every screenshot shows text


if __name__ == "__main__":
    main()
