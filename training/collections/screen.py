"""Screening: PP-OCR (``pipeline.ocr``, RapidOCR) on every image of a collection at full
size, and the rule that turns what it found into a label.

- non-text (0) only where OCR finds no box at all (and only in a non-text collection);
- text (1) where it reads at least ``min_chars`` characters at confidence above
  ``min_score`` in a box: those boxes become the labels, the other boxes ``ignore``;
- anything else is unlabelled (-1): boxes found but nothing legible read, and an image of a
  text collection in which nothing was found.

A collection of kind ``unlabelled`` is not read by OCR at all: every decodable file gets -1
(with its sha256 and size), so its labels file is made at the speed of hashing and decoding.

One exception, a detector artifact: on small photos (Fruits-360, flowers, AID tiles) the
detector often returns one box over (nearly) the whole image in which nothing is read. A
box covering at least ``WHOLE_IMAGE`` of the image's area in which nothing legible is
read counts as no box (it is not kept as ``ignore`` either).

Entries are appended to the collection's labels file as they are made, so a run can be
stopped at any time and a re-run skips what is already screened. Collections are screened
in turns of ``chunk`` images, the least screened first, so a partial run has a sample of each.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from training.collections.gitsource import DEFAULT_MIRROR, GitSource, git_dir_of
from training.collections.labels import LABELS_DIR, NON_TEXT, TEXT, UNLABELLED, LabelsWriter, labels_path, read_labels, rewrite_labels
from training.collections.manifest import Manifest

log = logging.getLogger(__name__)

MIN_CHARS, MIN_SCORE = 2, 0.6
WHOLE_IMAGE = 0.8  # share of the image's area above which an unread box is an artifact
# ... and so is a box read as at most this many characters ("99", "11", "YA" over a whole shoe
# or rain photo: PP-OCR's detector frames the picture and the recogniser reads a couple of
# strokes; found on the evaluation-only collections' text, session 24)
ARTIFACT_MAX_CHARS = 3
# Detection runs on the source pixels; only images with a short side below this are
# enlarged to it (the pipeline's OCR enlarges everything to 736: 5x the work on the small
# photos most collections hold, for text too small for the student's 256 px input).
DET_MIN_SIDE = 320


@dataclass
class Verdict:
    label: int
    boxes: list = field(default_factory=list)  # legible text boxes (flat 8 numbers)
    ignore: list = field(default_factory=list)  # boxes found but not read legibly
    texts: list = field(default_factory=list)  # what was read in ``boxes``


def flat_box(box) -> list[float]:
    """4 (x, y) points or 8 numbers -> 8 numbers rounded to 0.1 px."""
    flat = [float(v) for point in box for v in (point if isinstance(point, (list, tuple)) else [point])]
    return [round(v, 1) for v in flat]


def box_area(box) -> float:
    """Area of a quadrilateral (shoelace formula)."""
    xy = flat_box(box)
    x, y = xy[0::2], xy[1::2]
    return abs(sum(x[i] * y[i - 1] - x[i - 1] * y[i] for i in range(4))) / 2


def screen_rule(boxes: Sequence, texts: Sequence[str], scores: Sequence[float], kind: str,
                size: tuple[int, int] | None = None, min_chars: int = MIN_CHARS, min_score: float = MIN_SCORE,
                whole_image: float = WHOLE_IMAGE) -> Verdict:
    """The label of one image from what OCR found in it (``kind``: the collection's;
    ``size``: the image's (width, height), for the whole-image artifact)."""
    chars = [len("".join(t.split())) for t in texts]
    legible = [n >= min_chars and s > min_score for n, s in zip(chars, scores)]
    legible += [False] * (len(boxes) - len(legible))
    chars += [0] * (len(boxes) - len(chars))
    if size is not None:
        artifact = [(not ok or n <= ARTIFACT_MAX_CHARS) and box_area(b) >= whole_image * size[0] * size[1]
                    for b, ok, n in zip(boxes, legible, chars)]
        boxes = [b for b, bad in zip(boxes, artifact) if not bad]
        texts = [t for t, bad in zip(list(texts) + [""] * len(artifact), artifact) if not bad]
        legible = [ok for ok, bad in zip(legible, artifact) if not bad]
    if kind == "unlabelled":
        label = UNLABELLED
    elif any(legible):
        label = TEXT
    elif not boxes and kind == "non_text":
        label = NON_TEXT
    else:
        label = UNLABELLED
    return Verdict(label,
                   [flat_box(b) for b, ok in zip(boxes, legible) if ok],
                   [flat_box(b) for b, ok in zip(boxes, legible) if not ok],
                   [t for t, ok in zip(texts, legible) if ok])


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def screen_entry(engine, manifest: Manifest, path: str, data) -> dict:
    """The labels-file entry of one source file (``data`` None: missing from the snapshot);
    ``engine`` is not used (may be None) for an unlabelled collection."""
    from model.preprocessing import ImageDecodeError
    from pipeline.ocr import load_rgb, ocr_image

    if data is None:
        return {"path": path, "error": "missing from the snapshot", "source": manifest.name}
    entry = {"path": path, "sha256": sha256(data)}
    try:
        rgb = load_rgb(data)
    except (ImageDecodeError, OSError, ValueError) as e:
        return {**entry, "error": f"cannot decode: {e}", "source": manifest.name}
    size = (int(rgb.shape[1]), int(rgb.shape[0]))
    ocr = ocr_image(engine, rgb) if needs_ocr(manifest) else {"boxes": [], "text": [], "scores": []}
    v = screen_rule(ocr["boxes"], ocr["text"], ocr["scores"], manifest.kind, size)
    return {**entry, "label": v.label, "boxes": v.boxes, "ignore": v.ignore, "texts": v.texts,
            "size": list(size), "source": manifest.name}


def needs_ocr(manifest: Manifest) -> bool:
    """Whether screening reads the collection's images with OCR (not for kind unlabelled)."""
    return manifest.kind != "unlabelled"


def rescreen_entry(entry: dict, kind: str) -> dict:
    """A labels-file entry with the rule applied again to what it stores (the legible boxes
    count as read above the threshold, the ``ignore`` boxes as unread). An entry a person has
    audited (``training.collections.audit``) keeps its label."""
    if "error" in entry or "audit" in entry:
        return entry
    boxes = entry["boxes"] + entry["ignore"]
    texts = entry["texts"] + [""] * len(entry["ignore"])
    scores = [1.0] * len(entry["texts"]) + [0.0] * len(entry["ignore"])
    v = screen_rule(boxes, texts, scores, kind, tuple(entry["size"]))
    return {**entry, "label": v.label, "boxes": v.boxes, "ignore": v.ignore, "texts": v.texts}


@dataclass
class _Queue:
    manifest: Manifest
    source: GitSource
    files: dict
    todo: list
    writer: LabelsWriter
    done: int = 0


def screen_collections(manifests: Iterable[Manifest], mirror: str | Path = DEFAULT_MIRROR,
                       labels_dir: str | Path = LABELS_DIR, chunk: int = 50, limit: int | None = None,
                       num_threads: int = 1, det_min_side: int = DET_MIN_SIDE) -> dict[str, int]:
    """Screen what is not screened yet, collections in turns of ``chunk`` images; at most
    ``limit`` images in all. An OCR engine is made only when a collection that needs OCR
    has images to screen, one per detection size (the manifest's ``det_min_side``, else this
    function's). Returns {collection: images screened by this run}."""
    from pipeline.ocr import make_engine

    queues = []
    for m in manifests:
        try:
            source = GitSource(git_dir_of(mirror, m.repository), m.commit)
            files = source.files()
        except Exception as e:  # noqa: BLE001 - one unreachable collection must not stop the rest
            log.error("collection %s: cannot list %s@%s: %s", m.name, m.repository, m.commit, e)
            continue
        done = read_labels(labels_path(labels_dir, m.name))
        todo = [p for p in m.select(files.items()) if p not in done]
        log.info("collection %s: %d to screen, %d screened before", m.name, len(todo), len(done))
        queues.append(_Queue(m, source, files, todo, LabelsWriter(labels_path(labels_dir, m.name)), len(done)))
    queues.sort(key=lambda q: q.done)  # the least screened collections first
    engines = {}  # one OCR engine per detection size, made when a collection needs it

    def engine_for(m: Manifest):
        if not needs_ocr(m):
            return None
        side = m.det_min_side or det_min_side
        if side not in engines:
            engines[side] = make_engine(num_threads, det_min_side=side)
        return engines[side]

    counts = {q.manifest.name: 0 for q in queues}
    total, start = 0, time.monotonic()
    try:
        while any(q.todo for q in queues) and (limit is None or total < limit):
            for q in queues:
                batch, q.todo = q.todo[:chunk], q.todo[chunk:]
                for path in batch:
                    if limit is not None and total >= limit:
                        break
                    q.writer.write(screen_entry(engine_for(q.manifest), q.manifest, path,
                                                q.source.read(q.files[path])))
                    counts[q.manifest.name] += 1
                    total += 1
                log.info("screened %d images in %.0f s: %s", total, time.monotonic() - start, counts)
    finally:
        for q in queues:
            q.writer.close()
            q.source.close()
    return counts


def rescreen_collections(manifests: Iterable[Manifest], labels_dir: str | Path = LABELS_DIR) -> dict[str, int]:
    """Apply the rule again to the stored entries of each collection (after a change of the
    rule; no OCR, no mirror); rewrites the labels files. Returns {collection: labels changed}."""
    changed = {}
    for m in manifests:
        path = labels_path(labels_dir, m.name)
        entries = list(read_labels(path).values())
        new = [rescreen_entry(e, m.kind) for e in entries]
        changed[m.name] = sum(a != b for a, b in zip(entries, new))
        rewrite_labels(path, new)
    return changed
