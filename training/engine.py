"""The training loop shared by every stage: optimisers, learning-rate schedule, one epoch
of updates, batched prediction, and checkpoints that can be resumed.

``train_epoch`` takes the model being trained, an ``Objective`` (``training.losses``) and
optionally a frozen teacher, whose outputs it computes only when a loss needs them; the
distillation stages reuse it unchanged. Loss terms marked ``adversarial = True`` (BEGAN)
get a ``discriminator_step`` after every student step, with the discriminator's own
optimiser (``build_discriminator_optimizer``). With an EMA of the weights
(``training.ema``), ``train_epoch`` updates it after every student step, and the training
checkpoint holds it as its model weights, the live ones beside them. The run driver is
``training.loop``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import sys
import time
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from model.registry import read_checkpoint, save_checkpoint
from training.config import TrainConfig
from training.data import Batch
from training.ema import WeightEMA

log = logging.getLogger(__name__)

# Adam(W) is the default: on shape-grouped batches of 16 it reaches a good student within
# the few epochs a CPU affords. SGD with momentum (the paper's optimiser, there with batch 1
# and lr 1e-4) is kept for the ablations.
OPTIMIZERS: dict[str, Callable[[Iterable, TrainConfig], torch.optim.Optimizer]] = {
    "adamw": lambda params, c: torch.optim.AdamW(params, lr=c.lr, weight_decay=c.weight_decay),
    "adam": lambda params, c: torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay),
    "sgd": lambda params, c: torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay),
}


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {cfg.optimizer!r}; known: {', '.join(sorted(OPTIMIZERS))}")
    return OPTIMIZERS[cfg.optimizer]([p for p in model.parameters() if p.requires_grad], cfg)


def adversarial_terms(objective: nn.Module) -> list[nn.Module]:
    """The loss terms of ``objective`` that own a discriminator (``adversarial = True``)."""
    return [t for t in getattr(objective, "terms", []) if getattr(t, "adversarial", False)]


def build_discriminator_optimizer(objective: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer | None:
    """One optimiser (same kind as the student's) over the parameters of every adversarial
    term's discriminator, at ``disc_lr_ratio`` x the student's lr; None without such terms.
    These parameters are never in the student's optimiser (``build_optimizer`` sees only
    the model's)."""
    params = [p for t in adversarial_terms(objective) for p in t.discriminator.parameters() if p.requires_grad]
    if not params:
        return None
    return OPTIMIZERS[cfg.optimizer](params, dataclasses.replace(cfg, lr=cfg.lr * cfg.disc_lr_ratio))


def lr_at(step: int, progress: float, cfg: TrainConfig, scale: float = 1.0) -> float:
    """Learning rate after ``step`` updates with ``progress`` (0..1) of all samples seen:
    linear warm-up over ``warmup_steps``, then constant or cosine down to ``lr * min_lr_ratio``;
    "plateau" is constant times ``scale`` (the loop divides it by 10 when the epoch's train
    loss stops improving, the paper's schedule; see ``plateau_update``)."""
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps > 0 else 1.0
    if cfg.schedule == "constant":
        return cfg.lr * warm
    if cfg.schedule == "plateau":
        return cfg.lr * warm * scale
    if cfg.schedule == "cosine":
        floor = cfg.min_lr_ratio
        return cfg.lr * warm * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))
    if cfg.schedule == "onecycle":
        return cfg.lr * warm * one_cycle(min(progress, 1.0))
    raise ValueError(f"unknown schedule {cfg.schedule!r}: use 'cosine', 'onecycle', 'constant' or 'plateau'")


def one_cycle(progress: float, pct_start: float = 0.3, div_factor: float = 25.0, final_div: float = 1e4) -> float:
    """PyTorch's ``OneCycleLR`` (cosine annealing, its defaults) as a factor of the peak lr at
    ``progress`` (0..1): from 1/25 up to 1 over the first 30 %, then down to 1/25 / 1e4."""
    start, end = 1.0 / div_factor, 1.0 / (div_factor * final_div)
    if progress < pct_start:
        return start + (1.0 - start) * 0.5 * (1 - math.cos(math.pi * progress / pct_start))
    return end + (1.0 - end) * 0.5 * (1 + math.cos(math.pi * (progress - pct_start) / (1 - pct_start)))


