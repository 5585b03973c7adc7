"""Training and evaluation data: records, region labels, class balance, shape batches.

- ``load_records`` reads ``labels.jsonl`` (paths relative to the data root);
  ``select_records`` / ``select_unlabelled`` pick a run's records (by split or held-out
  collections), the latter the unlabelled images of ``unlabelled_pools`` (label -1: every
  region ``IGNORE``, so only label-free losses such as the teacher's soft labels use them).
- ``TextFilterDataset`` turns an ``Item`` (what to draw, and the seed of its randomness)
  into a ``Sample``: the image as the pipeline would see it (``model.preprocessing``) and
  its 34 region labels (``model.regions.region_labels``). Four kinds of item:
  ``image`` (a stored image, augmented in training), ``crop`` (a text-free crop of a text
  image: an extra negative), ``synth`` (synthetic text on a non-text photo) and
  ``pattern`` (a texture over a non-text photo, ``training.patterns``: an extra negative).
- ``BalancedSampler`` draws non-text items about as often as text ones, and a share
  ``unlabelled_share`` of the draws from the unlabelled images.
- ``shape_batches`` groups samples of the same shape (the resize rounds the long edge to a
  multiple of 32, so shapes repeat) and ``collate`` stacks them into a ``Batch``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import defaultdict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, NamedTuple, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import DataLoader, Dataset, Sampler

from model.preprocessing import DEFAULT_PREPROCESS, PreprocessConfig, decode_image, open_image, to_rgb, to_tensor
from model.regions import IGNORE, NUM_REGIONS, as_polygons, region_labels
from training.augment import (augment_geometry, check_mix_kind, hflip_matrix, mix_images, photometric, to_model_input,
                              transform_boxes)
from training.collections.labels import UNLABELLED
from training.collections.manifest import EVAL_ONLY_SPLIT, REST_SUFFIX
from training.config import AugmentConfig, DataConfig
from training.patterns import render_pattern
from training.synthtext import TextRenderer

log = logging.getLogger(__name__)

IMAGE, CROP, SYNTH, PATTERN = "image", "crop", "synth", "pattern"
EXIF_ORIENTATION = 0x0112
# Sources that belong to another collection: text found in its photos, its unlabelled remainder.
COLLECTION_SUFFIXES = ("-pseudo", REST_SUFFIX)


@dataclass
class Record:
    path: str  # relative to the data root
    label: int  # 1 text, 0 non-text, -1 (``UNLABELLED``) unknown
    boxes: list
    ignore: list
    source: str
    split: str


def collection_of(source: str) -> str:
    """The collection a source belongs to: ``imagenet-sample-pseudo`` (text found in
    ImageNet photos) is ``imagenet-sample``, ``pets-rest`` (the unlabelled remainder of the
    pets collection, ``training.collections``) is ``pets``; whole collections are held out
    together."""
    for suffix in COLLECTION_SUFFIXES:
        if source.endswith(suffix):
            return source[: -len(suffix)]
    return source


def read_pools(roots: Iterable[str], labels_file: str) -> list[Record]:
    """The records of ``labels_file`` under each pool root, with absolute paths."""
    return [dataclasses.replace(r, path=str(Path(pool).resolve() / r.path))
            for pool in roots for r in load_records(pool, labels_file)]


def refuse_eval_only(records: Sequence[Record], where: str) -> None:
    """Raise when ``records`` (to be trained on) hold images of evaluation-only collections."""
    judged = sorted({r.source for r in records if r.split == EVAL_ONLY_SPLIT})
    if judged:
        raise ValueError(f"{where} holds evaluation-only collections {judged} (split {EVAL_ONLY_SPLIT!r}): "
                         "never trained on; read that pool with --eval_pools or score it with training.select")


def in_role(cfg: DataConfig, records: Iterable[Record], role: str) -> list[Record]:
    """The ``records`` of ``role``: outside (``"train"``) / inside (``"eval"``) the held-out
    collections with ``cfg.holdout``, else those of the role's split."""
    if role not in ("train", "eval"):
        raise ValueError(f"unknown role {role!r}: use 'train' or 'eval'")
    if cfg.holdout:
        held = set(cfg.holdout)
        return [r for r in records if (collection_of(r.source) in held) == (role == "eval")]
    split = cfg.train_split if role == "train" else cfg.eval_split
    return [r for r in records if r.split == split]


