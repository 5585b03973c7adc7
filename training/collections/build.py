"""Assemble a pool of re-encoded images from the committed labels of the collections.

For every screened file of every collection: read the source bytes from the local mirror,
check their sha256 against the labels file, decode (upright RGB), cut letterbox bars off where the
manifest asks (``trim_borders``), shrink to a short edge
of at most ``short_edge`` px and store as JPEG under ``POOL/images/<collection>/``. Text
and non-text images go to ``POOL/labels.jsonl`` in the shared data's format (boxes scaled
to the stored image), unlabelled ones to ``POOL/unlabelled.jsonl``; a missing, corrupt or
changed source file is reported (``POOL/build_report.json``) and skipped, never fatal.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image

from model.preprocessing import ImageDecodeError
from pipeline.ocr import load_rgb
from training.collections.gitsource import DEFAULT_MIRROR, GitSource, git_dir_of
from training.collections.labels import LABELS_DIR, NON_TEXT, TEXT, UNLABELLED, labels_path, read_labels
from training.collections.manifest import EVAL_ONLY_SPLIT, Manifest, split_of
from training.collections.screen import sha256

log = logging.getLogger(__name__)

SHORT_EDGE, QUALITY = 512, 90
LABELS_FILE, UNLABELLED_FILE, REPORT_FILE = "labels.jsonl", "unlabelled.jsonl", "build_report.json"


@dataclass
class BuildReport:
    counts: dict = field(default_factory=dict)  # {collection: Counter of outcomes}
    problems: list = field(default_factory=list)  # {"collection", "path", "problem"}

    def count(self, name: str, outcome: str) -> None:
        self.counts.setdefault(name, Counter())[outcome] += 1

    def problem(self, name: str, path: str, problem: str) -> None:
        log.warning("collection %s: %s: %s (skipped)", name, path, problem)
        self.problems.append({"collection": name, "path": path, "problem": problem})
        self.count(name, "skipped")

    def summary(self) -> dict:
        return {"counts": {k: dict(v) for k, v in self.counts.items()}, "problems": self.problems}


def shrink(rgb: np.ndarray, short_edge: int = SHORT_EDGE) -> Image.Image:
    """The image with its short edge at most ``short_edge`` px (never enlarged)."""
    img = Image.fromarray(rgb)
    w, h = img.size
    scale = short_edge / min(w, h)
    if scale < 1:
        img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)
    return img


def scale_boxes(boxes: Iterable, sx: float, sy: float, dx: float = 0.0, dy: float = 0.0,
                within: tuple[float, float] | None = None) -> list:
    """Quadrilaterals (x1, y1, .., x4, y4) moved by (dx, dy), kept ``within`` (width, height) of
    the moved frame when given (a box reaching into a trimmed bar ends at the content's edge), then
    scaled by (sx, sy)."""
    def moved(v: float, axis: int) -> float:
        v += (dx, dy)[axis]
        return v if within is None else min(max(v, 0.0), within[axis])

    return [[round(moved(v, i % 2) * (sx, sy)[i % 2], 1) for i, v in enumerate(box)] for box in boxes]


def trim_uniform_borders(rgb: np.ndarray, tolerance: int = 3, min_keep: float = 0.25) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of ``rgb`` without its letterbox bars: the outer rows (columns) whose every
    pixel is within ``tolerance`` of the top-left pixel's colour, cut only where they pair up as a
    letterbox does, as thick on one side as on the other (within 2 px), so that a photo whose edge
    merely fades into a flat colour keeps it. An image that would keep less than ``min_keep`` of a
    side (a flat picture) is kept whole."""
    h, w = rgb.shape[:2]
    flat = (np.abs(rgb.astype(np.int16) - rgb[0, 0].astype(np.int16)) <= tolerance).all(axis=-1)
    rows, cols = np.flatnonzero(~flat.all(axis=1)), np.flatnonzero(~flat.all(axis=0))
    if not len(rows) or not len(cols):
        return 0, 0, w, h

    def bars(kept: np.ndarray, n: int) -> tuple[int, int]:
        start, end = int(kept[0]), int(kept[-1]) + 1
        return (start, end) if abs(start - (n - end)) <= 2 and end - start >= min_keep * n else (0, n)

    (x0, x1), (y0, y1) = bars(cols, w), bars(rows, h)
    return x0, y0, x1, y1


def build_collection(manifest: Manifest, out: Path, mirror, labels_dir, report: BuildReport, labelled, unlabelled,
                     short_edge: int = SHORT_EDGE, quality: int = QUALITY) -> None:
    name = manifest.name
    entries = read_labels(labels_path(labels_dir, name))
    try:
        source = GitSource(git_dir_of(mirror, manifest.repository), manifest.commit)
        files = source.files()
    except Exception as e:  # noqa: BLE001 - an unreachable collection is reported, the rest is built
        report.problem(name, "", f"cannot list {manifest.repository}@{manifest.commit}: {e}")
        return
    with source:
        for path in manifest.select(files.items()):
            entry = entries.get(path)
            if entry is None:
                report.count(name, "unscreened")
                continue
            if "error" in entry:
                report.problem(name, path, f"screening: {entry['error']}")
                continue
            data = source.read(files[path])
            if data is None:
                report.problem(name, path, "missing from the mirror")
                continue
            if sha256(data) != entry["sha256"]:
                report.problem(name, path, "sha256 differs from the labels file")
                continue
            try:
                rgb = load_rgb(data)
            except (ImageDecodeError, OSError, ValueError) as e:
                report.problem(name, path, f"cannot decode: {e}")
                continue
            frame = (0.0, 0.0, None)  # how the boxes move: (dx, dy, the stored content's width and height)
            if manifest.trim_borders:
                x0, y0, x1, y1 = trim_uniform_borders(rgb)
                rgb, frame = np.ascontiguousarray(rgb[y0:y1, x0:x1]), (-x0, -y0, (x1 - x0, y1 - y0))
            img = shrink(rgb, short_edge)
            stored = manifest.stored_path(path)
            (out / stored).parent.mkdir(parents=True, exist_ok=True)
            img.save(out / stored, "JPEG", quality=quality)
            sx, sy = img.width / rgb.shape[1], img.height / rgb.shape[0]
            record = {"path": stored, "label": entry["label"],
                      "boxes": scale_boxes(entry.get("boxes", []), sx, sy, *frame),
                      "ignore": scale_boxes(entry.get("ignore", []), sx, sy, *frame), "source": name,
                      "split": EVAL_ONLY_SPLIT if manifest.eval_only else split_of(stored)}
            (labelled if entry["label"] in (TEXT, NON_TEXT) else unlabelled).append(record)
            report.count(name, {TEXT: "text", NON_TEXT: "non_text", UNLABELLED: "unlabelled"}[entry["label"]])


def build_pool(manifests: Iterable[Manifest], out: str | Path, mirror: str | Path = DEFAULT_MIRROR,
               labels_dir: str | Path = LABELS_DIR, short_edge: int = SHORT_EDGE, quality: int = QUALITY) -> BuildReport:
    """Build (or rebuild) the pool under ``out`` from the given collections; rewrites
    ``labels.jsonl``, ``unlabelled.jsonl`` and ``build_report.json`` there."""
    manifests = list(manifests)
    judged = sorted(m.name for m in manifests if m.eval_only)
    if judged and len(judged) < len(manifests):
        raise ValueError(f"evaluation-only collections {judged} cannot share a pool with training collections "
                         f"{sorted(m.name for m in manifests if not m.eval_only)}: build them into their own pool "
                         "(build --eval_only --out POOL)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report, labelled, unlabelled = BuildReport(), [], []
    for m in manifests:
        build_collection(m, out, mirror, labels_dir, report, labelled, unlabelled, short_edge, quality)
        log.info("collection %s: %s", m.name, dict(report.counts.get(m.name, {})))
    for filename, records in ((LABELS_FILE, labelled), (UNLABELLED_FILE, unlabelled)):
        with open(out / filename, "w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    (out / REPORT_FILE).write_text(json.dumps(report.summary(), indent=1) + "\n", encoding="utf-8")
    return report
