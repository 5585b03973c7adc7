"""Collection manifests: which files of a public repository at a commit make a collection.

One JSON file per collection under ``training/collections/manifests/``::

    {"name": "aid-aerial", "kind": "non_text", "repository": "zlima/testtensor",
     "commit": "f6a0...", "include": ["AID/*.jpg"], "exclude": ["AID/Stadium/*"],
     "cap": 1200, "licence": "...", "notes": "..."}

A collection found unfit after screening keeps its manifest and labels (the record of what
was tried) and gets ``"dropped": "<why>"``: it is then left out of ``load_manifests`` (so
of screening and the pool) unless named with ``names``.

``include`` / ``exclude`` are ``fnmatch`` patterns on the path in the repository (``*``
also crosses ``/``). ``cap`` keeps the files whose sha256 of the path is smallest, so the
sample is deterministic and does not depend on how the repository orders its folders.
Files with identical contents (the same git blob) are kept once.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable, Optional

KINDS = ("non_text", "text", "unlabelled")
MANIFEST_DIR = Path(__file__).resolve().parent / "manifests"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")


@dataclass(frozen=True)
class Manifest:
    name: str
    kind: str  # one of KINDS
    repository: str  # owner/name on GitHub
    commit: str
    include: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    cap: Optional[int] = None
    licence: str = "unknown, research use"
    notes: str = ""
    dropped: str = ""  # why the collection is not used (empty: it is)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"collection {self.name}: kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if not self.include:
            raise ValueError(f"collection {self.name}: no include patterns")

    def wanted(self, path: str) -> bool:
        """Whether a path in the repository is an image this collection uses (before the cap)."""
        return (path.lower().endswith(IMAGE_SUFFIXES)
                and any(fnmatch.fnmatchcase(path, p) for p in self.include)
                and not any(fnmatch.fnmatchcase(path, p) for p in self.exclude))

    def select(self, files: Iterable[tuple[str, str]]) -> list[str]:
        """The collection's paths out of (path, blob id) pairs, in sample order (sha256 of
        the path), identical blobs once, at most ``cap``."""
        seen_blobs, chosen = set(), []
        for path, blob in sorted(((p, b) for p, b in files if self.wanted(p)), key=lambda pb: path_hash(pb[0])):
            if blob in seen_blobs:
                continue
            seen_blobs.add(blob)
            chosen.append(path)
        return chosen[: self.cap] if self.cap is not None else chosen

    def stored_path(self, path: str) -> str:
        """Where the re-encoded image of ``path`` lies under the pool root."""
        return str(PurePosixPath("images", self.name, path).with_suffix(".jpg"))


def path_hash(path: str) -> str:
    return hashlib.sha256(path.encode("utf-8")).hexdigest()


def split_of(path: str, dev_percent: int = 15) -> str:
    """"dev" for about ``dev_percent`` % of paths (by a hash of the path), else "train"."""
    return "dev" if int(path_hash(path)[:8], 16) % 100 < dev_percent else "train"


def load_manifest(path: str | Path) -> Manifest:
    d = json.loads(Path(path).read_text(encoding="utf-8"))
    for key in ("include", "exclude"):
        d[key] = tuple(d.get(key, ()))
    return Manifest(**d)


def load_manifests(directory: str | Path = MANIFEST_DIR, names: Iterable[str] = (),
                   kinds: Iterable[str] = ()) -> list[Manifest]:
    """The manifests under ``directory`` (by name), only ``names`` / ``kinds`` when given;
    dropped collections only when named."""
    names, kinds = set(names), set(kinds)
    manifests = [load_manifest(p) for p in sorted(Path(directory).glob("*.json"))]
    unknown = names - {m.name for m in manifests}
    if unknown:
        raise ValueError(f"no manifest for collection(s) {', '.join(sorted(unknown))} under {directory}")
    return [m for m in manifests if (m.name in names if names else not m.dropped) and (not kinds or m.kind in kinds)]
