"""The distillation losses: activation boundary, soft labels, BEGAN."""

import pytest
import torch

from model.heads import RegionOutput
from training.losses import LOSSES, build_objective
from training.losses.ab import activation_boundary_loss
from training.losses.began import BEGANLoss
from training.losses.kd import soft_label_loss


def outputs(batch=2, dim=8, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, 34, generator=g).requires_grad_(requires_grad)
    feats = torch.randn(batch, 34, dim, generator=g).requires_grad_(requires_grad)
    return RegionOutput(logits, feats)


def test_registered():
    assert {"ab", "kd", "began"} <= set(LOSSES)


def test_activation_boundary_direction_follows_heo():
    teacher = torch.tensor([[[2.0, -3.0]]])
    # student already past the margin on the teacher's side of each boundary: no loss
    assert activation_boundary_loss(torch.tensor([[[1.5, -1.2]]]), teacher, margin=1.0) == 0
    # student on the wrong side: pushed toward +u where T is active, -u where not
    s = torch.tensor([[[-0.5, 0.5]]], requires_grad=True)
    loss = activation_boundary_loss(s, teacher, margin=1.0)
    assert loss.item() == pytest.approx(1.5 ** 2 + 1.5 ** 2)
    loss.backward()
    assert s.grad[0, 0, 0] < 0 and s.grad[0, 0, 1] > 0  # descent raises S0, lowers S1


def test_soft_label_loss_minimised_at_teacher_probabilities():
    t = torch.randn(3, 34)
    at_teacher = soft_label_loss(t.clone(), t)
    assert at_teacher < soft_label_loss(t + 0.5, t) and at_teacher < soft_label_loss(t - 0.5, t)
    s = torch.zeros(3, 34, requires_grad=True)
    soft_label_loss(s, t).backward()
    assert torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0


def test_began_k_update_and_clipping():
    torch.manual_seed(0)
    loss = BEGANLoss(embed_dim=8, hidden=4, gamma=0.75, k_lr=1e-3)
    assert loss.k.item() == 0.0
    s, t = outputs(dim=8, seed=1), outputs(dim=8, seed=2)
    _, stats = loss.discriminator_loss(s.features, t.features)
    expected = min(max(0.0, 1e-3 * (0.75 * stats["d_real"] - stats["d_fake"])), 1.0)
    assert loss.k.item() == pytest.approx(expected, abs=1e-7)
    big = BEGANLoss(embed_dim=8, hidden=4, k_lr=100.0, k_init=0.5)
    big.discriminator_loss(torch.zeros(2, 34, 8), torch.randn(2, 34, 8) * 10)
    assert big.k.item() == 1.0  # clipped to [0, 1]


def test_began_student_and_discriminator_updates_are_separate():
    torch.manual_seed(0)
    began = BEGANLoss(embed_dim=8, hidden=4)
    s = outputs(dim=8, seed=1, requires_grad=True)
    t = outputs(dim=8, seed=2)
    began(s, None, t).backward()  # L_G reaches the student's features
    assert s.features.grad is not None and s.features.grad.abs().sum() > 0
    opt = torch.optim.SGD(began.discriminator.parameters(), lr=0.1)
    before = [p.detach().clone() for p in began.discriminator.parameters()]
    stats = began.discriminator_step(opt, s.features, t.features)
    assert set(stats) >= {"d_loss", "d_real", "d_fake", "k"}
    assert any(not torch.equal(a, b) for a, b in zip(before, began.discriminator.parameters()))


def test_objective_composes_paper_stage_two():
    obj = build_objective(["kd:1.0", "began:0.2"], began={"embed_dim": 8, "hidden": 4})
    assert obj.needs_teacher
    s, t = outputs(dim=8, requires_grad=True), outputs(dim=8, seed=3)
    total, parts = obj(s, None, t)
    assert set(parts) == {"kd", "began"}
    assert total.item() == pytest.approx(parts["kd"] + 0.2 * parts["began"], rel=1e-5)
    total.backward()
    assert torch.isfinite(s.logits.grad).all() and torch.isfinite(s.features.grad).all()