def select_records(cfg: DataConfig, role: str) -> list[Record]:
    """The labelled records a run trains on (``role="train"``) or evaluates on (``"eval"``):
    by split (``cfg.train_split`` / ``cfg.eval_split``), or, with ``cfg.holdout``, every record
    outside / inside the held-out collections. Records of ``cfg.pools`` come with absolute
    paths; those of ``cfg.eval_pools`` are only ever evaluated on."""
    if role not in ("train", "eval"):
        raise ValueError(f"unknown role {role!r}: use 'train' or 'eval'")
    records = load_records(cfg.root, cfg.labels_file) + read_pools(cfg.pools, cfg.labels_file)
    if role == "train":
        refuse_eval_only(records, f"the data root {cfg.root} or a pool of --pools {list(cfg.pools)}")
    trained = {Path(pool).resolve() for pool in cfg.pools}
    # read for training only to check the held-out names
    scored_only = read_pools([pool for pool in cfg.eval_pools if Path(pool).resolve() not in trained]
                             if role == "eval" or cfg.holdout else [], cfg.labels_file)
    if cfg.holdout:
        known = {collection_of(r.source) for r in records + scored_only}
        missing = sorted(set(cfg.holdout) - known)
        if missing:
            raise ValueError(f"held-out collections {missing} have no records; known: {sorted(known)}")
    return in_role(cfg, records + scored_only if role == "eval" else records, role)


def select_unlabelled(cfg: DataConfig) -> list[Record]:
    """The unlabelled training records: ``cfg.unlabelled_file`` of each of
    ``cfg.unlabelled_pools`` (absolute paths), chosen like labelled training records (the
    held-out collections, with their ``-rest``, left out; else the train split). Never
    evaluated on."""
    records = read_pools(cfg.unlabelled_pools, cfg.unlabelled_file)
    refuse_eval_only(records, f"a pool of --unlabelled_pools {list(cfg.unlabelled_pools)}")
    labelled = [r for r in records if r.label != UNLABELLED]
    if labelled:
        raise ValueError(f"{cfg.unlabelled_file} of the unlabelled pools holds {len(labelled)} records with a "
                         f"label (e.g. {labelled[0].path}: {labelled[0].label}); labelled images go in --pools")
    return in_role(cfg, records, "train")


def from_pools(record: Record, cfg: DataConfig) -> bool:
    """Whether ``record`` (as ``select_records`` gives it) comes from one of ``cfg.pools``."""
    return Path(record.path).is_absolute() and any(Path(record.path).is_relative_to(Path(pool).resolve())
                                                   for pool in cfg.pools)


def preprocess_of(cfg: DataConfig, base: PreprocessConfig = DEFAULT_PREPROCESS) -> PreprocessConfig:
    """The pipeline's preprocessing with the input shape ``cfg`` trains on."""
    return dataclasses.replace(base, fixed_long_edge=cfg.fixed_long_edge)


def load_records(root: str | Path, labels_file: str = "labels.jsonl", split: str | None = None) -> list[Record]:
    """Records of ``labels.jsonl`` under ``root``, optionally only those of ``split``."""
    path = Path(root) / labels_file
    if not path.is_file():
        raise FileNotFoundError(f"no {labels_file} under data root {root} (set --root or $TEXTFILTER_DATA_ROOT)")
    records = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                d = json.loads(line)
                records.append(Record(d["path"], int(d["label"]), d.get("boxes") or [], d.get("ignore") or [],
                                      d.get("source", ""), d.get("split", "")))
    return [r for r in records if split is None or r.split == split]


class Item(NamedTuple):
    kind: str  # IMAGE, CROP or SYNTH
    index: int  # record index in the dataset
    seed: int = 0  # seed of the item's augmentation; -1 = no augmentation


