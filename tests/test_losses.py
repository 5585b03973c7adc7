"""Tests of training.losses: the registry, the objective and the masked hard-label loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from model.heads import RegionOutput
from model.registry import build_model
from model.regions import NUM_REGIONS
from training.data import Batch
from training.losses import LOSSES, Objective, any_term, build_objective, parse_term
from training.losses.hard import HardRegionLoss, masked_bce_with_logits


def make_batch(labels: torch.Tensor) -> Batch:
    n = labels.shape[0]
    return Batch(images=torch.zeros(n, 3, 64, 64), labels=labels, image_labels=(labels == 1).any(1).long(),
                 sources=["s"] * n, paths=[f"{i}" for i in range(n)], kinds=["image"] * n)


def test_masked_loss_ignores_minus_one():
    torch.manual_seed(0)
    logits = torch.randn(3, NUM_REGIONS, requires_grad=True)
    labels = torch.randint(0, 2, (3, NUM_REGIONS))
    labels[0, :5] = -1
    labels[2, 30:] = -1
    keep = labels != -1
    loss = masked_bce_with_logits(logits, labels)
    expected = F.binary_cross_entropy_with_logits(logits[keep], labels[keep].float())
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    assert (logits.grad[~keep] == 0).all() and (logits.grad[keep] != 0).all()
    # Whatever the model says about ignored regions does not change the loss.
    moved = logits.detach().clone()
    moved[~keep] = 1e4
    torch.testing.assert_close(masked_bce_with_logits(moved, labels), loss.detach())


def test_masked_loss_with_everything_ignored_is_zero_with_a_gradient():
    logits = torch.randn(2, NUM_REGIONS, requires_grad=True)
    loss = masked_bce_with_logits(logits, torch.full((2, NUM_REGIONS), -1))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(logits.grad).all() and (logits.grad == 0).all()


def test_pos_weight_weights_text_regions():
    logits = torch.zeros(1, 4)
    labels = torch.tensor([[1, 0, 0, -1]])
    plain = masked_bce_with_logits(logits, labels)
    weighted = masked_bce_with_logits(logits, labels, pos_weight=3.0)
    torch.testing.assert_close(weighted, plain * (3 + 1 + 1) / 3)


def test_registry_and_weighted_objective():
    assert LOSSES["hard"] is HardRegionLoss
    assert parse_term("hard") == ("hard", 1.0, {}) and parse_term("hard:0.25") == ("hard", 0.25, {})
    with pytest.raises(ValueError, match="unknown loss"):
        build_objective(["nope:1"])
    with pytest.raises(ValueError, match="not a number"):
        parse_term("hard:x")
    objective = build_objective(["hard:0.5"])
    assert isinstance(objective, Objective) and not objective.needs_teacher
    labels = torch.randint(-1, 2, (2, NUM_REGIONS))
    out = RegionOutput(logits=torch.randn(2, NUM_REGIONS), features=torch.randn(2, NUM_REGIONS, 8))
    total, parts = objective(out, make_batch(labels))
    torch.testing.assert_close(total, 0.5 * masked_bce_with_logits(out.logits, labels))
    assert parts["hard"] == pytest.approx(float(masked_bce_with_logits(out.logits, labels)))


def test_student_gradients_are_finite_and_reach_every_layer():
    torch.manual_seed(0)
    model = build_model("student").to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 96, 128).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(-1, 2, (2, NUM_REGIONS))
    total, _ = build_objective(["hard"])(model(x), make_batch(labels))
    total.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert model.layers[0][0].weight.grad.abs().sum() > 0


def test_image_loss_charges_the_decision_and_skips_text_that_left_every_region():
    from training.losses.image import ImageScoreLoss

    labels = torch.zeros(3, NUM_REGIONS, dtype=torch.long)
    labels[1, [7, 30]] = 1  # text at both scales
    batch = make_batch(labels)
    batch.image_labels = torch.tensor([0, 1, 1])  # image 2: a text record whose text was cropped away
    logits = torch.full((3, NUM_REGIONS), -6.0)
    logits[0, 7] = 2.0  # a non-text image with one texture cell: a false positive
    logits[1, [7, 30]] = 3.0
    logits.requires_grad_(True)
    loss = ImageScoreLoss("both_grids")(RegionOutput(logits, torch.zeros(3, NUM_REGIONS, 8)), batch)
    s0 = (torch.sigmoid(torch.tensor(2.0)) * torch.sigmoid(torch.tensor(-6.0))).sqrt()
    s1 = torch.sigmoid(torch.tensor(3.0))
    expected = (-torch.log(1 - s0) - torch.log(s1)) / 2
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert (logits.grad[2] == 0).all()  # left out
    assert logits.grad[0, 7] > 0 and logits.grad[0, 30] > 0  # push the false positive's cells down
    assert logits.grad[1, 7] < 0 and logits.grad[1, 30] < 0  # and the text image's up
    # with max, only the top cell of the false positive is charged
    logits.grad = None
    ImageScoreLoss("max")(RegionOutput(logits, torch.zeros(3, NUM_REGIONS, 8)), batch).backward()
    assert logits.grad[0, 7] > 0 and logits.grad[0, 30] == 0
    with pytest.raises(ValueError, match="unknown score rule"):
        ImageScoreLoss("mean")
    assert "image" in LOSSES and parse_term("image:0.5") == ("image", 0.5, {})


def test_loss_options_in_the_term_reach_the_loss():
    """``image:0.5:score_rule=max`` trains the decision the shipped rule makes (the default is
    both_grids); a misspelt option or rule is an error when the objective is built, not later."""
    assert parse_term("image:0.5:score_rule=max") == ("image", 0.5, {"score_rule": "max"})
    objective = build_objective(["hard:1", "image:0.5:score_rule=max"])
    assert objective.terms[1].score_rule == "max" and build_objective(["image"]).terms[0].score_rule == "both_grids"
    labels = torch.zeros(2, NUM_REGIONS, dtype=torch.long)
    labels[1, 3] = 1
    logits = torch.full((2, NUM_REGIONS), -4.0)
    logits[0, [2, 30]] = 1.0
    logits[1, 3] = 2.0
    total, parts = objective(RegionOutput(logits, torch.zeros(2, NUM_REGIONS, 8)), make_batch(labels))
    p = torch.sigmoid(torch.tensor([1.0, 2.0]))
    assert parts["image"] == pytest.approx(float(-(torch.log(1 - p[0]) + torch.log(p[1])) / 2), rel=1e-5)
    with pytest.raises(ValueError, match="unexpected keyword"):
        build_objective(["image:0.5:rule=max"])
    with pytest.raises(ValueError, match="unknown score rule"):
        build_objective(["image:0.5:score_rule=mean"])
    with pytest.raises(ValueError, match="key=value"):
        parse_term("image:0.5:max")


def test_loss_options_take_the_type_of_the_constructor_default():
    assert build_objective(["kd:1:temperature=2"]).terms[0].temperature == 2.0
    assert isinstance(build_objective(["kd:1:temperature=2"]).terms[0].temperature, float)
    assert build_objective(["hard:1:pos_weight=3"]).terms[0].pos_weight == 3.0
    with pytest.raises(ValueError, match="temperature='warm' is not a valid float"):
        build_objective(["kd:1:temperature=warm"])


def test_unlabelled_images_teach_only_the_label_free_terms():
    """An unlabelled image (label -1, every region IGNORE, as training.data gives it): the label
    losses take no gradient from it, the teacher's soft labels do."""
    from training.data import labels_of
    from training.losses.image import ImageScoreLoss

    torch.manual_seed(0)
    labels = torch.from_numpy(np.stack([labels_of(1, [[0, 0, 40, 0, 40, 30, 0, 30]], 96, 64),
                                        labels_of(-1, [], 96, 64)]))
    assert (labels[1] == -1).all() and labels[0].max() == 1
    batch = make_batch(labels)
    batch.image_labels = torch.tensor([1, -1])
    logits = torch.randn(2, NUM_REGIONS, requires_grad=True)
    student = RegionOutput(logits, torch.randn(2, NUM_REGIONS, 8))
    teacher = RegionOutput(torch.randn(2, NUM_REGIONS), torch.randn(2, NUM_REGIONS, 8))
    for name, loss in (("hard", HardRegionLoss()), ("image", ImageScoreLoss())):
        logits.grad = None
        value = loss(student, batch, teacher)
        value.backward()
        assert (logits.grad[1] == 0).all() and logits.grad[0].abs().sum() > 0, name
        alone = loss(RegionOutput(logits[:1], student.features[:1]), make_batch(labels[:1]), teacher)
        torch.testing.assert_close(value, alone)  # as if the unlabelled image were not in the batch
    logits.grad = None
    LOSSES["kd"]()(student, batch, teacher).backward()
    assert (logits.grad[1] != 0).all()
    assert any_term(["hard:1", "kd:1"], "label_free") and not any_term(["hard:1", "image:0.5"], "label_free")
    assert any_term(["ab"], "needs_teacher") and not any_term(["hard"], "needs_teacher")


def test_unlabelled_draws_need_a_label_free_loss():
    from training.config import DataConfig, TrainConfig
    from training.loop import check_unlabelled_use

    with pytest.raises(ValueError, match="none of the losses hard:1.0 learns from unlabelled images"):
        check_unlabelled_use(TrainConfig(losses=("hard:1.0",)), DataConfig(unlabelled_share=0.3))
    check_unlabelled_use(TrainConfig(losses=("hard:1.0", "kd:1.0")), DataConfig(unlabelled_share=0.3))
    check_unlabelled_use(TrainConfig(losses=("hard:1.0",)), DataConfig())


def test_a_list_of_terms_in_one_value_is_a_clear_error():
    with pytest.raises(ValueError, match="one term per value"):
        parse_term("hard:1.0,kd:1.0")