def plateau_update(state: "LoopState", epoch_loss: float, cfg: TrainConfig) -> bool:
    """After an epoch: divide the lr by 10 (``state.lr_scale``) when ``epoch_loss`` is not
    below the best so far by ``plateau_tol`` (relative); True when it was divided."""
    if cfg.schedule != "plateau":
        return False
    if state.best_loss is None or epoch_loss < state.best_loss * (1 - cfg.plateau_tol):
        state.best_loss = epoch_loss
        return False
    state.lr_scale /= 10
    return True


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _model_input(batch: Batch, channels_last: bool) -> torch.Tensor:
    images = batch.images
    return images.contiguous(memory_format=torch.channels_last) if channels_last else images.contiguous()


def model_device(model: nn.Module) -> torch.device:
    """Where ``model``'s parameters are (batches are moved there)."""
    return next(model.parameters()).device


def resolve_device(name: str) -> torch.device:
    """``TrainConfig.device`` as a ``torch.device``; "auto" is cuda when available, else cpu.
    On CUDA, float32 matrix products may use TF32 (cuDNN's convolutions already do). cuDNN's
    per-shape benchmarking stays off: batches come in dozens of (size, height, width)
    combinations, and timing kernels for each cost more than it saved."""
    device = torch.device("cuda" if name == "auto" and torch.cuda.is_available() else
                          "cpu" if name == "auto" else name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} asked for, but torch sees no CUDA device")
        torch.set_float32_matmul_precision("high")
    return device


@dataclasses.dataclass
class LoopState:
    """Progress through a run; stored in checkpoints so ``--resume`` continues exactly."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimiser updates done
    samples: int = 0  # training samples seen
    lr_scale: float = 1.0  # "plateau" schedule: lr factor (divided by 10 on a plateau)
    best_loss: float | None = None  # "plateau" schedule: best epoch train loss so far
    seconds: float = 0.0  # training time so far (what ``TrainConfig.time_budget`` counts)


def budget_spent(state: LoopState, cfg: TrainConfig) -> bool:
    return cfg.time_budget > 0 and state.seconds >= cfg.time_budget


def train_epoch(model: nn.Module, batches: Iterable[Batch], objective: nn.Module, optimizer: torch.optim.Optimizer,
                cfg: TrainConfig, state: LoopState, total_samples: int, teacher: nn.Module | None = None,
                epoch_size: int | None = None,
                disc_optimizer: torch.optim.Optimizer | None = None, ema: WeightEMA | None = None) -> dict[str, float]:
    """One pass of updates; returns the sample-weighted mean of each loss term. ``ema`` is
    updated after every optimiser step of ``model``, at that step's progress through the run.

    The teacher runs under ``torch.inference_mode``. With adversarial terms in the
    objective, each student step is followed by one discriminator step per term
    (``term.discriminator_step(disc_optimizer, student_features, teacher_features)``, on
    the features of that step, detached), at ``disc_lr_ratio`` x the student's lr."""
    model.train()
    if teacher is not None:
        teacher.eval()
    use_teacher = teacher is not None and getattr(objective, "needs_teacher", False)
    adversaries = adversarial_terms(objective)
    if adversaries and disc_optimizer is None:
        raise ValueError("adversarial loss terms need a discriminator optimiser (build_discriminator_optimizer)")
    device = model_device(model)
    sums: dict[str, float] = {}
    seen = 0
    bar = tqdm(total=epoch_size, desc=f"epoch {state.epoch + 1}", unit="img", file=sys.stderr,
               mininterval=1.0 if sys.stderr.isatty() else 30.0, leave=False)
    start, before = time.perf_counter(), state.seconds
    for batch in batches:
        state.seconds = before + time.perf_counter() - start
        if budget_spent(state, cfg):
            break
        batch = batch.to(device)
        progress = state.seconds / cfg.time_budget if cfg.time_budget > 0 else state.samples / max(total_samples, 1)
        lr = lr_at(state.step, progress, cfg, state.lr_scale)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x = _model_input(batch, cfg.channels_last)
        teacher_out = None
        if use_teacher:
            with torch.inference_mode():
                teacher_out = teacher(x)
            teacher_out = type(teacher_out)(*(t.clone() for t in teacher_out))  # normal tensors for autograd
        student_out = model(x)
        loss, parts = objective(student_out, batch, teacher_out)
        optimizer.zero_grad(set_to_none=True)
        if disc_optimizer is not None:
            disc_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if ema is not None:
            ema.update(model, progress)
        if adversaries:
            for group in disc_optimizer.param_groups:
                group["lr"] = lr * cfg.disc_lr_ratio
            for term in adversaries:
                stats = term.discriminator_step(disc_optimizer, student_out.features.detach(),
                                                teacher_out.features if teacher_out is not None else None)
                parts.update({f"{term.loss_name}_{k}": v for k, v in stats.items()})
        n = len(batch)
        state.step += 1
        state.samples += n
        seen += n
        parts["total"] = float(loss.detach())
        for k, v in parts.items():
            sums[k] = sums.get(k, 0.0) + v * n
        bar.update(n)
        bar.set_postfix(loss=f"{sums['total'] / seen:.4f}", lr=f"{lr:.2e}", refresh=False)
    bar.close()
    state.seconds = before + time.perf_counter() - start
    return {k: v / max(seen, 1) for k, v in sums.items()}


