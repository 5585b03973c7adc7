"""Train the student on hard region labels (the paper's "hard label" baseline).

    python -m training.train_student --epochs 12 --out model/weights/student.pt
    python -m training.train_student --resume            # continue runs/student-hard/last.pt

Every option of ``TrainConfig`` and ``DataConfig`` is a flag (``--lr``, ``--batch_size``,
``--negative_share``, ``--augment.max_rotation``, ``--no-synth.enabled``, ...).
``--losses hard:1.0 image:0.5`` adds the image-level loss (``training.losses.image``) to
the hard region labels.

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
import logging
import os

from training.cli import add_config_args, config_from_args
from training.config import BOOLEAN_WORDS, DataConfig, TrainConfig
from training.loop import train
from training.recipes import RECIPES, recipe

log = logging.getLogger("training.train_student")


def build_parser(description: str = __doc__, **defaults) -> argparse.ArgumentParser:
    """The options of every ``TrainConfig`` / ``DataConfig`` field plus ``--out`` and
    ``--resume``; ``defaults`` change the defaults of this front end (e.g. the teacher's)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser, TrainConfig)
    add_config_args(parser, DataConfig)
    parser.add_argument("--out", default=None, help="path of the final checkpoint (e.g. model/weights/student.pt)")
    parser.add_argument("--init", default=None,
                        help="checkpoint whose weights start the run, with a fresh schedule (fine-tuning; "
                             "e.g. the AB-pretrained student of training.distill)")
    parser.add_argument("--resume", nargs="?", const="auto", default=None,
                        help="continue from a training checkpoint (default: <out_dir>/last.pt)")
    parser.add_argument("--recipe", choices=sorted(RECIPES), default=None,
                        help="start from a named recipe's settings (training.recipes); other flags override them")
    parser.set_defaults(**defaults)
    return parser


# Options whose values are lists of strings that themselves hold commas ("strides=2,1,1"): split on spaces only
# (loss terms, "hard:1.0,kd:1.0", hold none).
TEXT_LIST_KEYS = ("model_config",)


def settings_argv(settings: dict) -> list[str]:
    """``{"synth.enabled": "false", "augment.rotate_p": "0.5"}`` as command-line flags, so that
    ``--set`` changes are typed and checked by the same parser as every other flag. List
    values are separated by commas or spaces (spaces only for ``TEXT_LIST_KEYS``)."""
    argv = []
    for key, value in settings.items():
        text = str(value).strip()
        if text.lower() in BOOLEAN_WORDS:
            argv.append(f"--{key}" if BOOLEAN_WORDS[text.lower()] else f"--no-{key}")
        elif key in TEXT_LIST_KEYS:
            argv += [f"--{key}", *text.split()]
        else:
            argv += [f"--{key}", *text.replace(",", " ").split()]
    return argv


def parse(parser: argparse.ArgumentParser, argv=None) -> tuple[argparse.Namespace, TrainConfig, DataConfig, str | None]:
    known, _ = parser.parse_known_args(argv)
    if known.recipe:
        values = recipe(known.recipe)
        parser.set_defaults(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    train_cfg = config_from_args(TrainConfig, args)
    data_cfg = config_from_args(DataConfig, args)
    resume_from = os.path.join(train_cfg.out_dir, "last.pt") if args.resume == "auto" else args.resume
    return args, train_cfg, data_cfg, resume_from


def main(argv=None) -> None:
    args, train_cfg, data_cfg, resume_from = parse(build_parser(), argv)
    train(train_cfg, data_cfg, out=args.out, resume_from=resume_from, init=args.init, stage="hard",
          meta_extra={"recipe": args.recipe} if args.recipe else None)


if __name__ == "__main__":
    main()
