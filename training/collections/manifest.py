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

``"det_min_side": N`` makes screening enlarge this collection's images to a short side of N
for text detection (instead of ``--det_min_side``): for small images whose lettering the
default size misses (fashion-catalogue's 224-px catalogue shots).

``"trim_borders": true`` makes the builder cut uniform bars off the image's edges before storing
it (``build.trim_uniform_borders``; the boxes move with the content): for collections whose
images were letterboxed into a square (the Freiburg groceries' 224x224 grey bars), so that bars
found in one collection only do not become a cue.

``"eval_only": true`` marks a collection kept for judging students, never for training: it is
left out of ``load_manifests`` unless asked for with ``eval_only=True`` (or named), the builder
refuses to put it in a pool with training collections, and its records carry the split
``EVAL_ONLY_SPLIT``, which ``training.data`` refuses to train on (such a pool is read with
``--eval_pools`` or scored with ``training.select``).

``"eval_pool": "<name>"`` (with ``eval_only``) puts an evaluation-only collection in an evaluation
pool of its own instead of the one the never-seen basis is defined on (session 30's: weather,
portraits with masks, clothing, benchmark photos), so that ``load_manifests(eval_only=True)`` and
``build --eval_only`` keep building that pool unchanged. Session 35's ``extra-text`` collections
are scored for their text only (``training.neverseen --extra_text``); ``load_manifests(...,
eval_pool="extra-text")`` and ``build --eval_pool extra-text`` take them.

``"rest_of": "<collection>"`` (kind ``unlabelled`` only) makes a manifest the remainder of a
labelled collection of the same repository at the same commit: its own include / exclude
matches minus every file that collection selects (its cap included) and every file with the
same contents as one of those, then its own cap. It must be named ``<collection>-rest``
(``REST_SUFFIX``), so that holding out the collection in training (``training.data.collection_of``)
holds out its remainder too. ``load_manifests`` resolves and checks ``rest_of``.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Iterable, Optional

KINDS = ("non_text", "text", "unlabelled")
MANIFEST_DIR = Path(__file__).resolve().parent / "manifests"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")
REST_SUFFIX = "-rest"  # name of a ``rest_of`` manifest: <labelled collection>-rest
EVAL_ONLY_SPLIT = "eval-only"  # the split of every record of an ``eval_only`` collection


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
    rest_of: str = ""  # a labelled collection of the same repository whose files are left out
    eval_only: bool = False  # kept for judging students: never in a training pool
    eval_pool: str = ""  # with eval_only: an evaluation pool of its own ("": the basis's evaluation-only pool)
    # screening enlarges images to this short side for detection (0: the screen's default,
    # ``--det_min_side``); for collections of small images whose lettering slips through
    det_min_side: int = 0
    trim_borders: bool = False  # the builder cuts uniform letterbox bars off the edges
    # the manifest named by ``rest_of``, set by ``with_bases`` (not part of the JSON file)
    base: Optional["Manifest"] = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"collection {self.name}: kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if not self.include:
            raise ValueError(f"collection {self.name}: no include patterns")
        if type(self.det_min_side) is not int or self.det_min_side < 0:
            raise ValueError(f"collection {self.name}: det_min_side {self.det_min_side!r} is not a short side in "
                             "pixels (0: the screen's default)")
        if type(self.trim_borders) is not bool:
            raise ValueError(f"collection {self.name}: trim_borders {self.trim_borders!r} is not true or false")
        if self.eval_pool and not self.eval_only:
            raise ValueError(f"collection {self.name}: eval_pool {self.eval_pool!r} is for eval_only collections")
        if self.rest_of:
            if self.kind != "unlabelled":
                raise ValueError(f"collection {self.name}: rest_of is for kind unlabelled, not {self.kind!r}")
            if self.eval_only:
                raise ValueError(f"collection {self.name}: the rest of a collection is for training, "
                                 "it cannot be eval_only")
            if self.name != self.rest_of + REST_SUFFIX:
                raise ValueError(f"collection {self.name}: the rest of {self.rest_of} must be named "
                                 f"{self.rest_of + REST_SUFFIX!r} (held out with it in training)")
        if self.base is not None:
            check_base(self, self.base)

    def wanted(self, path: str) -> bool:
        """Whether a path in the repository is an image this collection uses (before the cap)."""
        return (path.lower().endswith(IMAGE_SUFFIXES)
                and any(fnmatch.fnmatchcase(path, p) for p in self.include)
                and not any(fnmatch.fnmatchcase(path, p) for p in self.exclude))

    def select(self, files: Iterable[tuple[str, str]]) -> list[str]:
        """The collection's paths out of (path, blob id) pairs, in sample order (sha256 of
        the path), identical blobs once, at most ``cap``; for a ``rest_of`` manifest, none of
        the files (paths or contents) that its base collection selects."""
        files = list(files)
        seen_blobs, chosen = set(), []
        if self.rest_of:
            if self.base is None:
                raise ValueError(f"collection {self.name}: rest_of {self.rest_of} is not resolved "
                                 "(load manifests with load_manifests)")
            taken = set(self.base.select(files))
            seen_blobs = {blob for path, blob in files if path in taken}
            files = [(p, b) for p, b in files if p not in taken]
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


def check_base(manifest: Manifest, base: Manifest) -> None:
    """Raise unless ``base`` can be the collection that ``manifest`` is the rest of."""
    where = f"collection {manifest.name}: rest_of {manifest.rest_of}"
    if base.name != manifest.rest_of:
        raise ValueError(f"{where}: given the manifest of {base.name}")
    if base.kind == "unlabelled" or base.rest_of:
        raise ValueError(f"{where} is not a labelled collection (kind {base.kind}"
                         f"{', itself the rest of ' + base.rest_of if base.rest_of else ''})")
    if (base.repository, base.commit) != (manifest.repository, manifest.commit):
        raise ValueError(f"{where} is {base.repository}@{base.commit}, not {manifest.repository}@{manifest.commit}")


def with_bases(manifests: Iterable[Manifest]) -> list[Manifest]:
    """``manifests`` with the collection each ``rest_of`` names attached as its ``base``
    (checked: it exists among ``manifests``, is labelled, same repository and commit)."""
    manifests = list(manifests)
    by_name = {m.name: m for m in manifests}
    out = []
    for m in manifests:
        if m.rest_of and m.rest_of not in by_name:
            raise ValueError(f"collection {m.name}: rest_of {m.rest_of!r} names no manifest; "
                             f"known: {', '.join(sorted(by_name))}")
        out.append(replace(m, base=by_name[m.rest_of]) if m.rest_of else m)
    return out


def load_manifest(path: str | Path) -> Manifest:
    """One manifest file (a ``rest_of`` is not resolved: ``load_manifests`` does that)."""
    d = json.loads(Path(path).read_text(encoding="utf-8"))
    for key in ("include", "exclude"):
        d[key] = tuple(d.get(key, ()))
    if "base" in d:
        raise ValueError(f"{path}: 'base' is not a manifest field (use rest_of)")
    return Manifest(**d)


def load_manifests(directory: str | Path = MANIFEST_DIR, names: Iterable[str] = (),
                   kinds: Iterable[str] = (), eval_only: bool = False, eval_pool: str = "") -> list[Manifest]:
    """The manifests under ``directory`` (by name), only ``names`` / ``kinds`` when given;
    dropped collections only when named; without ``names``, the training collections, or with
    ``eval_only`` the evaluation-only ones of ``eval_pool`` ("": the basis's evaluation-only pool;
    a name implies ``eval_only``). Every ``rest_of`` is resolved (``with_bases``)."""
    eval_only = eval_only or bool(eval_pool)
    names, kinds = set(names), set(kinds)
    manifests = with_bases(load_manifest(p) for p in sorted(Path(directory).glob("*.json")))
    unknown = names - {m.name for m in manifests}
    if unknown:
        raise ValueError(f"no manifest for collection(s) {', '.join(sorted(unknown))} under {directory}")
    pools = {m.eval_pool for m in manifests if m.eval_only}
    if eval_pool not in pools | {""}:
        raise ValueError(f"no evaluation pool {eval_pool!r} under {directory} (known: {', '.join(sorted(pools - {''})) or 'none'})")
    return [m for m in manifests if (m.name in names if names else not m.dropped and m.eval_only == eval_only
                                     and m.eval_pool == eval_pool)
            and (not kinds or m.kind in kinds)]