def predict(model: nn.Module, batches: Iterable[Batch], channels_last: bool = True) -> dict:
    """Region probabilities of every image, with its labels, source and path."""
    out = predict_many({"model": model}, batches, channels_last)
    out["probs"] = out["probs"]["model"]
    return out


@torch.no_grad()
def predict_many(models: dict[str, nn.Module], batches: Iterable[Batch], channels_last: bool = True) -> dict:
    """``predict`` for several models on the same images, each batch decoded once:
    ``out["probs"][name]`` per model, the labels, sources and paths once."""
    for model in models.values():
        model.eval()
    out: dict = {"probs": {name: [] for name in models}, "labels": [], "image_labels": [], "sources": [], "paths": []}
    for batch in batches:
        x = _model_input(batch, channels_last)
        for name, model in models.items():
            out["probs"][name].append(torch.sigmoid(model(x.to(model_device(model))).logits).float().cpu().numpy())
        out["labels"].append(batch.labels.numpy())
        out["image_labels"].append(batch.image_labels.numpy())
        out["sources"].extend(batch.sources)
        out["paths"].extend(batch.paths)
    out["probs"] = {name: np.concatenate(p) if p else np.zeros((0,)) for name, p in out["probs"].items()}
    for key in ("labels", "image_labels"):
        out[key] = np.concatenate(out[key]) if out[key] else np.zeros((0,))
    return out


def save_training_checkpoint(path: str, model: nn.Module, optimizer: torch.optim.Optimizer, state: LoopState,
                             meta: dict, objective: nn.Module | None = None,
                             disc_optimizer: torch.optim.Optimizer | None = None, ema: WeightEMA | None = None) -> None:
    """A checkpoint that ``model.registry.load_checkpoint`` reads like any other, plus
    the optimiser and loop state that ``resume`` needs (and, with adversarial terms, the
    objective's state: discriminator weights and k_t, and the discriminator's optimiser).
    With ``ema``, the model weights are the EMA's and ``live_state_dict`` holds ``model``'s."""
    extra = {}
    if ema is not None:
        extra["live_state_dict"] = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        model = ema.module
    if objective is not None and adversarial_terms(objective):
        extra["objective"] = {k: v.detach().cpu() for k, v in objective.state_dict().items()}
    if disc_optimizer is not None:
        extra["disc_optimizer"] = disc_optimizer.state_dict()
    save_checkpoint(path, model, meta, optimizer=optimizer.state_dict(), loop=dataclasses.asdict(state), **extra)


def resume(path: str, model: nn.Module, optimizer: torch.optim.Optimizer, objective: nn.Module | None = None,
           disc_optimizer: torch.optim.Optimizer | None = None,
           ema: WeightEMA | None = None) -> tuple[LoopState, dict]:
    """Load weights, optimiser(s), objective state, EMA and loop state from a training
    checkpoint. A checkpoint without an EMA starts ``ema`` at the resumed weights."""
    ckpt = read_checkpoint(path)
    has_ema = "live_state_dict" in ckpt
    model.load_state_dict(ckpt["live_state_dict" if has_ema else "state_dict"], strict=True)
    if ema is not None and has_ema:
        ema.module.load_state_dict(ckpt["state_dict"], strict=True)
    elif ema is not None:
        log.info("%s holds no EMA of the weights: the EMA starts at the resumed weights", path)
        ema.copy_from(model)
    if "optimizer" in ckpt:
        optimizer.load_state_dict(ckpt["optimizer"])
    if objective is not None and "objective" in ckpt:
        objective.load_state_dict(ckpt["objective"], strict=True)
    if disc_optimizer is not None and "disc_optimizer" in ckpt:
        disc_optimizer.load_state_dict(ckpt["disc_optimizer"])
    state = LoopState(**ckpt.get("loop", {}))
    log.info("resumed from %s after epoch %d (%d steps)", path, state.epoch, state.step)
    return state, dict(ckpt.get("meta") or {})


class Timer:
    def __init__(self):
        self.start = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.start
