"""An exponential moving average (EMA) of the weights of the model being trained.

``TrainConfig.ema_decay`` > 0 turns it on (``--ema_decay 0.998``; in a cross-source row
``--set ema_decay=0.998``). ``training.engine.train_epoch`` calls ``update`` after every
optimiser step of the model (the student; a discriminator of adversarial loss terms is not
averaged), and ``training.loop.train`` then evaluates and saves the EMA instead of the live
weights: the dev figures in the log, ``epoch-NNN.pt`` snapshots, ``--out`` and the
``state_dict`` of ``last.pt`` (whose ``live_state_dict`` holds the trained weights, so that
``--resume`` continues both exactly). Those checkpoints record ``meta["ema"]``.

Until ``ema_start`` of the run (the lr schedule's progress: samples seen out of all, or the
time budget spent) the EMA copies the weights, so that a short run's average is not pulled
towards the random initialisation; after that, each step
``ema = decay * ema + (1 - decay) * weights``. The weights copied at the start keep a share
``decay ** steps_after_start`` of the final average: with 0.998 on the ~1,010 steps of the
reference recipe and the default start at half of the run, the weights of step ~505 keep 0.36,
the last ~500 steps (the horizon 1 / (1 - decay)) most of the rest. With ``ema_start`` 0 the
random initialisation is the first point of the average.

Hand-written rather than ``torch.optim.swa_utils.AveragedModel``: the copy-until-start rule
is one line here, the state is the model's own ``state_dict`` (saved as a model checkpoint
as is), and integer buffers are copied rather than averaged as floats and truncated. BatchNorm: the running statistics
are floating-point buffers and get the same average as the weights (as ``AveragedModel``
does with ``use_buffers=True``). The live model's running statistics track the activations
of its recent weights, and the EMA's weights are a mean of those recent weights, so their
mean fits the EMA model far better than a copy of the latest ones would; recomputing them
with a pass over the training data (``swa_utils.update_bn``) would cost an epoch's forward
passes at every evaluation. Integer buffers (``num_batches_tracked``) are copied.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from training.config import TrainConfig


class WeightEMA:
    """The EMA of ``model``'s ``state_dict`` (floating-point tensors averaged, others copied),
    held in ``self.module``: a copy of the model in eval mode without gradients."""

    def __init__(self, model: nn.Module, decay: float, start: float = 0.0):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay {decay} must be in (0, 1) (0 turns the EMA off), e.g. 0.998")
        if not 0.0 <= start <= 1.0:
            raise ValueError(f"ema_start {start} must be a fraction of the run in [0, 1]")
        self.decay, self.start = decay, start
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, progress: float) -> None:
        """After an optimiser step taken at ``progress`` (0..1) of the run: copy ``model``'s
        weights before ``start``, else move the average ``1 - decay`` of the way to them."""
        live = model.state_dict()
        for key, ema in self.module.state_dict().items():
            if ema.is_floating_point() and progress >= self.start:
                ema.lerp_(live[key], 1.0 - self.decay)
            else:
                ema.copy_(live[key])

    @torch.no_grad()
    def copy_from(self, model: nn.Module) -> None:
        """Restart the average at ``model``'s current weights."""
        self.module.load_state_dict(model.state_dict(), strict=True)

    def meta(self) -> dict:
        """What a checkpoint holding the EMA records (``meta["ema"]``)."""
        return {"decay": self.decay, "start": self.start}


def build_ema(model: nn.Module, cfg: TrainConfig) -> WeightEMA | None:
    """The EMA of ``cfg.ema_decay`` / ``cfg.ema_start`` over ``model`` (on its device, in its
    memory format), or None when ``ema_decay`` is 0."""
    if cfg.ema_decay == 0:
        return None
    return WeightEMA(model, cfg.ema_decay, cfg.ema_start)