@dataclass
class Sample:
    image: np.ndarray  # uint8 (H, W, 3), as model.preprocessing produces it
    labels: np.ndarray  # int64 (34,): 1 text, 0 background, -1 ignore (every region of an unlabelled image)
    label: int  # image label: the record's for IMAGE items (-1: unlabelled), 0 for crops and patterns, 1 for synthetic text
    source: str
    path: str
    kind: str


@dataclass
class Batch:
    images: torch.Tensor  # (N, 3, H, W) normalised, channels_last
    labels: torch.Tensor  # (N, 34) int64
    image_labels: torch.Tensor  # (N,) int64
    sources: list[str]
    paths: list[str]
    kinds: list[str]

    def __len__(self) -> int:
        return len(self.paths)

    def to(self, device: torch.device | str) -> "Batch":
        """This batch with its tensors on ``device`` (the same object when already there)."""
        if self.images.device == torch.device(device):
            return self
        return dataclasses.replace(self, images=self.images.to(device, non_blocking=True),
                                   labels=self.labels.to(device, non_blocking=True),
                                   image_labels=self.image_labels.to(device, non_blocking=True))


def text_free_crops(width: int, height: int, boxes: Sequence, rng: np.random.Generator, min_side: float,
                    min_area: float, max_aspect: float = 2.5, margin: float = 4.0, tries: int = 512,
                    keep: int = 4) -> list[tuple[int, int, int, int]]:
    """Up to ``keep`` integer rectangles (x0, y0, x1, y1), largest first, that stay at
    least ``margin`` pixels clear of the bounding rectangle of every box. A side is at
    least ``min_side`` x the short edge, the area at least ``min_area`` x the image's."""
    polys = as_polygons(boxes)
    bb = np.array([[p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()] for p in polys]).reshape(-1, 4)
    bb = bb + np.array([-margin, -margin, margin, margin])
    side = min_side * min(width, height)
    if side > min(width, height):
        return []
    cw = rng.uniform(side, width, tries)
    ch = rng.uniform(side, height, tries)
    x0 = np.floor(rng.uniform(0, 1, tries) * (width - cw))
    y0 = np.floor(rng.uniform(0, 1, tries) * (height - ch))
    x1, y1 = np.ceil(x0 + cw), np.ceil(y0 + ch)
    hits = ((x0[:, None] < bb[None, :, 2]) & (bb[None, :, 0] < x1[:, None])
            & (y0[:, None] < bb[None, :, 3]) & (bb[None, :, 1] < y1[:, None])).any(axis=1)
    area = (x1 - x0) * (y1 - y0)
    aspect = np.maximum(x1 - x0, y1 - y0) / np.minimum(x1 - x0, y1 - y0)
    ok = ~hits & (area >= min_area * width * height) & (aspect <= max_aspect) & (x1 <= width) & (y1 <= height)
    order = np.flatnonzero(ok)[np.argsort(-area[ok], kind="stable")][:keep]
    return [(int(x0[i]), int(y0[i]), int(x1[i]), int(y1[i])) for i in order]


def labels_of(label: int, boxes: Sequence, width: float, height: float, ignore: Sequence = ()) -> np.ndarray:
    """The 34 region labels of an image of label ``label``: every region ``IGNORE`` for an
    unlabelled one (no label-using loss learns from it), else ``model.regions.region_labels``."""
    if label == UNLABELLED:
        return np.full(NUM_REGIONS, IGNORE, dtype=np.int64)
    return region_labels(boxes, width, height, ignore)


class ImageStore:
    """Reads image files under a root, optionally keeping their bytes in memory."""

    def __init__(self, root: str | Path, cache: bool = True):
        self.root = Path(root)
        self.cache: dict[str, bytes] | None = {} if cache else None

    def read(self, path: str) -> bytes:
        if self.cache is not None and path in self.cache:
            return self.cache[path]
        data = (self.root / path).read_bytes()
        if self.cache is not None:
            self.cache[path] = data
        return data

    def size(self, path: str, preprocess: PreprocessConfig = DEFAULT_PREPROCESS) -> tuple[int, int]:
        """(width, height) of the upright stored image, from its header only."""
        with open_image(self.read(path), preprocess) as img:
            w, h = img.size
            return (h, w) if img.getexif().get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8) else (w, h)

    def open(self, path: str, preprocess: PreprocessConfig = DEFAULT_PREPROCESS) -> Image.Image:
        """The stored image, upright RGB, at its stored size (box coordinates apply)."""
        img = ImageOps.exif_transpose(open_image(self.read(path), preprocess))
        return to_rgb(img, preprocess.background)


