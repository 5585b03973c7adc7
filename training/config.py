"""Configuration of training runs: small dataclasses, passed explicitly (no global config).

A checkpoint stores the configs it was trained with (``dataclasses.asdict``), so a run
can be resumed or reproduced without guessing. ``training.cli`` turns the fields into
command-line options, so the defaults live here only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

# Words a yes/no option's value may be given as (``--set synth.enabled=off``, ``--model_config separable=true``).
BOOLEAN_WORDS = {"true": True, "on": True, "yes": True, "false": False, "off": False, "no": False}

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_ROOT_ENV = "TEXTFILTER_DATA_ROOT"


def default_data_root() -> str:
    """``$TEXTFILTER_DATA_ROOT`` if set, else ``../shared/data`` next to the repository."""
    return os.environ.get(DATA_ROOT_ENV) or str((REPO_ROOT / ".." / "shared" / "data").resolve())


def default_font_dirs() -> tuple[str, ...]:
    return ("/usr/share/fonts/truetype", "/usr/share/fonts/TTF", "/usr/share/fonts", "/Library/Fonts",
            "C:/Windows/Fonts")


@dataclass
class AugmentConfig:
    """Geometric and photometric augmentation, applied to the image and its boxes alike."""

    flip_p: float = 0.5  # horizontal flip
    rotate_p: float = 0.5
    max_rotation: float = 10.0  # degrees, uniform in [-max, max], canvas expanded
    zoom_p: float = 0.3  # "scale jitter": crop a window and let the resize zoom into it
    min_zoom_side: float = 0.75  # smallest window side as a fraction of the image side
    jpeg_p: float = 0.5  # re-encode as JPEG (decoded by model.preprocessing.decode_image)
    jpeg_quality: tuple[int, int] = (30, 95)
    # Photometric steps on the model's input (after the resize, so cheap; boxes unchanged):
    # brightness, contrast and saturation each scaled by a factor in [1 - s, 1 + s]; grayscale;
    # Gaussian blur of sigma uniform in (0.3, max_blur_sigma) pixels of the 256-pixel input.
    colour_p: float = 0.0
    colour_strength: float = 0.3
    gray_p: float = 0.0
    blur_p: float = 0.0
    max_blur_sigma: float = 1.2


CAPTION_KINDS = ("band", "corner", "edge", "date", "watermark")  # training.synthtext.render_caption's kinds


@dataclass
class SynthConfig:
    """Synthetic text drawn on non-text photos (boxes recorded, so labels are exact)."""

    enabled: bool = True
    share: float = 0.15  # share of the text draws that are synthetic
    font_dirs: tuple[str, ...] = field(default_factory=default_font_dirs)
    max_fonts: int = 64
    min_strings: int = 1
    max_strings: int = 4
    size_range: tuple[float, float] = (0.05, 0.2)  # font size as a fraction of the short edge
    max_angle: float = 30.0
    # Document-like draws (pages, screenshots, slides): lines of small text in columns on a plain
    # background or a panel over the photo, rendered at 4x and scaled down like a scan or a
    # screen capture; line height as a fraction of the short edge (at 256 px: 3-13 px).
    page_share: float = 0.0  # share of the synthetic draws that are pages (0 = none)
    page_line_range: tuple[float, float] = (0.012, 0.05)
    # Credits, watermarks and date stamps (training.synthtext.render_caption): small text in a band
    # added below or above the photo, in a corner, along a side edge, a camera's date stamp, or a
    # large faint watermark; the text crawled photos carry most often and the students miss most.
    caption_share: float = 0.0  # share of the synthetic draws that are captions (0 = none)
    # which caption kinds are drawn (CAPTION_KINDS; their weights renormalised)
    caption_kinds: tuple[str, ...] = CAPTION_KINDS


@dataclass
class DataConfig:
    root: str = field(default_factory=default_data_root)
    labels_file: str = "labels.jsonl"
    train_split: str = "train"
    eval_split: str = "dev"
    negative_share: float = 0.5  # share of non-text draws per epoch (0.5 = balanced)
    crop_share: float = 0.3  # share of the non-text draws that are text-free crops of text images
    pattern_share: float = 0.0  # share of the non-text draws that are textures over a non-text photo (training.patterns)
    crop_min_side: float = 0.4  # smallest crop side, fraction of the image's short edge
    crop_min_area: float = 0.15  # smallest crop area, fraction of the image's area
    crop_exclude_suffix: str = "-pseudo"  # sources whose boxes miss text: no crops from them
    epoch_size: int = 0  # draws per epoch; 0 = number of training records
    cache_bytes: bool = True  # keep file bytes in memory (~115 MB for the full set)
    # Input shape (model.preprocessing): 0 = short edge 256, aspect kept; 341 = every image
    # 256x341 in its own orientation. Stored with the weights (meta["preprocess"]).
    fixed_long_edge: int = 0
    # Cross-source validation (training.crossval): collections (sources without "-pseudo") left
    # out of training, whatever their split; evaluation is then on them alone. Empty: by split.
    holdout: tuple[str, ...] = ()
    # More data roots laid out like ``root`` (labels.jsonl in the same format, paths relative to
    # that root), e.g. the pool that ``training.collections`` builds; read alongside ``root``.
    pools: tuple[str, ...] = ()
    # Data roots like ``pools`` that are read for evaluation only: a cross-source fold can hold out
    # collections of a pool and score a recipe that does not train on that pool (its records are
    # never trained on; with ``holdout``, only the held-out collections' records are scored).
    eval_pools: tuple[str, ...] = ()
    # Share of the non-text draws taken from the pools' non-text images (the root's take the
    # rest, less crops and patterns); -1: by their number (every non-text image equally likely).
    pool_share: float = -1.0
    # Pools whose ``unlabelled_file`` (``training.collections`` build) is read for training only,
    # held-out collections (and their ``-rest``) left out as for labelled records. Such images
    # carry no labels: only label-free loss terms (the teacher's soft labels, ``kd``) learn from them.
    unlabelled_pools: tuple[str, ...] = ()
    unlabelled_file: str = "unlabelled.jsonl"
    # Share of the training draws taken from the unlabelled images (the balanced draws take the
    # rest); with epoch_size 0 an epoch is the labelled records' number of balanced draws plus these.
    unlabelled_share: float = 0.0
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    # With ``unlabelled_views`` on, unlabelled draws are augmented by ``unlabelled_augment``
    # instead of ``augment`` (labelled draws keep ``augment``): the teacher labels the very view
    # the student sees ("function matching"), so strong augmentation there needs no box to follow.
    # The teacher memo costs nothing extra for it: an unlabelled image is drawn about once a run.
    unlabelled_views: bool = False
    unlabelled_augment: AugmentConfig = field(default_factory=AugmentConfig)
    # With ``unlabelled_views`` on, a share ``unlabelled_mix_p`` of the unlabelled draws is mixed
    # with the view of another unlabelled image drawn by the same seed (the teacher labels the mix):
    # "mixup" blends the two with a weight uniform in [0, 1], "cutmix" pastes a window of the other
    # (a random share of the area, at a random place). Inputs off the images' manifold that the
    # student must still follow its teacher on (function matching's mixing).
    unlabelled_mix: str = "mixup"
    unlabelled_mix_p: float = 0.0
    synth: SynthConfig = field(default_factory=SynthConfig)


@dataclass
class TrainConfig:
    model: str = "student"
    model_config: tuple[str, ...] = ()  # overrides of the model's config, "key=value" (e.g. width=0.25)
    losses: tuple[str, ...] = ("hard:1.0",)  # "name:weight" terms of training.losses.LOSSES
    optimizer: str = "adamw"  # see training.engine.OPTIMIZERS
    lr: float = 2e-3
    momentum: float = 0.9  # SGD only
    weight_decay: float = 1e-4
    schedule: str = "cosine"  # "cosine" (per step, to lr * min_lr_ratio), "onecycle", "constant" or "plateau" (/10 on a plateau)
    plateau_tol: float = 0.01  # "plateau": relative improvement of the epoch train loss that counts
    min_lr_ratio: float = 0.05
    warmup_steps: int = 50
    epochs: int = 10
    batch_size: int = 16
    seed: int = 0
    num_threads: int = 1
    num_workers: int = 0  # workers that decode and augment (0 = in the training loop's thread)
    loader: str = "process"  # kind of those workers: "process" (DataLoader) or "thread" (no pickling between processes)
    time_budget: float = 0.0  # seconds; > 0: the lr schedule runs on elapsed time and training stops when it is spent
    device: str = "cpu"  # "cpu", "cuda", "cuda:1", ... ("auto": cuda when available)
    channels_last: bool = True
    out_dir: str = "runs/student-hard"
    # Remember the teacher's outputs per distinct input sample (training.teacher_memo): exact, and
    # with a fixed input shape and flips only one teacher forward per image and flip, not per draw.
    teacher_memo: bool = False
    disc_lr_ratio: float = 2.0  # discriminator lr = this x the model's lr (adversarial terms)
    eval_every: int = 1  # epochs between dev evaluations (0 = never during training)
    keep_every: int = 0  # epochs between weights-only snapshots <out_dir>/epoch-NNN.pt, for training.average (0 = none)
    # Exponential moving average of the weights (training.ema), updated after every optimiser step:
    # 0 = off; e.g. 0.998 (a horizon of ~500 steps). When on, the dev figures, epoch-NNN.pt, --out and
    # last.pt's weights are the EMA's (meta["ema"]; last.pt keeps the live weights for --resume).
    ema_decay: float = 0.0
    ema_start: float = 0.5  # fraction of the run (the lr schedule's progress) before which the EMA copies the weights
