"""The region head shared by the teacher and the student.

Per scale, region features (B, C, g, g) are flattened to (B, g*g, C) and mapped by a
linear layer into the feature space shared by teacher and student (the "mapped region
features" that the distillation losses compare; they are pre-activation, so their sign
is the activation boundary of Heo et al.). A ReLU and a linear classifier give one logit
per region.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import nn


class RegionOutput(NamedTuple):
    logits: torch.Tensor  # (B, 34)
    features: torch.Tensor  # (B, 34, embed_dim) mapped region features


class RegionHead(nn.Module):
    def __init__(self, in_channels: Sequence[int], embed_dim: int, dropout: float = 0.0):
        super().__init__()
        self.mappers = nn.ModuleList(nn.Linear(c, embed_dim) for c in in_channels)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(embed_dim, 1)

    def forward(self, region_maps: Sequence[torch.Tensor]) -> RegionOutput:
        mapped = [m(f.flatten(2).transpose(1, 2)) for m, f in zip(self.mappers, region_maps)]
        features = torch.cat(mapped, dim=1)
        logits = self.classifier(self.dropout(torch.relu(features))).squeeze(-1)
        return RegionOutput(logits=logits, features=features)


def adaptive_pool(x: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    if mode == "max":
        return nn.functional.adaptive_max_pool2d(x, size)
    if mode == "avg":
        return nn.functional.adaptive_avg_pool2d(x, size)
    raise ValueError(f"unknown pooling {mode!r}: use 'max' or 'avg'")
