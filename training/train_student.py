"""Train the student on hard region labels (the paper's "hard label" baseline).

    python -m training.train_student --epochs 12 --out model/weights/student.pt
    python -m training.train_student --resume            # continue runs/student-hard/last.pt

Every option of ``TrainConfig`` and ``DataConfig`` is a flag (``--lr``, ``--batch_size``,
``--negative_share``, ``--augment.max_rotation``, ``--no-synth.enabled``, ...).

Optimiser: AdamW (lr 2e-3, cosine decay, batches of 16 images of one shape) rather than
the paper's SGD with batch 1 and lr 1e-4: on a CPU, batches make each epoch several times
faster and Adam converges in the few epochs the budget allows. ``--optimizer sgd
--batch_size 1 --lr 1e-4`` reproduces the paper's setting.

Each epoch writes ``<out_dir>/last.pt`` (weights, optimiser, loop state; readable by
``model.registry.load_checkpoint``); the final weights go to ``--out`` without the
optimiser state. Dev figures are logged after every ``eval_every`` epochs.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from pathlib import Path

import torch

from model.registry import build_model, save_checkpoint
from training.cli import add_config_args, config_from_args
from training.config import DataConfig, TrainConfig
from training.data import BalancedSampler, TextFilterDataset, batches
from training.engine import (LoopState, Timer, build_optimizer, predict, resume, save_training_checkpoint,
                             seed_everything, train_epoch)
from training.evaluate import evaluate_predictions
from training.losses import build_objective

log = logging.getLogger("training.train_student")


def run_meta(train_cfg: TrainConfig, data_cfg: DataConfig, history: list) -> dict:
    """What a checkpoint records about the run that produced it."""
    return {"stage": "hard", "train_config": dataclasses.asdict(train_cfg),
            "data_config": dataclasses.asdict(data_cfg), "history": history}


def train(train_cfg: TrainConfig, data_cfg: DataConfig, out: str | None = None, resume_from: str | None = None,
          teacher: torch.nn.Module | None = None) -> torch.nn.Module:
    """Train ``train_cfg.model`` with ``train_cfg.losses``; returns the trained model."""
    torch.set_num_threads(train_cfg.num_threads)
    seed_everything(train_cfg.seed)
    train_set = TextFilterDataset.for_split(data_cfg, data_cfg.train_split, train=True, crop_seed=train_cfg.seed)
    dev_set = TextFilterDataset.for_split(data_cfg, data_cfg.eval_split, train=False)
    sampler = BalancedSampler(train_set, data_cfg, seed=train_cfg.seed)
    log.info("train %d records (%d with text-free crops, synthetic text %s), %d draws/epoch; dev %d records",
             len(train_set), len(train_set.crops), "on" if train_set.renderer else "off", len(sampler), len(dev_set))

    model = build_model(train_cfg.model)
    if train_cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    objective = build_objective(train_cfg.losses)
    if objective.needs_teacher and teacher is None:
        raise ValueError(f"losses {train_cfg.losses} need a teacher")
    optimizer = build_optimizer(model, train_cfg)
    state, history = LoopState(), []
    if resume_from:
        state, meta = resume(resume_from, model, optimizer)
        history = list(meta.get("history", []))

    out_dir = Path(train_cfg.out_dir)
    total = train_cfg.epochs * len(sampler)
    timer = Timer()
    while state.epoch < train_cfg.epochs:
        sampler.set_epoch(state.epoch)
        epoch_timer = Timer()
        losses = train_epoch(model, batches(train_set, sampler, train_cfg.batch_size, train_cfg.num_workers),
                             objective, optimizer, train_cfg, state, total, teacher, epoch_size=len(sampler))
        state.epoch += 1
        entry = {"epoch": state.epoch, "seconds": round(epoch_timer(), 1), **{f"loss_{k}": v for k, v in losses.items()}}
        if train_cfg.eval_every and (state.epoch % train_cfg.eval_every == 0 or state.epoch == train_cfg.epochs):
            entry.update(dev_summary(model, dev_set, train_cfg))
        history.append(entry)
        log.info("epoch %d/%d %s", state.epoch, train_cfg.epochs,
                 " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in entry.items()))
        save_training_checkpoint(str(out_dir / "last.pt"), model, optimizer, state,
                                 run_meta(train_cfg, data_cfg, history))
    log.info("trained %d epochs in %.1f s this session", train_cfg.epochs, timer())
    if out:
        save_checkpoint(out, model, run_meta(train_cfg, data_cfg, history))
        log.info("wrote %s", out)
    return model


def dev_summary(model: torch.nn.Module, dev_set: TextFilterDataset, cfg: TrainConfig) -> dict:
    """A few dev figures for the log: AP, P/R/F at 0.5 and at the recall-0.95 threshold."""
    pred = predict(model, batches(dev_set, dev_set.items(), 32), cfg.channels_last)
    fig = evaluate_predictions(pred, target_recall=0.95)
    a, h = fig["at_threshold"], fig["at_0.5"]
    return {"dev_ap": fig["average_precision"], "dev_region_ap": fig["region_average_precision"],
            "dev_p@0.5": h["precision"], "dev_r@0.5": h["recall"], "dev_f@0.5": h["f1"],
            "dev_thr@r95": a["threshold"], "dev_p@r95": a["precision"], "dev_reject@r95": a["rejection"]}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser, TrainConfig)
    add_config_args(parser, DataConfig)
    parser.add_argument("--out", default=None, help="path of the final checkpoint (e.g. model/weights/student.pt)")
    parser.add_argument("--resume", nargs="?", const="auto", default=None,
                        help="continue from a training checkpoint (default: <out_dir>/last.pt)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    train_cfg = config_from_args(TrainConfig, args)
    data_cfg = config_from_args(DataConfig, args)
    resume_from = os.path.join(train_cfg.out_dir, "last.pt") if args.resume == "auto" else args.resume
    train(train_cfg, data_cfg, out=args.out, resume_from=resume_from)


if __name__ == "__main__":
    main()
