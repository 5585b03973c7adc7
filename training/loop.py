"""The run driver shared by every training stage: data, model, objective, optimisers,
epochs, dev figures in the log, checkpoints after every epoch, resume.

``train(train_cfg, data_cfg, ...)`` trains ``train_cfg.model`` (built from
``train_cfg.model_config`` overrides, e.g. ``width=0.25`` for the teacher) with the loss
terms ``train_cfg.losses``. ``training.train_student``, ``training.train_teacher`` and
``training.distill`` are thin command-line front ends over it.

Adversarial loss terms (``adversarial = True``, e.g. ``began``) own a discriminator: its
parameters go to a separate optimiser (lr = ``disc_lr_ratio`` x the student's lr) and
``training.engine.train_epoch`` updates it after every student step.

With ``TrainConfig.ema_decay`` > 0, an exponential moving average of the weights
(``training.ema``) is what the dev figures, ``epoch-NNN.pt``, ``--out`` and ``last.pt`` hold
(``meta["ema"]``); ``last.pt`` keeps the live weights beside it for ``--resume``.

With ``DataConfig.unlabelled_share`` > 0, that share of the draws are unlabelled images: only
label-free terms (``label_free = True``: the teacher's soft labels ``kd``, ``ab``, ``began``)
learn from them, and ``check_unlabelled_use`` refuses a run whose losses have none.
"""

from __future__ import annotations

import ast
import dataclasses
import logging
import os
from pathlib import Path
from typing import Sequence

import torch

from model.ensemble import RegionEnsemble
from model.registry import build_model, config_from_dict, load_checkpoint, read_checkpoint, save_checkpoint
from training.config import BOOLEAN_WORDS, DataConfig, TrainConfig
from model.preprocessing import shape_meta
from training.data import BalancedSampler, TextFilterDataset, batches, preprocess_of
from training.engine import (LoopState, Timer, budget_spent, build_discriminator_optimizer, build_optimizer,
                             plateau_update, predict, resolve_device, resume, save_training_checkpoint,
                             seed_everything, train_epoch)
from training.ema import build_ema
from training.evaluate import evaluate_predictions
from training.losses import LOSSES, any_term, build_objective
from training.teacher_memo import MemoTeacher

log = logging.getLogger("training.loop")


def parse_model_config(model: str, specs: Sequence[str]) -> dict:
    """``("width=0.25", "dropout=0.1")`` -> ``{"width": 0.25, "dropout": 0.1}``, values
    typed like the fields of model ``model``'s config (checked by ``config_from_dict``)."""
    defaults = dataclasses.asdict(config_from_dict(model, {}))
    values = {}
    for spec in specs:
        key, sep, raw = spec.partition("=")
        key = key.strip()
        if not sep or key not in defaults:
            raise ValueError(f"model config override {spec!r}: use key=value with key one of {sorted(defaults)}")
        default = defaults[key]
        if isinstance(default, bool):
            words = {**BOOLEAN_WORDS, "1": True, "0": False}
            if raw.strip().lower() not in words:
                raise ValueError(f"model config override {spec!r}: {key} is yes or no ({', '.join(words)})")
            value = words[raw.strip().lower()]
        elif isinstance(default, (tuple, list)):
            value = tuple(ast.literal_eval(raw if "," in raw else raw + ",")) if raw.strip() else ()
        elif isinstance(default, (int, float)):
            value = type(default)(float(raw)) if isinstance(default, int) else float(raw)
        else:
            value = raw
        values[key] = value
    config_from_dict(model, values)  # raises on a bad combination of fields
    return values


def run_meta(stage: str, train_cfg: TrainConfig, data_cfg: DataConfig, history: list, **extra) -> dict:
    """What a checkpoint records about the run that produced it, including the input shape
    it trained on (``meta["preprocess"]``: evaluation and the pipeline resize the same way)."""
    return {"stage": stage, "train_config": dataclasses.asdict(train_cfg),
            "data_config": dataclasses.asdict(data_cfg), "history": history,
            "preprocess": shape_meta(preprocess_of(data_cfg)), **extra}


