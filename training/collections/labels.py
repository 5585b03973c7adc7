"""The committed labels file of a collection (``labels/<name>.jsonl``), one object a line:

    {"path": "<path in the repository>", "sha256": "<of the source bytes>", "label": 1,
     "boxes": [[x1, y1, ..., x4, y4], ...], "ignore": [...], "texts": [...], "source": "<name>"}

``label`` is 1 text, 0 non-text, -1 unlabelled; boxes are in the upright source image's
pixels (``texts`` are what OCR read in them, ``ignore`` the boxes it could not read
legibly). A file that could not be screened has ``"error"`` instead of a label, so a
re-run does not try it again and the builder reports it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

LABELS_DIR = Path(__file__).resolve().parent / "labels"
TEXT, NON_TEXT, UNLABELLED = 1, 0, -1


def labels_path(directory: str | Path, name: str) -> Path:
    return Path(directory) / f"{name}.jsonl"


def read_labels(path: str | Path) -> dict[str, dict]:
    """{path in the repository: entry} of a labels file (empty when there is none yet); a
    torn last line (a screening run killed mid-write) is dropped."""
    path = Path(path)
    entries = {}
    if path.is_file():
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    d = json.loads(line)
                except json.JSONDecodeError:
                    continue
                entries[d["path"]] = d
    return entries


class LabelsWriter:
    """Appends entries to a labels file, one flushed line each (screening is resumable)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_file() and self.path.stat().st_size and not self.path.read_bytes().endswith(b"\n"):
            with open(self.path, "ab") as f:  # a torn last line stays torn, on a line of its own
                f.write(b"\n")
        self._f = open(self.path, "a", encoding="utf-8")

    def write(self, entry: dict) -> None:
        self._f.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "LabelsWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def rewrite_labels(path: str | Path, entries: Iterable[dict]) -> None:
    """Replace a labels file with ``entries`` (written beside it first, then moved over it, so
    an interrupted rewrite leaves the old file whole)."""
    path = Path(path)
    tmp = path.with_suffix(".jsonl.tmp-rewrite")
    with LabelsWriter(tmp) as w:
        for e in entries:
            w.write(e)
    tmp.replace(path)
