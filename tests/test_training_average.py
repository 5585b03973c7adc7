"""Checkpoint averaging: the mean of the weights, checked sources, a loadable result."""

from __future__ import annotations

import pytest
import torch

from model import build_model, load_checkpoint, save_checkpoint
from model.registry import CheckpointError
from tests.training_helpers import TINY
from training import average


def _saved(tmp_path, name, seed, meta=None, **config):
    torch.manual_seed(seed)
    model = build_model("student", **config)
    # Fill BN running statistics with distinct values, so they are averaged too.
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
            module.num_batches_tracked.fill_(seed * 10)
    path = tmp_path / name
    save_checkpoint(path, model, meta or {})
    return path, model.state_dict()


def test_mean_of_every_float_tensor_and_last_integer_buffers(tmp_path):
    a, sa = _saved(tmp_path, "a.pt", 1)
    b, sb = _saved(tmp_path, "b.pt", 2, meta={"stage": "hard", "threshold": 0.4, "target_recall": 0.95,
                                                "dev_figures": {"f1": 0.9}, "history": [{"epoch": 1}]})
    model, meta = average.average_checkpoints([a, b], weights=[1, 3])
    state = model.state_dict()
    for key, value in state.items():
        if value.is_floating_point():
            torch.testing.assert_close(value, 0.25 * sa[key] + 0.75 * sb[key])
        else:
            assert torch.equal(value, sb[key]), key
    assert not model.training
    # the stored threshold was chosen for another model's scores: dropped; the rest kept
    assert "threshold" not in meta and "target_recall" not in meta and "dev_figures" not in meta
    assert meta["stage"] == "hard" and meta["history"] == [{"epoch": 1}]
    assert meta["averaged_from"] == [{"checkpoint": str(a), "weight": 0.25}, {"checkpoint": str(b), "weight": 0.75}]


def test_average_of_identical_checkpoints_is_the_same_network(tmp_path):
    a, _ = _saved(tmp_path, "a.pt", 5)
    model, _ = average.average_checkpoints([a, a])
    original, _ = load_checkpoint(a)
    x = torch.rand(2, 3, 256, 320)
    with torch.no_grad():
        torch.testing.assert_close(model(x), original(x))


def test_cli_writes_a_loadable_checkpoint(tmp_path):
    a, sa = _saved(tmp_path, "a.pt", 1)
    b, sb = _saved(tmp_path, "b.pt", 2)
    out = average.main([str(a), str(b), "--out", str(tmp_path / "avg" / "mean.pt")])
    model, meta = load_checkpoint(out, expect="student")
    key = next(k for k, v in sa.items() if v.is_floating_point())
    torch.testing.assert_close(model.state_dict()[key], (sa[key] + sb[key]) / 2)
    assert [s["weight"] for s in meta["averaged_from"]] == [0.5, 0.5]


def test_refuses_different_configs_and_bad_weights(tmp_path):
    a, _ = _saved(tmp_path, "a.pt", 1)
    c, _ = _saved(tmp_path, "c.pt", 1, embed_dim=32)
    with pytest.raises(CheckpointError, match="embed_dim=32"):
        average.average_checkpoints([a, c])
    with pytest.raises(ValueError, match="at least two"):
        average.average_checkpoints([a])
    with pytest.raises(ValueError, match="one non-negative weight"):
        average.average_checkpoints([a, a], weights=[1])
    with pytest.raises(ValueError, match="one non-negative weight"):
        average.average_checkpoints([a, a], weights=[0, 0])
    with pytest.raises(SystemExit):
        average.main([str(a), str(c), "--out", str(tmp_path / "x.pt")])
    with pytest.raises(SystemExit):
        average.main([str(a), str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x.pt")])


def test_keep_every_leaves_snapshots_to_average(tiny_root, tmp_path):
    from training import train_student

    run = tmp_path / "run"
    train_student.main(["--root", tiny_root, *TINY, "--epochs", "4", "--keep_every", "2", "--eval_every", "0",
                        "--out_dir", str(run), "--out", str(tmp_path / "student.pt")])
    snapshots = sorted(p.name for p in run.glob("epoch-*.pt"))
    assert snapshots == ["epoch-002.pt", "epoch-004.pt"]
    last, _ = load_checkpoint(run / "epoch-004.pt", expect="student")
    final, _ = load_checkpoint(tmp_path / "student.pt")
    for key, value in final.state_dict().items():
        assert torch.equal(last.state_dict()[key], value), key
    model, meta = average.average_checkpoints([run / "epoch-002.pt", run / "epoch-004.pt"])
    assert len(meta["history"]) == 4 and len(meta["averaged_from"]) == 2
