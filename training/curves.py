"""Training curves of finished runs, from the history their checkpoints carry.

    python -m training.curves runs/student72/student.pt distilled=runs/distill3/kd.pt \
        --out docs/model/curves.png

Each argument is a checkpoint, optionally ``label=path``. A run started from another
checkpoint (``--init``, e.g. the AB-pretrained student) is drawn with that run's epochs
first, so every curve's x axis is student epochs in all. Panels: train loss, and the dev
figures logged every ``--eval_every`` epochs (AP, F and non-text rejection at the
recall-0.95 threshold).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from model.registry import read_checkpoint
from training.plots import plot_curves


def run_chain(checkpoint: str | Path) -> list[dict]:
    """The ``meta`` of the checkpoint and of its ``init`` checkpoints (recursively, while
    they are still there), the first run first. Reads only the checkpoint dicts."""
    meta = dict(read_checkpoint(checkpoint).get("meta") or {})
    init = meta.get("init")
    return (run_chain(init) if init and Path(init).is_file() else []) + [meta]


def run_history(checkpoint: str | Path) -> list[dict]:
    """The per-epoch history of the whole ``run_chain``, with ``epoch`` renumbered across
    the chain and ``stage`` added to every entry."""
    return chain_history(run_chain(checkpoint))


def chain_history(chain: list[dict]) -> list[dict]:
    """``run_history`` of a ``run_chain`` already read."""
    entries = [(meta.get("stage", "?"), entry) for meta in chain for entry in meta.get("history") or []]
    return [{**entry, "epoch": i + 1, "stage": stage} for i, (stage, entry) in enumerate(entries)]


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", metavar="[LABEL=]CHECKPOINT")
    parser.add_argument("--out", default="runs/curves.png")
    args = parser.parse_args(argv)
    histories = {}
    for spec in args.checkpoints:
        label, _, path = spec.rpartition("=")
        label = label or Path(path).parent.name or Path(path).stem
        if not Path(path).is_file():
            parser.error(f"no checkpoint at {path}")
        histories[label] = run_history(path)
    out = plot_curves(histories, Path(args.out))
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