class TextFilterDataset(Dataset):
    """Samples of one split. ``train=True`` augments and enables crops and synthetic text."""

    def __init__(self, records: Sequence[Record], cfg: DataConfig, train: bool,
                 renderer: TextRenderer | None = None, preprocess: PreprocessConfig = DEFAULT_PREPROCESS,
                 crop_seed: int = 0):
        self.records = list(records)
        self.cfg = cfg
        self.train = train
        self.renderer = renderer if train else None
        self.preprocess = preprocess
        self.store = ImageStore(cfg.root, cfg.cache_bytes)
        # unlabelled images are many and drawn about once a run: read from disk, never cached
        self.stream = ImageStore(cfg.root, cache=False)
        self.crops: dict[int, list] = self._find_crops(crop_seed) if train and cfg.crop_share > 0 else {}
        # With flips as the only augmentation, a stored image is decoded once and mirrored as an
        # array view (~1 GB for 4,000 images at 256x341): the data thread no longer competes with
        # the training threads for the CPU.
        a = cfg.augment
        self.decoded: dict | None = {} if train and cfg.cache_bytes and not (a.rotate_p or a.zoom_p or a.jpeg_p) \
            else None
        if cfg.unlabelled_mix_p > 0:
            check_mix_kind(cfg.unlabelled_mix, "unlabelled_mix")
            if train and not cfg.unlabelled_views:
                log.warning("unlabelled_mix_p %g has no effect without unlabelled_views: no view is mixed",
                            cfg.unlabelled_mix_p)
        # the partners an unlabelled view is mixed with (``unlabelled_mix_p``)
        self.unlabelled = [i for i, r in enumerate(self.records) if r.label == UNLABELLED] \
            if train and cfg.unlabelled_views and cfg.unlabelled_mix_p > 0 else []

    @classmethod
    def for_split(cls, cfg: DataConfig, split: str, train: bool, **kwargs) -> "TextFilterDataset":
        return cls._of(load_records(cfg.root, cfg.labels_file, split), cfg, train, **kwargs)

    @classmethod
    def for_role(cls, cfg: DataConfig, role: str, **kwargs) -> "TextFilterDataset":
        """The training (``role="train"``, augmented, with the unlabelled images of
        ``select_unlabelled`` after the labelled ones) or evaluation set of ``cfg``
        (``select_records``), at ``cfg``'s input shape."""
        records = select_records(cfg, role)
        if role == "train":
            records += select_unlabelled(cfg)
        return cls._of(records, cfg, role == "train", **kwargs)

    @classmethod
    def _of(cls, records: Sequence[Record], cfg: DataConfig, train: bool, **kwargs) -> "TextFilterDataset":
        """``records`` at ``cfg``'s input shape, with synthetic text when training."""
        renderer = TextRenderer.from_config(cfg.synth) if train else None
        kwargs.setdefault("preprocess", preprocess_of(cfg))
        return cls(records, cfg, train, renderer, **kwargs)

    def __len__(self) -> int:
        return len(self.records)

    def _find_crops(self, seed: int) -> dict[int, list]:
        """Text-free crop rectangles of the text images whose boxes can be trusted."""
        crops = {}
        suffix = self.cfg.crop_exclude_suffix
        for i, r in enumerate(self.records):
            if r.label != 1 or not r.boxes or (suffix and r.source.endswith(suffix)):
                continue
            w, h = self.store.size(r.path, self.preprocess)
            rects = text_free_crops(w, h, list(r.boxes) + list(r.ignore), np.random.default_rng([seed, i]),
                                    self.cfg.crop_min_side, self.cfg.crop_min_area)
            if rects:
                crops[i] = rects
        return crops

    def items(self) -> list[Item]:
        """One un-augmented IMAGE item per record (evaluation order)."""
        return [Item(IMAGE, i, -1) for i in range(len(self.records))]

    def __getitem__(self, item: Item) -> Sample:
        kind, index, seed = item
        record = self.records[index]
        if seed < 0 or not self.train:  # exactly the pipeline's decode
            store = self.store_of(record)
            image = decode_image(store.read(record.path), self.preprocess)
            labels = labels_of(record.label, record.boxes, *store.size(record.path, self.preprocess), record.ignore)
            return Sample(image, labels, record.label, record.source, record.path, IMAGE)
        rng = np.random.default_rng(seed)
        if kind == IMAGE and self.decoded is not None and record.label != UNLABELLED:
            sample = self._flipped(index, rng.random() < self.cfg.augment.flip_p)  # a new Sample each call
            sample.image = photometric(sample.image, rng, self.cfg.augment)
            return sample
        image, labels, label, source = self._augmented(kind, index, rng)
        if self.unlabelled and label == UNLABELLED and rng.random() < self.cfg.unlabelled_mix_p:
            partner = self.unlabelled[int(rng.integers(len(self.unlabelled)))]
            other = self._augmented(IMAGE, partner, np.random.default_rng(rng.integers(2**63)))[0]  # its own view
            image = mix_images(image, other, rng, self.cfg.unlabelled_mix)
        return Sample(image, labels, label, source, record.path, kind)

    def _augmented(self, kind: str, index: int, rng: np.random.Generator):
        """(model input, region labels, image label, source) of an augmented draw of ``index``."""
        img, boxes, ignore, label, source = self._base(kind, index, rng)
        augment = self.augment_of(kind, self.records[index])
        img, boxes, ignore = augment_geometry(img, boxes, ignore, rng, augment)
        labels = labels_of(label, boxes, img.width, img.height, ignore)
        return photometric(to_model_input(img, rng, augment, self.preprocess), rng, augment), labels, label, source

    def augment_of(self, kind: str, record: Record) -> AugmentConfig:
        """The augmentation of a draw: ``cfg.unlabelled_augment`` for unlabelled images when
        ``cfg.unlabelled_views`` is on, else ``cfg.augment``."""
        if self.cfg.unlabelled_views and kind == IMAGE and record.label == UNLABELLED:
            return self.cfg.unlabelled_augment
        return self.cfg.augment

    def store_of(self, record: Record) -> ImageStore:
        """Where ``record``'s bytes are read: the cache, or straight from disk when unlabelled."""
        return self.stream if record.label == UNLABELLED else self.store

    def _flipped(self, index: int, flip: bool) -> Sample:
        """Stored image ``index`` decoded as the pipeline does (once, then from memory),
        mirrored when ``flip``, with its region labels (of the mirrored boxes when flipped)."""
        record = self.records[index]
        if index not in self.decoded:
            image = decode_image(self.store.read(record.path), self.preprocess)
            w, h = self.store.size(record.path, self.preprocess)
            mirror = hflip_matrix(w)
            self.decoded[index] = (image, region_labels(record.boxes, w, h, record.ignore),
                                   region_labels(transform_boxes(record.boxes, mirror), w, h,
                                                 transform_boxes(record.ignore, mirror)))
        image, labels, mirrored = self.decoded[index]
        if flip:
            image, labels = image[:, ::-1], mirrored
        return Sample(image, labels, record.label, record.source, record.path, IMAGE)

    def _base(self, kind: str, index: int, rng: np.random.Generator):
        """(image, boxes, ignore, image label, source) before augmentation."""
        record = self.records[index]
        img = self.store_of(record).open(record.path, self.preprocess)
        if kind == IMAGE:
            return img, record.boxes, record.ignore, record.label, record.source
        if kind == CROP:
            rects = self.crops[index]
            return img.crop(rects[int(rng.integers(len(rects)))]), [], [], 0, f"crop:{record.source}"
        if kind == SYNTH:
            if self.renderer is None:
                raise ValueError("synthetic text requested but no renderer (no fonts, or disabled)")
            img, boxes = self.renderer.render(img, rng)
            return img, boxes, [], int(bool(boxes)), f"synth:{record.source}"
        if kind == PATTERN:
            return render_pattern(img, rng), [], [], 0, f"pattern:{record.source}"
        raise ValueError(f"unknown item kind {kind!r}")


