"""Activation-boundary distillation (Heo et al., AAAI 2019), the student's stage 1.

Between the mapped region features of teacher (T) and student (S), with margin u:

    L_A = mean_i || d(T_i) * relu(u - S_i) + (1 - d(T_i)) * relu(u + S_i) ||^2,   d(T) = [T > 0]

so a student neuron is pushed above +u where the teacher's is active and below -u where it
is not. (The paper's text writes the indicator the other way round; this follows Heo et
al., as DESIGN.md says.) The squared norm is over the feature dimension; the mean over
regions and images.
"""

from __future__ import annotations

import torch
from torch import nn

from training.losses import register_loss


def activation_boundary_loss(student_feats: torch.Tensor, teacher_feats: torch.Tensor, margin: float) -> torch.Tensor:
    active = (teacher_feats > 0).to(student_feats.dtype)
    per_neuron = active * torch.relu(margin - student_feats) + (1 - active) * torch.relu(margin + student_feats)
    return per_neuron.pow(2).sum(-1).mean()


@register_loss("ab")
class ActivationBoundaryLoss(nn.Module):
    needs_teacher = True
    label_free = True  # learns from unlabelled images too

    def __init__(self, margin: float = 1.0):
        super().__init__()
        self.margin = margin

    def forward(self, student, batch, teacher=None) -> torch.Tensor:
        return activation_boundary_loss(student.features, teacher.features.detach(), self.margin)
