"""The paper's student: six convolutions with batch normalisation, no feature fusion.

The fifth convolution's output is pooled to the 5x5 grid and the sixth's to the 3x3 grid;
per region, a mapping FC into the space shared with the teacher and a classifier FC
(``model.heads.RegionHead``). About 0.087M parameters, as in the paper.

Layouts (all six convolutions, all registered as ``student``; a checkpoint's config says
which; the shipped student, since session 15, is ``WIDE_LAYOUT``):
- ``StudentConfig()``: strided convolutions only (2, 2, 2, 2, 1, 2), features at 1/16 and
  1/32 of the input, 84k parameters (the students shipped until session 6).
- ``REFERENCE_LAYOUT``: 16-16-32-32-64-64 channels, the first convolution strided, a 2x2
  max-pool after the second and fourth (features at 1/8 for both grids), one mapping FC
  shared by both grids: 76.5k parameters (the plain reference of issue 17; ~5-7 ms per
  256x341 image on one thread, over the product's 3 ms).
- ``FAST_LAYOUT``: the same channels and head, downsampled earlier (below): 76.5k
  parameters, ~2.4 ms.
- ``WIDE_LAYOUT``: ``FAST_LAYOUT`` with 48-72-72 channels in convolutions 4-6 instead of
  32-64-64: 104k parameters (the product's limit is 110k), ONNX ~1.7 ms instead of ~1.5 ms
  (issue 17's "channel layout" row; MODEL.md, session 14).

``context="mean"`` (any layout): every region's features also carry the sixth convolution's
output averaged over the whole image, so a region's verdict can depend on what kind of
picture it is in (a strand of hair in a portrait, a print on a shirt) as well as on its own
patch, whose receptive field is ~69 px of a 256x341 input. It widens the mapping FC only:
``WIDE_CONTEXT_LAYOUT`` has 108,785 parameters and the same convolutions (MODEL.md, session 24).

``separable=True`` (any layout): convolutions 2-6 are depthwise-separable (a 3x3 filter per
channel, then a 1x1 convolution across channels, MobileNet's block), so the same parameters buy
wider features: ``SEPARABLE_LAYOUT`` has 16-32-96-160-192-192 channels, 192 per region instead
of 72, in 106,209 parameters, at about ``WIDE_LAYOUT``'s ONNX time (MODEL.md, session 25).
``separable_convs`` names single convolutions to make separable: ``WIDE96_LAYOUT`` makes only the
sixth one (the 3x3 grid's, 46.7k of ``WIDE_LAYOUT``'s weights) separable and spends what it frees on
64-96-96 channels in convolutions 4-6: 96 per region instead of 72 (MODEL.md, session 32).
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
    pool_after: tuple[int, ...] = ()  # 1-based convolutions followed by a 2x2 max-pool
    shared_mapper: bool = False  # one mapping FC for both grids (needs equal channels in conv 5 and 6)
    context: str = ""  # "mean": each region also sees conv 6's output averaged over the image
    separable: bool = False  # convolutions 2-6 depthwise 3x3 + pointwise 1x1 (each with BN + ReLU)
    separable_convs: tuple[int, ...] = ()  # 1-based convolutions made separable (besides ``separable``'s 2-6)


REFERENCE_LAYOUT = dict(channels=(16, 16, 32, 32, 64, 64), strides=(2, 1, 1, 1, 1, 1), pool_after=(2, 4),
                        shared_mapper=True)
# The reference's channels and head at 45 % of its multiply-adds (116M instead of 210M at 256x341;
# ONNX on one thread ~2.4 ms instead of ~5-7 ms): the first convolution's output is max-pooled
# (1/4), the third convolution is strided (1/8: the 5x5 grid's features), the sixth too (1/16:
# the 3x3 grid's cells are 85 px wide at the input).
FAST_LAYOUT = dict(channels=(16, 16, 32, 32, 64, 64), strides=(2, 1, 2, 1, 1, 2), pool_after=(1,),
                   shared_mapper=True)
# FAST_LAYOUT widened where the region features are made (104,177 parameters).
WIDE_LAYOUT = {**FAST_LAYOUT, "channels": (16, 16, 32, 48, 72, 72)}
# WIDE_LAYOUT whose regions see the whole image's mean features too (108,785 parameters).
WIDE_CONTEXT_LAYOUT = {**WIDE_LAYOUT, "context": "mean"}
# Capacity at the same cost: convolutions 2-6 depthwise-separable, so the region features can be
# 192 channels wide instead of 72 (106,209 parameters; ONNX on one thread about as fast as WIDE_LAYOUT).
SEPARABLE_LAYOUT = {**FAST_LAYOUT, "channels": (16, 32, 96, 160, 192, 192), "separable": True}
# Capacity where the 5x5 grid's features are made, paid for by the 3x3 grid's convolution: convolutions
# 4-6 with 64-96-96 channels instead of 48-72-72, the sixth depthwise-separable (98,257 parameters).
WIDE96_LAYOUT = {**FAST_LAYOUT, "channels": (16, 16, 32, 64, 96, 96), "separable_convs": (6,)}
CONTEXTS = ("", "mean")


def conv_bn_relu(cin: int, cout: int, stride: int, pool: bool = False, separable: bool = False) -> nn.Sequential:
    """3x3 convolution, batch norm, ReLU, and optionally a 2x2 max-pool. ``separable``: the 3x3
    convolution is depthwise (one filter per input channel, then BN + ReLU) and a 1x1 convolution
    mixes the channels (MobileNet's block): ~9x fewer weights for the same widths."""
    if separable:
        conv = [nn.Conv2d(cin, cin, 3, stride=stride, padding=1, groups=cin, bias=False),
                nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.Conv2d(cin, cout, 1, bias=False)]
    else:
        conv = [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)]
    return nn.Sequential(
        *conv,
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        *([nn.MaxPool2d(2)] if pool else []),
    )


