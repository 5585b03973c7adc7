"""The paper's "hard label" baseline: binary cross-entropy on the 34 region labels.

Regions labelled -1 (``model.regions.IGNORE``: mostly illegible text, and every region of an
unlabelled image) are left out; the loss is the mean over the remaining regions of the batch.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from model.regions import IGNORE
from training.losses import register_loss


def masked_bce_with_logits(logits: torch.Tensor, labels: torch.Tensor, pos_weight: float | None = None,
                           ignore_value: int = IGNORE) -> torch.Tensor:
    """Mean BCE-with-logits over the entries whose label is not ``ignore_value``
    (0 when there are none, with a gradient path so ``backward`` still works)."""
    mask = labels != ignore_value
    targets = labels.clamp(min=0).to(logits.dtype)
    weight = None if pos_weight is None else torch.tensor(pos_weight, dtype=logits.dtype, device=logits.device)
    per_entry = F.binary_cross_entropy_with_logits(logits, targets, reduction="none", pos_weight=weight)
    return torch.where(mask, per_entry, torch.zeros_like(per_entry)).sum() / mask.sum().clamp(min=1)


@register_loss("hard")
class HardRegionLoss(nn.Module):
    """Masked BCE of the student's region logits against the hard region labels."""

    needs_teacher = False

    def __init__(self, pos_weight: float | None = None):
        super().__init__()
        self.pos_weight = pos_weight

    def forward(self, student, batch, teacher=None) -> torch.Tensor:
        return masked_bce_with_logits(student.logits, batch.labels.to(student.logits.device), self.pos_weight)