class BalancedSampler(Sampler):
    """Draws ``Item``s so that a share ``negative_share`` of them is non-text.

    Text draws are stored text images, plus (share ``synth.share``) synthetic text on
    non-text photos; non-text draws are stored non-text images, plus (share
    ``crop_share``) text-free crops of text images and (share ``pattern_share``) textures
    laid over non-text photos (``training.patterns``); with ``pool_share`` >= 0, that share
    of the non-text draws comes from the pools' non-text images and the root's take the rest.
    A share ``unlabelled_share`` of all draws are unlabelled images (label -1, from
    ``select_unlabelled``); the balanced draws are the rest, and with ``epoch_size`` 0 an epoch
    holds as many balanced draws as there are labelled records. Each pool is walked in a fresh random
    order and reshuffled when used up, so every image is seen before any is repeated.
    ``set_epoch`` makes each epoch's draws (and the items' seeds) reproducible."""

    def __init__(self, dataset: TextFilterDataset, cfg: DataConfig, seed: int = 0):
        labels = np.array([r.label for r in dataset.records])
        text, non_text = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
        # (kind, record indices, share of the class's draws); the stored images take the rest.
        extra = {"text": [], "non_text": []}
        if dataset.renderer is not None and cfg.synth.share > 0 and len(non_text):
            extra["text"].append((SYNTH, non_text, cfg.synth.share))
        if dataset.crops and cfg.crop_share > 0:
            extra["non_text"].append((CROP, np.array(sorted(dataset.crops)), cfg.crop_share))
        if cfg.pattern_share > 0 and len(non_text):
            extra["non_text"].append((PATTERN, non_text, cfg.pattern_share))
        own = {"text": text, "non_text": non_text}
        if cfg.pool_share >= 0:
            pooled = np.array([from_pools(dataset.records[i], cfg) for i in non_text], dtype=bool)
            if not pooled.any() or pooled.all():
                raise ValueError(f"pool_share {cfg.pool_share} needs non-text images from both the root and --pools")
            own["non_text"] = non_text[~pooled]
            extra["non_text"].append((IMAGE, non_text[pooled], cfg.pool_share))
        self.pools, self.shares = {}, {}
        for cls, pools in extra.items():
            rest = 1.0 - sum(share for _, _, share in pools)
            if rest < 0:
                raise ValueError(f"the {cls} shares {[share for _, _, share in pools]} add up to more than 1")
            self.pools[cls] = [(IMAGE, own[cls])] + [(kind, pool) for kind, pool, _ in pools]
            shares = np.asarray([rest] + [share for _, _, share in pools], dtype=np.float64)
            self.shares[cls] = shares / shares.sum()
        self.negative_share = cfg.negative_share
        self.unlabelled, self.unlabelled_share = unlabelled_pool(labels, cfg)
        self.length = cfg.epoch_size or round((len(labels) - len(self.unlabelled)) / (1 - self.unlabelled_share))
        self.seed = seed
        self.epoch = 0
        if not len(text) or not len(non_text):
            raise ValueError("balanced sampling needs both text and non-text records")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[Item]:
        rng = np.random.default_rng([self.seed, self.epoch])
        cursors: dict = {}

        def next_index(kind: str, pool: np.ndarray, key) -> int:
            order, pos = cursors.get(key, (None, len(pool)))
            if pos >= len(pool):
                order, pos = rng.permutation(pool), 0
            cursors[key] = (order, pos + 1)
            return int(order[pos])

        for _ in range(self.length):
            if self.unlabelled_share and rng.random() < self.unlabelled_share:
                yield Item(IMAGE, next_index(IMAGE, self.unlabelled, "unlabelled"), int(rng.integers(0, 2**31 - 1)))
                continue
            cls = "non_text" if rng.random() < self.negative_share else "text"
            pools = self.pools[cls]
            j = int(rng.choice(len(pools), p=self.shares[cls]))
            kind, pool = pools[j]
            yield Item(kind, next_index(kind, pool, (cls, j)), int(rng.integers(0, 2**31 - 1)))