class Student(nn.Module):
    def __init__(self, config: StudentConfig = StudentConfig()):
        super().__init__()
        if len(config.channels) != 6 or len(config.strides) != 6:
            raise ValueError("the student has exactly six convolution layers")
        if any(not 1 <= i <= 5 for i in config.pool_after):
            raise ValueError(f"pool_after {config.pool_after}: max-pools may follow convolutions 1 to 5")
        if any(not 1 <= i <= 6 for i in config.separable_convs):
            raise ValueError(f"separable_convs {config.separable_convs}: the convolutions are numbered 1 to 6")
        if config.context not in CONTEXTS:
            raise ValueError(f"context {config.context!r}: use one of {CONTEXTS}")
        self.config = config
        chans = (3, *config.channels)
        self.layers = nn.ModuleList(
            conv_bn_relu(chans[i], chans[i + 1], config.strides[i], pool=i + 1 in config.pool_after,
                         separable=(config.separable and i > 0) or i + 1 in config.separable_convs)
            for i in range(6)
        )
        extra = config.channels[-1] if config.context else 0
        self.head = RegionHead([c + extra for c in config.channels[-2:]], config.embed_dim, config.dropout,
                               config.shared_mapper)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Region feature maps: [(B, C5, 5, 5), (B, C6, 3, 3)] (with ``context``, C6 more
        channels each: the image's mean features, the same in every region)."""
        for layer in self.layers[:5]:
            x = layer(x)
        fifth = x
        sixth = self.layers[5](fifth)
        maps = [adaptive_pool(f, g, self.config.pool) for f, g in zip((fifth, sixth), GRIDS)]
        if self.config.context:
            mean = sixth.mean(dim=(2, 3), keepdim=True)
            maps = [torch.cat([m, mean.expand(-1, -1, g, g)], dim=1) for m, g in zip(maps, GRIDS)]
        return maps

    def forward_head(self, region_maps: list[torch.Tensor]) -> RegionOutput:
        return self.head(region_maps)

    def forward(self, x: torch.Tensor) -> RegionOutput:
        return self.forward_head(self.forward_features(x))


@register_model("student", StudentConfig)
def build_student(config: StudentConfig) -> Student:
    return Student(config)
