"""Counts of the committed labels files: per collection, selected / screened / text /
non-text / unlabelled / failed (the selection needs no mirror: it is read from the labels)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Iterable

from training.collections.labels import LABELS_DIR, labels_path, read_labels
from training.collections.manifest import Manifest

OUTCOMES = {1: "text", 0: "non_text", -1: "unlabelled"}


def summary(manifests: Iterable[Manifest], labels_dir: str | Path = LABELS_DIR) -> dict:
    out = {}
    for m in manifests:
        entries = read_labels(labels_path(labels_dir, m.name)).values()
        c = Counter("failed" if "error" in e else OUTCOMES[e["label"]] for e in entries)
        out[m.name] = {"kind": m.kind, "screened": len(entries), **{k: c.get(k, 0) for k in (*OUTCOMES.values(), "failed")}}
    return out
