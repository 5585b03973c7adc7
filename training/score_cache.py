"""Region probabilities of a checkpoint on a labelled set, kept on disk, so that scoring the
same students on the same images again (``training.select`` in a later session, new
candidates beside the old ones) decodes and runs only what is new.

An entry is named by what its numbers depend on: the checkpoint's bytes (sha256), the labels
file's bytes, the image root, the split and the input shape. A retrained checkpoint or an
edited labels file therefore never reads stale scores; it makes a new entry. Each entry also
keeps the image paths it scored, checked against the set's before it is used.

    cache = ScoreCache("runs/score_cache")
    key = cache.key("runs/x/student.pt", data_cfg, "all", preprocess)
    cached = cache.load(key, paths)         # None when absent or made on other images
    cache.save(key, probs=..., image_labels=..., sources=..., paths=...)
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from training.collections.screen import sha256
from training.config import DataConfig

log = logging.getLogger(__name__)

FORMAT = 1  # bump when what an entry holds changes
FIELDS = ("probs", "image_labels", "sources", "paths")


class ScoreCache:
    """A directory of ``<key>.npz`` entries (see the module's docstring)."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self._file_hashes: dict[tuple, str] = {}

    def _hash_file(self, path: str | Path) -> str:
        path = Path(path)
        stat = path.stat()
        token = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        if token not in self._file_hashes:
            self._file_hashes[token] = sha256(path.read_bytes())
        return self._file_hashes[token]

    def key(self, checkpoint: str | Path, data_cfg: DataConfig, split: str, preprocess) -> str:
        """The entry name of ``checkpoint`` scored on ``split`` of ``data_cfg``'s labels at
        ``preprocess``'s input shape."""
        parts = {"format": FORMAT, "checkpoint": self._hash_file(checkpoint),
                 "labels": self._hash_file(Path(data_cfg.root) / data_cfg.labels_file),
                 "root": str(Path(data_cfg.root).resolve()), "split": split, "preprocess": repr(preprocess)}
        return sha256(json.dumps(parts, sort_keys=True).encode("utf-8"))[:24]

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.npz"

    def load(self, key: str, paths: Sequence[str]) -> dict | None:
        """The entry ``key`` (``FIELDS``) with its rows in the order of ``paths``, when it
        exists and scored exactly those images; otherwise None (an unreadable entry is logged
        and treated as absent)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as entry:
                found = {name: entry[name] for name in FIELDS}
        except (OSError, ValueError, KeyError) as e:
            log.warning("score cache entry %s unreadable (%s): scoring again", path, e)
            return None
        try:
            return in_order(found, paths)
        except ValueError:
            log.warning("score cache entry %s scored other images than asked for: scoring again", path)
            return None

    def save(self, key: str, **entry: np.ndarray) -> Path:
        """Write the entry ``key`` atomically (a reader never sees half a file)."""
        missing = [name for name in FIELDS if name not in entry]
        if missing:
            raise ValueError(f"a score cache entry needs {', '.join(FIELDS)}; missing {', '.join(missing)}")
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path(key)
        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")  # as model.registry.save_checkpoint
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **{name: np.asarray(entry[name]) for name in FIELDS})
        os.replace(tmp, path)
        return path


def in_order(entry: dict, paths: Sequence[str]) -> dict:
    """``entry`` (arrays with one row per image, named by ``entry["paths"]``) with its rows
    in the order of ``paths``: batches of several input shapes come out grouped by shape, not
    in the labels file's order. ValueError when it holds other images than ``paths``."""
    stored = [str(p) for p in entry["paths"]]
    if stored == list(paths):
        return entry
    if sorted(stored) != sorted(paths) or len(set(stored)) != len(stored):
        raise ValueError("the entry scored other images")
    row = {p: i for i, p in enumerate(stored)}
    index = np.array([row[p] for p in paths], dtype=int)
    return {name: np.asarray(value)[index] for name, value in entry.items()}
