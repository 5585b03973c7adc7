"""Adversarial distillation in the manner of BEGAN (Berthelot et al. 2017), stage 2.

The discriminator D is an autoencoder on mapped region features. Teacher features are
"real", student features "fake"; with reconstruction error R(x) = mean |D(x) - x|:

    L_D = R(T) - k_t R(S)                       (discriminator)
    L_G = R(S)                                  (student, weighted by b = 0.2 in L_Stu)
    k_{t+1} = clip(k_t + f_k (n R(T) - R(S)), 0, 1),   k_0 = 0, f_k = 1e-3, n = 0.75

This module is the student's term (``forward`` returns L_G) and owns D and k_t; the
training loop updates D in turn with ``discriminator_step``, using its own optimiser.
"""

from __future__ import annotations

import torch
from torch import nn

from training.losses import register_loss


class RegionAutoencoder(nn.Module):
    """D: embed_dim -> hidden -> embed_dim, applied to each region feature."""

    def __init__(self, embed_dim: int = 64, hidden: int = 32):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(embed_dim, hidden), nn.ELU())
        self.decoder = nn.Sequential(nn.Linear(hidden, hidden), nn.ELU(), nn.Linear(hidden, embed_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


@register_loss("began")
class BEGANLoss(nn.Module):
    needs_teacher = True
    label_free = True  # learns from unlabelled images too
    adversarial = True  # the training loop also calls discriminator_step

    def __init__(self, embed_dim: int = 64, hidden: int = 32, gamma: float = 0.75, k_lr: float = 1e-3,
                 k_init: float = 0.0):
        super().__init__()
        self.discriminator = RegionAutoencoder(embed_dim, hidden)
        self.gamma = gamma  # the paper's n
        self.k_lr = k_lr  # the paper's f_k
        self.register_buffer("k", torch.tensor(float(k_init)))

    def reconstruction_error(self, feats: torch.Tensor) -> torch.Tensor:
        return (self.discriminator(feats) - feats).abs().mean()

    def forward(self, student, batch, teacher=None) -> torch.Tensor:
        return self.reconstruction_error(student.features)  # L_G

    def discriminator_loss(self, student_feats: torch.Tensor, teacher_feats: torch.Tensor):
        """(L_D, stats) for one D update; updates k_t. Both inputs are detached here."""
        real = self.reconstruction_error(teacher_feats.detach())
        fake = self.reconstruction_error(student_feats.detach())
        loss = real - float(self.k) * fake  # k_t as a constant: it is updated below
        with torch.no_grad():
            balance = self.gamma * real - fake
            self.k.copy_((self.k + self.k_lr * balance).clamp(0.0, 1.0))
            convergence = real + balance.abs()
        return loss, {"d_real": real.item(), "d_fake": fake.item(), "k": self.k.item(), "m_global": convergence.item()}

    def discriminator_step(self, optimizer: torch.optim.Optimizer, student_feats, teacher_feats) -> dict:
        """One update of D with ``optimizer`` (which holds D's parameters only)."""
        optimizer.zero_grad(set_to_none=True)
        loss, stats = self.discriminator_loss(student_feats, teacher_feats)
        loss.backward()
        optimizer.step()
        return {"d_loss": float(loss.detach()), **stats}
