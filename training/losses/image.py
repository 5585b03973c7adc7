"""Image-level loss (not in the paper): binary cross-entropy of the image score, made from the
region probabilities by the rule the pipeline decides with (``model.regions.image_score``),
against the image label.

The region losses never see the decision itself: a non-text image with one texture cell at
0.6 costs the hard loss little (one region of 34) but is a false positive; this term charges
it in full. An image counts as text when its record says so and some region is text after
augmentation; a text image whose text left every region (cropped away by the zoom, or under
the 1 % rule) is left out rather than taught that nothing is something, and so is an
unlabelled image (label -1).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from model.regions import check_score_rule, image_score
from training.losses import register_loss

EPS = 1e-6


@register_loss("image")
class ImageScoreLoss(nn.Module):
    needs_teacher = False

    def __init__(self, score_rule: str = "both_grids"):
        super().__init__()
        self.score_rule = check_score_rule(score_rule)

    def forward(self, student, batch, teacher=None) -> torch.Tensor:
        logits = student.logits
        scores = image_score(torch.sigmoid(logits), self.score_rule).clamp(EPS, 1 - EPS)
        labels = batch.image_labels.to(logits.device)
        keep = (labels == 0) | ((labels == 1) & (batch.labels.to(logits.device) == 1).any(dim=1))
        per_image = F.binary_cross_entropy(scores, labels.clamp(min=0).to(scores.dtype), reduction="none")
        return torch.where(keep, per_image, torch.zeros_like(per_image)).sum() / keep.sum().clamp(min=1)
