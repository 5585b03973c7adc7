"""Distil the teacher into the student (the paper's two stages), and the ablation stages.

    # stage 1: pre-train the student's mapped region features with the activation-boundary loss
    python -m training.distill --stage ab --teacher model/weights/teacher.pt
    # stage 2: soft labels + 0.2 x BEGAN adversarial loss, student and discriminator in turn
    python -m training.distill --stage kd --teacher model/weights/teacher.pt --init runs/distill/ab.pt
    python -m training.evaluate --checkpoint runs/distill/kd.pt --write_threshold
    # soft labels of an ensemble of students (three seeds), hard labels beside them
    python -m training.distill --stage soft --recipe reference_fast --losses hard:1.0 kd:1.0 \
        --teacher runs/s0/student.pt runs/s1/student.pt runs/s2/student.pt

Stages (loss terms of ``training.losses``; the weights are the paper's):

    ab        ab:1.0                 stage 1 (L_A), teacher features
    kd        kd:1.0 began:0.2       stage 2 (L_K + 0.2 L_G), normally with --init <ab.pt>
    soft      kd:1.0                 ablation: soft labels only
    soft_adv  kd:1.0 began:0.2       ablation: soft + adversarial, no AB pre-training
    hard      hard:1.0               ablation: hard region labels, no teacher

The teacher is loaded frozen (eval mode, no gradients) and run under
``torch.inference_mode`` once per step. For ``began`` the discriminator (an autoencoder
on region features) has its own optimiser, at 2x the student's lr (``--disc_lr_ratio``),
and is updated after every student step on the features of that step; its parameters are
never in the student's optimiser (``training.engine``).

Differences from the paper, chosen for a 2-core CPU and an hour of budget: AdamW with
batches of 16 images of one shape instead of SGD with batch 1; peak lr 2e-3 for both
stages (paper: 1e-5 for stage 1, 1e-4 for stage 2) with a linear warm-up and cosine
decay per step instead of "divide by 10 when the loss stops improving" (with a fixed
handful of epochs a plateau is not reliably detected; the cosine schedule gives the same
kind of late low-lr phase); a few epochs per stage. Every option of ``TrainConfig`` /
``DataConfig`` is a flag, so ``--optimizer sgd --batch_size 1 --lr 1e-5`` gives the
paper's stage-1 setting.

Each epoch writes ``<out_dir>/last.pt`` (``--resume`` continues it, discriminator and k_t
included); the final student (weights only, ~0.35 MB) goes to ``--out``
(default ``runs/distill/<stage>.pt``).
"""

from __future__ import annotations

import argparse
import logging
from typing import NamedTuple

from training.loop import load_frozen, train
from training.losses import any_term
from training.train_student import build_parser, parse

log = logging.getLogger("training.distill")


class Stage(NamedTuple):
    losses: tuple[str, ...]
    description: str


STAGES: dict[str, Stage] = {
    "ab": Stage(("ab:1.0",), "stage 1: activation-boundary loss on mapped region features"),
    "kd": Stage(("kd:1.0", "began:0.2"), "stage 2: soft labels + 0.2 x BEGAN (after --init <ab.pt>)"),
    "soft": Stage(("kd:1.0",), "ablation: soft labels only"),
    "soft_adv": Stage(("kd:1.0", "began:0.2"), "ablation: soft labels + adversarial, no AB init"),
    "hard": Stage(("hard:1.0",), "ablation: hard region labels"),
}

# Defaults of every stage (flags override them).
STAGE_DEFAULTS = dict(model="student", lr=2e-3, warmup_steps=50, num_threads=2, epochs=8)
PER_STAGE = {"ab": dict(epochs=2)}


def stage_defaults(stage: str) -> dict:
    return {**STAGE_DEFAULTS, **PER_STAGE.get(stage, {}), "losses": STAGES[stage].losses,
            "out_dir": f"runs/distill/{stage}", "out": f"runs/distill/{stage}.pt"}


def main(argv=None) -> None:
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--stage", choices=sorted(STAGES), default="kd")
    known, _ = pre.parse_known_args(argv)
    parser = build_parser(__doc__, **stage_defaults(known.stage))
    parser.add_argument("--stage", choices=sorted(STAGES), default="kd")
    parser.add_argument("--teacher", nargs="+", default=["model/weights/teacher.pt"],
                        help="teacher checkpoint; several: their ensemble, soft labels = mean region probabilities "
                             "(e.g. students of three seeds, model.ensemble)")
    args, train_cfg, data_cfg, resume_from = parse(parser, argv)
    stage = STAGES[args.stage]
    if args.stage == "kd" and not args.init and not resume_from:
        log.warning("stage kd without --init: this is the soft_adv ablation, not the paper's stage 2")
    single = len(args.teacher) == 1  # one checkpoint must be a teacher; an ensemble may be of students
    teacher = load_frozen(args.teacher, expect="teacher" if single else None, channels_last=train_cfg.channels_last) \
        if any_term(train_cfg.losses, "needs_teacher") else None
    log.info("stage %s (%s): losses %s, teacher %s", args.stage, stage.description, " ".join(train_cfg.losses),
             " + ".join(args.teacher) if teacher is not None else "-")
    train(train_cfg, data_cfg, out=args.out, resume_from=resume_from, teacher=teacher, init=args.init,
          stage=args.stage,
          meta_extra={"teacher": (args.teacher[0] if single else args.teacher) if teacher is not None else None})


if __name__ == "__main__":
    main()
