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
    """``shared_mapper``: one mapping layer for every scale (all ``in_channels`` equal)."""

    def __init__(self, in_channels: Sequence[int], embed_dim: int, dropout: float = 0.0,
                 shared_mapper: bool = False):
        super().__init__()
        if shared_mapper:
            if len(set(in_channels)) != 1:
                raise ValueError(f"a shared mapper needs equal channels at every scale, got {tuple(in_channels)}")
            mapper = nn.Linear(in_channels[0], embed_dim)
            self.mappers = nn.ModuleList([mapper] * len(in_channels))
        else:
            self.mappers = nn.ModuleList(nn.Linear(c, embed_dim) for c in in_channels)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(embed_dim, 1)

    def forward(self, region_maps: Sequence[torch.Tensor]) -> RegionOutput:
        mapped = [m(f.flatten(2).transpose(1, 2)) for m, f in zip(self.mappers, region_maps)]
        features = torch.cat(mapped, dim=1)
        logits = self.classifier(self.dropout(torch.relu(features))).squeeze(-1)
        return RegionOutput(logits=logits, features=features)


def adaptive_pool(x: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """Adaptive max/avg pooling of (B, C, H, W) to (B, C, size, size).

    In eager mode (training, the pipeline's torch path) this is PyTorch's own kernel.
    While exporting to ONNX it is ``sliced_adaptive_pool``: the same bins cut by slicing
    from the input's dynamic shape, because ONNX has no adaptive pooling for sizes that
    are not known when exporting."""
    if mode not in ("max", "avg"):
        raise ValueError(f"unknown pooling {mode!r}: use 'max' or 'avg'")
    if _exporting():
        return sliced_adaptive_pool(x, size, mode)
    if mode == "max":
        return nn.functional.adaptive_max_pool2d(x, size)
    return nn.functional.adaptive_avg_pool2d(x, size)


def _exporting() -> bool:
    """True while torch.onnx.export traces (legacy) or torch.export captures (dynamo)."""
    if torch.onnx.is_in_onnx_export():
        return True
    is_exporting = getattr(torch.compiler, "is_exporting", None)
    return bool(is_exporting and is_exporting())


def adaptive_bins(n, g: int) -> list[tuple]:
    """PyTorch's adaptive pooling bins of a length-``n`` axis into ``g`` cells:
    [floor(i*n/g), ceil((i+1)*n/g)). ``n`` may be an int or a traced/symbolic size;
    only integer arithmetic on positive values is used, so it exports."""
    return [((i * n) // g, ((i + 1) * n + g - 1) // g) for i in range(g)]


def sliced_adaptive_pool(x: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """Adaptive pooling by slicing each bin out of the dynamic shape (export-friendly).

    Max pooling gives bit-identical results to ``adaptive_max_pool2d`` (a max does not
    depend on the order it is taken in); average pooling agrees with
    ``adaptive_avg_pool2d`` up to float rounding (the summation order differs)."""
    h, w = x.shape[-2], x.shape[-1]
    rows = []
    for y0, y1 in adaptive_bins(h, size):
        band = x[..., y0:y1, :]
        if mode == "max":
            band = band.amax(dim=-2)  # (B, C, W)
            cells = [band[..., x0:x1].amax(dim=-1) for x0, x1 in adaptive_bins(w, size)]
        else:
            cells = [band[..., x0:x1].mean(dim=(-2, -1)) for x0, x1 in adaptive_bins(w, size)]
        rows.append(torch.stack(cells, dim=-1))
    return torch.stack(rows, dim=-2)
