"""Soft-label distillation, L_K: binary cross-entropy of the student's region
probabilities against the teacher's (the paper's eq. 3), averaged over the 34 regions.
Soft labels replace the noisy hard region labels of the 1 % rule."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from training.losses import register_loss


def soft_label_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    targets = torch.sigmoid(teacher_logits.detach() / temperature)
    return F.binary_cross_entropy_with_logits(student_logits / temperature, targets)


@register_loss("kd")
class SoftLabelLoss(nn.Module):
    needs_teacher = True
    label_free = True  # learns from unlabelled images too

    def __init__(self, temperature: float = 1.0):
        super().__init__()
        self.temperature = temperature

    def forward(self, student, batch, teacher=None) -> torch.Tensor:
        return soft_label_loss(student.logits, teacher.logits, self.temperature)
