"""Average the weights of several checkpoints of one model (a cheap ensemble in one network).

    python -m training.average runs/teacher26/teacher.pt runs/teacher32/teacher.pt \
        --out model/weights/teacher.pt

Checkpoints taken late in one run (after the same initialisation, at a low learning rate)
sit in one basin of the loss, and their mean usually scores better than either, as in
stochastic weight averaging (Izmailov et al., 2018). Every floating-point tensor of the
state dict is averaged (``--weights`` for a weighted mean), BatchNorm running statistics
included; integer buffers (``num_batches_tracked``) are taken from the last checkpoint.
``--keep_every N`` on any training run keeps weights-only snapshots
``<out_dir>/epoch-NNN.pt`` every N epochs to average afterwards.
The result is a model checkpoint with the last one's ``meta`` plus ``averaged_from``
(the sources and weights); a decision threshold is not carried over (it belonged to
another model): run ``python -m training.evaluate --write_threshold`` on the result.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Sequence

from torch import nn

from model.registry import CheckpointError, load_checkpoint, model_name_of, save_checkpoint

log = logging.getLogger("training.average")



def belongs_to_threshold(key: str) -> bool:
    """Meta keys that ``training.evaluate --write_threshold`` stores for one model's scores."""
    return key in ("threshold", "score_rule", "target_recall") or key.endswith("_figures")


def average_checkpoints(sources: Sequence[str | Path], weights: Sequence[float] | None = None) -> tuple[nn.Module, dict]:
    """(model holding the weighted mean of ``sources``' weights, its meta). All sources must
    hold the same model with the same config."""
    if len(sources) < 2:
        raise ValueError("averaging needs at least two checkpoints")
    weights = [1.0] * len(sources) if weights is None else [float(w) for w in weights]
    if len(weights) != len(sources) or min(weights) < 0 or sum(weights) <= 0:
        raise ValueError(f"need one non-negative weight per checkpoint, not all zero (got {weights})")
    models = [load_checkpoint(source) for source in sources]
    first, _ = models[0]
    for source, (model, _) in zip(sources[1:], models[1:]):
        if model_name_of(model) != model_name_of(first) or model.config != first.config:
            raise CheckpointError(f"{source} holds a {model_name_of(model)} {model.config}, "
                                  f"not the {model_name_of(first)} {first.config} of {sources[0]}")
    total = sum(weights)
    states = [model.state_dict() for model, _ in models]
    mean = {}
    for key, last in states[-1].items():
        if last.is_floating_point():
            acc = sum(w / total * state[key].double() for w, state in zip(weights, states))
            mean[key] = acc.to(last.dtype)
        else:
            mean[key] = last.clone()
    result, meta = models[-1]
    result.load_state_dict(mean)
    meta = {k: v for k, v in meta.items() if not belongs_to_threshold(k)}
    meta["averaged_from"] = [{"checkpoint": str(s), "weight": w / total} for s, w in zip(sources, weights)]
    return result.eval(), meta


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", help="two or more checkpoints of the same model and config")
    parser.add_argument("--weights", nargs="+", type=float, default=None, help="one per checkpoint (default: equal)")
    parser.add_argument("--out", required=True, help="where to write the averaged checkpoint")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for path in args.checkpoints:
        if not Path(path).is_file():
            parser.error(f"no checkpoint at {path}")
    try:
        model, meta = average_checkpoints(args.checkpoints, args.weights)
    except (ValueError, CheckpointError) as e:
        parser.error(str(e))
    save_checkpoint(args.out, model, meta)
    log.info("wrote %s: %s averaged over %s", args.out, model_name_of(model),
             ", ".join(f"{a['checkpoint']} x {a['weight']:.3g}" for a in meta["averaged_from"]))
    return Path(args.out)


if __name__ == "__main__":
    main()