def unlabelled_pool(labels: np.ndarray, cfg: DataConfig) -> tuple[np.ndarray, float]:
    """(indices of the unlabelled records among ``labels``, ``cfg.unlabelled_share``), checked:
    a share in [0, 1), unlabelled records when it is above 0 and none when it is 0 (they would
    never be drawn)."""
    share, unlabelled = cfg.unlabelled_share, np.flatnonzero(labels == UNLABELLED)
    if not 0 <= share < 1:
        raise ValueError(f"unlabelled_share {share} is not in [0, 1)")
    if share > 0 and not len(unlabelled):
        raise ValueError(f"unlabelled_share {share} but no unlabelled training records (unlabelled_pools: "
                         f"{' '.join(cfg.unlabelled_pools) or 'none'}; held out: {' '.join(cfg.holdout) or 'none'})")
    if share == 0 and len(unlabelled):
        raise ValueError(f"{len(unlabelled)} unlabelled training records but unlabelled_share is 0: they would "
                         "never be drawn (set unlabelled_share or leave out unlabelled_pools)")
    return unlabelled, share


def shape_batches(samples: Iterable[Sample], batch_size: int, drop_last: bool = False) -> Iterator[list[Sample]]:
    """Group ``samples`` into lists of up to ``batch_size`` samples of one image shape.
    A batch is emitted as soon as its shape has ``batch_size`` samples; partial groups
    follow at the end (unless ``drop_last``)."""
    buckets: dict[tuple, list[Sample]] = defaultdict(list)
    for sample in samples:
        bucket = buckets[sample.image.shape]
        bucket.append(sample)
        if len(bucket) == batch_size:
            yield list(bucket)
            bucket.clear()
    if not drop_last:
        for bucket in buckets.values():
            if bucket:
                yield list(bucket)


