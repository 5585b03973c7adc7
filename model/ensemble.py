"""Several region models as one: the teacher made of students trained with different seeds.

The seed spread of a student is large (one recipe's rejection on a fold can move by 15 points
from seed to seed), and averaging the predictions of a few seeds removes much of that noise.
An ensemble is too slow to ship, so it is used as a teacher: its averaged region
probabilities are the soft labels a single student learns from (``training/losses/kd.py``).

The ensemble's region logits are the logits of the members' mean region probabilities.
Member features live in unrelated spaces, so they are not averaged: ``features`` are the
first member's (what feature losses such as AB and BEGAN would see).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from model.heads import RegionOutput

LOGIT_EPS = 1e-6  # mean probabilities are clamped to [eps, 1 - eps] before the logit


class RegionEnsemble(nn.Module):
    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> RegionOutput:
        outputs = [member(x) for member in self.members]
        shapes = {tuple(o.logits.shape) for o in outputs}
        if len(shapes) != 1:
            raise ValueError(f"ensemble members give region logits of different shapes {sorted(shapes)}")
        probs = torch.stack([torch.sigmoid(o.logits) for o in outputs]).mean(0)
        return RegionOutput(torch.logit(probs, eps=LOGIT_EPS), outputs[0].features)
