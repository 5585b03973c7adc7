"""Labels a person set by looking at the images, over what screening decided.

Screening (``training.collections.screen``) reads every image with OCR and labels it by rule.
OCR also "reads" things that are not text: two digits over a face's eyes, "14" over a rain
painting. Where a person has looked and decided, the decision is written down in an audit
file and wins over the rule, also after a later ``rescreen``.

An audit file is tab-separated, ``#`` lines are comments, one image a line::

    collection <TAB> path in its labels file <TAB> label <TAB> note [<TAB> more columns, ignored]

``label`` is 1 (text), 0 (non-text) or -1 (unlabelled). ``python -m training.collections
relabel --audit FILE`` writes each verdict into the collection's labels file: the entry's
``label`` becomes the audited one, ``audit`` holds the note and ``screened`` what screening
had decided (label, boxes, ignore, texts); an entry made non-text or unlabelled keeps no boxes.
Pools built afterwards carry the audited labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from training.collections.labels import LABELS_DIR, NON_TEXT, TEXT, UNLABELLED, labels_path, read_labels, rewrite_labels

LABELS = (TEXT, NON_TEXT, UNLABELLED)


@dataclass(frozen=True)
class AuditRow:
    collection: str
    path: str  # as in the collection's labels file
    label: int
    note: str


def read_audit(path: str | Path) -> list[AuditRow]:
    """The rows of an audit file; a malformed line raises ``ValueError`` naming it."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip() or line.startswith("#"):
                continue
            cells = line.rstrip("\n").split("\t")
            try:
                label = int(cells[2])
                if len(cells) < 4 or label not in LABELS or not cells[0] or not cells[1]:
                    raise ValueError
            except (IndexError, ValueError):
                raise ValueError(f"{path}:{number}: expected collection<TAB>path<TAB>label (1, 0, -1)<TAB>note, "
                                 f"got {line.rstrip()!r}") from None
            rows.append(AuditRow(cells[0], cells[1], label, cells[3]))
    return rows


def audited_entry(entry: dict, row: AuditRow) -> dict:
    """A labels-file entry with a person's verdict applied (what screening said kept beside it)."""
    screened = entry.get("screened") or {k: entry.get(k, []) for k in ("label", "boxes", "ignore", "texts")}
    new = {**entry, "label": row.label, "audit": row.note, "screened": screened}
    if row.label != TEXT:
        new.update(boxes=[], ignore=[], texts=[])
    return new


def apply_audit(rows: Iterable[AuditRow], labels_dir: str | Path = LABELS_DIR) -> dict:
    """Write the verdicts into the labels files under ``labels_dir``. Returns
    ``{"changed": {collection: entries changed}, "not_found": ["collection/path", ...]}``:
    a row whose image is not in its collection's labels file is reported, not applied."""
    by_collection: dict[str, list[AuditRow]] = {}
    for row in rows:
        by_collection.setdefault(row.collection, []).append(row)
    changed, not_found = {}, []
    for name, group in sorted(by_collection.items()):
        path = labels_path(labels_dir, name)
        entries = read_labels(path)
        count = 0
        for row in group:
            entry = entries.get(row.path)
            if entry is None or "error" in entry:
                not_found.append(f"{name}/{row.path}")
                continue
            new = audited_entry(entry, row)
            count += new != entry
            entries[row.path] = new
        changed[name] = count
        if count:
            rewrite_labels(path, entries.values())
    return {"changed": changed, "not_found": not_found}
