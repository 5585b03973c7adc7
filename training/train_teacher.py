"""Train the teacher (VGG16 convolution layers with batch norm, fused multi-scale region
head) on hard region labels.

    python -m training.train_teacher --model_config width=0.25 --epochs 12
    python -m training.train_teacher --resume                # continue runs/teacher/last.pt

The same loop as the student (``training.loop.train``); every ``TrainConfig`` /
``DataConfig`` field is a flag. ``--model_config key=value ...`` overrides fields of
``model.teacher.TeacherConfig`` (``width``, ``embed_dim``, ``dropout``, ...); the
checkpoint stores the full config, so ``model.registry.load_checkpoint`` rebuilds it.

Defaults differ from the student's: width 0.25 (a full-width VGG16 costs ~900 ms per
image per step on these 2 cores, a quarter-width one ~63 ms), 2 threads, AdamW with a
higher peak lr (3e-3) and a longer warm-up (150 steps), which a from-scratch VGG with BN
takes well; cosine decay; output ``model/weights/teacher.pt``, epoch checkpoints in
``runs/teacher/last.pt``. The paper's setting was SGD, batch 1, lr 1e-4 from ImageNet
weights; we have no pre-trained weights and a CPU budget of about an hour.
"""

from __future__ import annotations

from training.train_student import build_parser, parse
from training.loop import train

TEACHER_DEFAULTS = dict(model="teacher", model_config=("width=0.25",), lr=3e-3, warmup_steps=150, epochs=12,
                        num_threads=2, out_dir="runs/teacher", out="model/weights/teacher.pt")


def main(argv=None) -> None:
    args, train_cfg, data_cfg, resume_from = parse(build_parser(__doc__, **TEACHER_DEFAULTS), argv)
    train(train_cfg, data_cfg, out=args.out, resume_from=resume_from, init=args.init, stage="teacher")


if __name__ == "__main__":
    main()