def collate(samples: Sequence[Sample]) -> Batch:
    """Stack same-shape samples into a ``Batch`` (images normalised, channels_last)."""
    return Batch(
        images=to_tensor([s.image for s in samples]),
        labels=torch.from_numpy(np.stack([s.labels for s in samples]).astype(np.int64)),
        image_labels=torch.tensor([s.label for s in samples], dtype=torch.int64),
        sources=[s.source for s in samples],
        paths=[s.path for s in samples],
        kinds=[s.kind for s in samples],
    )


def _identity(x):
    return x


def thread_map(fn: Callable, items: Iterable, workers: int, window: int) -> Iterator:
    """``fn(item)`` for every item, in order, computed by ``workers`` threads with at most
    ``window`` results ahead of the consumer. PIL's decoding, resampling and encoding
    release the GIL, so threads scale without sending every sample between processes."""
    with ThreadPoolExecutor(workers, thread_name_prefix="textfilter-data") as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def samples(dataset: TextFilterDataset, items: Iterable[Item] | Sampler, num_workers: int = 0,
            loader: str = "process") -> Iterable[Sample]:
    """``dataset[item]`` for ``items`` in order: in this thread (``num_workers == 0``), in
    DataLoader worker processes (``loader="process"``) or in a thread pool (``"thread"``)."""
    if num_workers <= 0:
        return (dataset[item] for item in items)
    if loader == "thread":
        return thread_map(dataset.__getitem__, items, num_workers, window=4 * num_workers)
    if loader == "process":
        return DataLoader(dataset, sampler=items, batch_size=None, collate_fn=_identity, num_workers=num_workers,
                          persistent_workers=False)
    raise ValueError(f"unknown loader {loader!r}: use 'process' or 'thread'")


def batches(dataset: TextFilterDataset, items: Iterable[Item] | Sampler, batch_size: int,
            num_workers: int = 0, loader: str = "process") -> Iterator[Batch]:
    """Shape-grouped ``Batch``es of ``dataset[item]`` for ``items`` (a list or a sampler);
    ``num_workers > 0`` decodes and augments in worker processes or threads (``loader``)."""
    for group in shape_batches(samples(dataset, items, num_workers, loader), batch_size):
        yield collate(group)