def load_frozen(path: str | Sequence[str], expect: str | None = None, channels_last: bool = True) -> torch.nn.Module:
    """A model from a checkpoint in eval mode with gradients off (the teacher). Several paths
    give one ``RegionEnsemble`` of them (its soft labels are their mean region probabilities);
    its members must have trained on the same input shapes."""
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not paths:
        raise ValueError("no teacher checkpoint given")
    models, shapes = [], {}
    for p in paths:
        model, meta = load_checkpoint(p, expect=expect)
        shapes[str(p)] = meta.get("preprocess")
        models.append(model)
    if any(s != shapes[str(paths[0])] for s in shapes.values()):
        raise ValueError(f"teacher checkpoints trained on different input shapes: {shapes}")
    model = models[0] if len(models) == 1 else RegionEnsemble(models)
    for p in model.parameters():
        p.requires_grad_(False)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model.eval()


def train(train_cfg: TrainConfig, data_cfg: DataConfig, out: str | None = None, resume_from: str | None = None,
          teacher: torch.nn.Module | None = None, init: str | None = None, stage: str = "hard",
          meta_extra: dict | None = None) -> torch.nn.Module:
    """Train ``train_cfg.model`` with ``train_cfg.losses``; returns the trained model (its EMA
    with ``ema_decay`` > 0: the weights the checkpoints hold).

    ``init``: a checkpoint whose weights start the run (e.g. the AB-pretrained student);
    ``resume_from``: a training checkpoint (weights, optimisers, loop state) to continue."""
    check_unlabelled_use(train_cfg, data_cfg)
    torch.set_num_threads(train_cfg.num_threads)
    seed_everything(train_cfg.seed)
    train_set = TextFilterDataset.for_role(data_cfg, "train", crop_seed=train_cfg.seed)
    dev_set = TextFilterDataset.for_role(data_cfg, "eval")
    sampler = BalancedSampler(train_set, data_cfg, seed=train_cfg.seed)
    log.info("train %d records (%d unlabelled, %.0f %% of the draws; %d with text-free crops, synthetic text %s), "
             "%d draws/epoch; dev %d records", len(train_set), len(sampler.unlabelled), 100 * sampler.unlabelled_share,
             len(train_set.crops), "on" if train_set.renderer else "off", len(sampler), len(dev_set))

    model_config = parse_model_config(train_cfg.model, train_cfg.model_config)
    model = build_model(train_cfg.model, model_config)
    log.info("%s %s: %.3fM parameters", train_cfg.model, dataclasses.asdict(model.config),
             sum(p.numel() for p in model.parameters()) / 1e6)
    if init:
        ckpt = read_checkpoint(init)
        model.load_state_dict(ckpt["state_dict"], strict=True)
        log.info("initialised from %s", init)
    device = resolve_device(train_cfg.device)
    model = model.to(device)
    if train_cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    objective = build_objective(train_cfg.losses, **_loss_kwargs(train_cfg.losses, model)).to(device)
    if objective.needs_teacher and teacher is None:
        raise ValueError(f"losses {train_cfg.losses} need a teacher")
    if teacher is not None:
        teacher = teacher.to(device)
        if train_cfg.teacher_memo:
            teacher = MemoTeacher(teacher)
    log.info("training on %s%s", device, f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
    optimizer = build_optimizer(model, train_cfg)
    disc_optimizer = build_discriminator_optimizer(objective, train_cfg)
    ema = build_ema(model, train_cfg)
    state, history = LoopState(), []
    if resume_from:
        state, meta = resume(resume_from, model, optimizer, objective, disc_optimizer, ema)
        history = list(meta.get("history", []))
    evaluated = ema.module if ema is not None else model  # what the dev figures and checkpoints hold
    if ema is not None:
        meta_extra = {**(meta_extra or {}), "ema": ema.meta()}

    out_dir = Path(train_cfg.out_dir)
    total = train_cfg.epochs * len(sampler)
    timer = Timer()
    meta = lambda: run_meta(stage, train_cfg, data_cfg, history, init=init, **(meta_extra or {}))  # noqa: E731
    while state.epoch < train_cfg.epochs and not budget_spent(state, train_cfg):
        sampler.set_epoch(state.epoch)
        epoch_timer = Timer()
        losses = train_epoch(model, batches(train_set, sampler, train_cfg.batch_size, train_cfg.num_workers,
                                            train_cfg.loader),
                             objective, optimizer, train_cfg, state, total, teacher, epoch_size=len(sampler),
                             disc_optimizer=disc_optimizer, ema=ema)
        state.epoch += 1
        entry = {"epoch": state.epoch, "seconds": round(epoch_timer(), 1), **{f"loss_{k}": v for k, v in losses.items()}}
        if plateau_update(state, losses.get("total", float("inf")), train_cfg):
            log.info("train loss %.4g did not improve on %.4g: lr divided by 10 (x%g)", losses["total"],
                     state.best_loss, state.lr_scale)
        if train_cfg.schedule == "plateau":
            entry["lr_scale"] = state.lr_scale
        if isinstance(teacher, MemoTeacher):
            entry.update(teacher_hits=teacher.hits, teacher_misses=teacher.misses)
        if train_cfg.eval_every and (state.epoch % train_cfg.eval_every == 0 or state.epoch == train_cfg.epochs):
            entry.update(dev_summary(evaluated, dev_set, train_cfg))
        history.append(entry)
        log.info("epoch %d/%d %s", state.epoch, train_cfg.epochs,
                 " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in entry.items()))
        save_training_checkpoint(str(out_dir / "last.pt"), model, optimizer, state, meta(),
                                 objective=objective, disc_optimizer=disc_optimizer, ema=ema)
        if train_cfg.keep_every and state.epoch % train_cfg.keep_every == 0:
            save_checkpoint(str(out_dir / f"epoch-{state.epoch:03d}.pt"), evaluated, meta())
    if budget_spent(state, train_cfg):
        log.info("time budget of %.0f s spent after %d epochs", train_cfg.time_budget, state.epoch)
    log.info("at epoch %d of %d after %.1f s this session", state.epoch, train_cfg.epochs, timer())
    if out:
        save_checkpoint(out, evaluated, meta())
        log.info("wrote %s%s", out, " (EMA of the weights)" if ema is not None else "")
    return evaluated


def check_unlabelled_use(train_cfg: TrainConfig, data_cfg: DataConfig) -> None:
    """Raise when unlabelled images would be drawn but no loss term learns from them."""
    if data_cfg.unlabelled_share > 0 and not any_term(train_cfg.losses, "label_free"):
        label_free = sorted(name for name, cls in LOSSES.items() if getattr(cls, "label_free", False))
        raise ValueError(f"unlabelled_share {data_cfg.unlabelled_share} but none of the losses "
                         f"{' '.join(train_cfg.losses)} learns from unlabelled images (those that do: "
                         f"{', '.join(label_free)}, with a teacher): the draws would be wasted")


def _loss_kwargs(specs: Sequence[str], model: torch.nn.Module) -> dict:
    """Constructor arguments that depend on the model (the discriminator's input size)."""
    embed_dim = getattr(model.config, "embed_dim", 64)
    return {"began": {"embed_dim": embed_dim}}


def dev_summary(model: torch.nn.Module, dev_set: TextFilterDataset, cfg: TrainConfig) -> dict:
    """A few dev figures for the log: AP, P/R/F at 0.5 and at the recall-0.95 threshold."""
    pred = predict(model, batches(dev_set, dev_set.items(), 32, cfg.num_workers, cfg.loader), cfg.channels_last)
    fig = evaluate_predictions(pred, target_recall=0.95)
    a, h = fig["at_threshold"], fig["at_0.5"]
    return {"dev_ap": fig["average_precision"], "dev_region_ap": fig["region_average_precision"],
            "dev_p@0.5": h["precision"], "dev_r@0.5": h["recall"], "dev_f@0.5": h["f1"],
            "dev_thr@r95": a["threshold"], "dev_p@r95": a["precision"], "dev_f@r95": a["f1"],
            "dev_reject@r95": a["rejection"]}
