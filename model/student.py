"""The paper's student: six convolutions with batch normalisation, no feature fusion.

The fifth convolution's output is pooled to the 5x5 grid and the sixth's to the 3x3 grid;
per region, a mapping FC into the space shared with the teacher and a classifier FC
(``model.heads.RegionHead``). About 0.087M parameters, as in the paper.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from model.heads import RegionHead, RegionOutput, adaptive_pool
from model.regions import GRIDS
from model.registry import register_model


@dataclass(frozen=True)
class StudentConfig:
    channels: tuple[int, ...] = (16, 32, 32, 48, 48, 64)
    strides: tuple[int, ...] = (2, 2, 2, 2, 1, 2)
    embed_dim: int = 64
    pool: str = "max"
    dropout: float = 0.0


def conv_bn_relu(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class Student(nn.Module):
    def __init__(self, config: StudentConfig = StudentConfig()):
        super().__init__()
        if len(config.channels) != 6 or len(config.strides) != 6:
            raise ValueError("the student has exactly six convolution layers")
        self.config = config
        chans = (3, *config.channels)
        self.layers = nn.ModuleList(
            conv_bn_relu(chans[i], chans[i + 1], config.strides[i]) for i in range(6)
        )
        self.head = RegionHead(config.channels[-2:], config.embed_dim, config.dropout)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Region feature maps: [(B, C5, 5, 5), (B, C6, 3, 3)]."""
        for layer in self.layers[:5]:
            x = layer(x)
        fifth = x
        sixth = self.layers[5](fifth)
        return [adaptive_pool(f, g, self.config.pool) for f, g in zip((fifth, sixth), GRIDS)]

    def forward_head(self, region_maps: list[torch.Tensor]) -> RegionOutput:
        return self.head(region_maps)

    def forward(self, x: torch.Tensor) -> RegionOutput:
        return self.forward_head(self.forward_features(x))


@register_model("student", StudentConfig)
def build_student(config: StudentConfig) -> Student:
    return Student(config)
