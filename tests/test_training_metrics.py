"""Tests of training.metrics, training.cli and the training loop's resume."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from model.registry import build_model, load_checkpoint
from training import metrics
from training.cli import add_config_args, config_from_args
from training.config import DataConfig, TrainConfig
from training.engine import LoopState, build_optimizer, lr_at, resume, save_training_checkpoint


def test_prf_and_rejection():
    scores = np.array([0.9, 0.8, 0.3, 0.7, 0.1])
    labels = np.array([1, 1, 1, 0, 0])
    m = metrics.prf_at(scores, labels, 0.5)
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (2, 1, 1, 1)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["rejection"] == pytest.approx(0.5)


def test_threshold_for_recall_picks_best_precision_and_a_margin():
    scores = np.array([0.95, 0.9, 0.85, 0.6, 0.5, 0.4, 0.2, 0.1])
    labels = np.array([1, 1, 0, 1, 0, 1, 0, 0])
    t = metrics.threshold_for_recall(scores, labels, 0.75)  # 3 of 4 text images: cut below 0.6
    assert 0.5 < t < 0.6
    m = metrics.prf_at(scores, labels, t)
    assert m["recall"] == 0.75 and m["precision"] == 0.75
    t_all = metrics.threshold_for_recall(scores, labels, 1.0)
    assert 0.2 < t_all < 0.4 and metrics.prf_at(scores, labels, t_all)["recall"] == 1.0


def test_threshold_for_best_f_maximises_f1_with_a_margin():
    scores = np.array([0.95, 0.9, 0.85, 0.6, 0.5, 0.4, 0.2, 0.1])
    labels = np.array([1, 1, 0, 1, 0, 1, 0, 0])
    t = metrics.threshold_for_best_f(scores, labels)  # F: 0.67 at 0.9, 0.75 at 0.6, 0.8 at 0.4
    assert 0.2 < t < 0.4
    assert metrics.prf_at(scores, labels, t)["f1"] == pytest.approx(0.8)
    perfect = metrics.threshold_for_best_f(np.array([0.9, 0.7, 0.3, 0.1]), np.array([1, 1, 0, 0]))
    assert 0.3 < perfect < 0.7


def test_average_precision_of_a_perfect_ranking_is_one():
    assert metrics.average_precision(np.array([0.9, 0.8, 0.2]), np.array([1, 1, 0])) == pytest.approx(1.0)
    assert metrics.region_average_precision(np.array([[0.9, 0.1, 0.5]]), np.array([[1, 0, -1]])) == pytest.approx(1.0)


def test_per_source_reports_recall_and_rejection():
    out = metrics.per_source(np.array([0.9, 0.1, 0.8, 0.2]), np.array([1, 1, 0, 0]), ["a", "a", "b", "b"], 0.5)
    assert out["a"]["metric"] == "recall" and out["a"]["rate"] == 0.5
    assert out["b"]["metric"] == "rejection" and out["b"]["rate"] == 0.5


def test_cli_round_trips_the_configs():
    parser = argparse.ArgumentParser()
    add_config_args(parser, TrainConfig)
    add_config_args(parser, DataConfig)
    args = parser.parse_args(["--lr", "0.01", "--losses", "hard:1", "kd:0.5", "--no-synth.enabled",
                              "--augment.jpeg_quality", "40", "90", "--root", "/x"])
    train, data = config_from_args(TrainConfig, args), config_from_args(DataConfig, args)
    assert train.lr == 0.01 and train.losses == ("hard:1", "kd:0.5") and train.epochs == TrainConfig().epochs
    assert data.root == "/x" and not data.synth.enabled and data.augment.jpeg_quality == (40, 90)


def test_cosine_schedule_warms_up_and_decays():
    cfg = TrainConfig(lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_at(0, 0.0, cfg) == pytest.approx(0.1)
    assert lr_at(100, 0.0, cfg) == pytest.approx(1.0)
    assert lr_at(100, 1.0, cfg) == pytest.approx(0.1)


def test_training_checkpoint_resumes_and_loads_as_a_model(tmp_path):
    model = build_model("student")
    optimizer = build_optimizer(model, TrainConfig())
    model(torch.randn(1, 3, 64, 64)).logits.sum().backward()
    optimizer.step()
    path = str(tmp_path / "last.pt")
    save_training_checkpoint(path, model, optimizer, LoopState(epoch=3, step=40, samples=600), {"history": [1]})
    fresh = build_model("student")
    state, meta = resume(path, fresh, build_optimizer(fresh, TrainConfig()))
    assert state == LoopState(3, 40, 600) and meta["history"] == [1]
    loaded, _ = load_checkpoint(path, expect="student")
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_quad_height_is_the_short_side_of_a_rotated_box():
    from training.evaluate import quad_height

    assert quad_height([0, 0, 100, 0, 100, 10, 0, 10]) == pytest.approx(10)
    c, s = np.cos(0.5), np.sin(0.5)
    rotated = [(x * c - y * s, x * s + y * c) for x, y in ((0, 0), (100, 0), (100, 10), (0, 10))]
    assert quad_height(np.ravel(rotated)) == pytest.approx(10)
    assert quad_height([0, 0, 5, 0, 5, 40, 0, 40]) == pytest.approx(5)  # vertical text: its width


def test_recall_by_bucket_counts_only_text_images():
    scores = np.array([0.9, 0.1, 0.8, 0.7, 0.9])
    labels = np.array([1, 1, 1, 0, 1])
    heights = np.array([4.0, 5.0, 20.0, np.nan, np.nan])
    out = metrics.recall_by_bucket(scores, labels, heights, 0.5, edges=(6, 16))
    assert out == {"< 6": {"n": 2, "recall": 0.5}, "6-16": {"n": 0, "recall": None}, ">= 16": {"n": 1, "recall": 1.0}}


def test_worst_errors_orders_false_positives_and_negatives():
    from training.plots import worst_errors

    probs = np.array([[0.9, 0.1], [0.2, 0.3], [0.6, 0.0], [0.05, 0.1], [0.4, 0.45], [0.7, 0.2]])
    pred = {"probs": probs, "image_labels": np.array([0, 0, 0, 1, 1, 1])}
    fp, fn = worst_errors(pred, threshold=0.5, n=5)
    assert fp.tolist() == [0, 2]  # non-text at or above 0.5, highest first
    assert fn.tolist() == [3, 4]  # text below 0.5, lowest first
    assert worst_errors(pred, threshold=0.5, n=1)[0].tolist() == [0]


def test_platt_fit_recovers_the_miscalibration_and_leaves_calibrated_scores_alone():
    rng = np.random.default_rng(0)
    z = rng.normal(0.0, 2.0, 20000)
    labels = rng.uniform(size=z.size) < 1 / (1 + np.exp(-z))  # calibrated: p = sigmoid(z)
    probs = 1 / (1 + np.exp(-z))
    a, b = metrics.platt_fit(probs, labels)
    assert a == pytest.approx(1.0, abs=0.05) and b == pytest.approx(0.0, abs=0.05)
    under = 1 / (1 + np.exp(-(z - 1.0)))  # every probability too low: the fit adds the 1 back
    a, b = metrics.platt_fit(under, labels)
    assert a == pytest.approx(1.0, abs=0.05) and b == pytest.approx(1.0, abs=0.07)
    # regions: ignored (-1) ones are left out, and calibrated ones have a small ECE
    region_labels = np.where(rng.uniform(size=z.size) < 0.1, -1, labels.astype(int)).reshape(-1, 20)
    fit = metrics.region_calibration(probs.reshape(-1, 20), region_labels)
    assert fit["ece"] < 0.03 and fit["platt_a"] == pytest.approx(1.0, abs=0.06)
    assert metrics.region_calibration(under.reshape(-1, 20), region_labels)["ece"] > 0.1
