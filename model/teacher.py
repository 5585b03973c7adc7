"""The paper's teacher: VGG16's convolution layers and a fused multi-scale region head.

The outputs of the last two convolution blocks (conv4_3 and conv5_3) are each pooled to
5x5 and 3x3; maps of the same size are added; each region is mapped into the feature
space shared with the student and classified (``model.heads.RegionHead``). At full width
about 15M parameters; ``width`` scales every layer so a narrower teacher trains on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from model.heads import RegionHead, RegionOutput, adaptive_pool
from model.regions import GRIDS
from model.registry import register_model

# VGG16 ("D"): channels per conv, "M" = 2x2 max-pool.
VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)


@dataclass(frozen=True)
class TeacherConfig:
    width: float = 1.0
    embed_dim: int = 64
    batch_norm: bool = True
    pool: str = "max"
    dropout: float = 0.0


class Teacher(nn.Module):
    def __init__(self, config: TeacherConfig = TeacherConfig()):
        super().__init__()
        self.config = config
        blocks: list[list[nn.Module]] = [[]]
        cin = 3
        for item in VGG16_LAYOUT:
            if item == "M":
                blocks[-1].append(nn.MaxPool2d(2, ceil_mode=True))
                blocks.append([])
                continue
            cout = max(8, int(round(item * config.width)))
            blocks[-1].append(nn.Conv2d(cin, cout, 3, padding=1, bias=not config.batch_norm))
            if config.batch_norm:
                blocks[-1].append(nn.BatchNorm2d(cout))
            blocks[-1].append(nn.ReLU(inplace=True))
            cin = cout
        # stem = blocks 1-3 (+ pools), then block 4 (conv4_3) and block 5 (conv5_3).
        self.stem = nn.Sequential(*blocks[0], *blocks[1], *blocks[2])
        self.block4 = nn.Sequential(*blocks[3][:-1])  # conv4_x without its max-pool
        self.block5 = nn.Sequential(blocks[3][-1], *blocks[4])
        self.head = RegionHead((cin, cin), config.embed_dim, config.dropout)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Fused region feature maps: [(B, C, 5, 5), (B, C, 3, 3)]."""
        c4 = self.block4(self.stem(x))
        c5 = self.block5(c4)
        return [adaptive_pool(c4, g, self.config.pool) + adaptive_pool(c5, g, self.config.pool) for g in GRIDS]

    def forward_head(self, region_maps: list[torch.Tensor]) -> RegionOutput:
        return self.head(region_maps)

    def forward(self, x: torch.Tensor) -> RegionOutput:
        return self.forward_head(self.forward_features(x))


@register_model("teacher", TeacherConfig)
def build_teacher(config: TeacherConfig) -> Teacher:
    return Teacher(config)
