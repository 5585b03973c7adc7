"""Training curves and run budgets read from checkpoint histories (no training needed)."""

from __future__ import annotations

import pytest

from model.registry import build_model, save_checkpoint
from training import ablation, curves


def _run(path, stage, history, init=None):
    save_checkpoint(str(path), build_model("student"), {"stage": stage, "history": history, "init": init,
                                                        "train_config": {"optimizer": "adamw", "lr": 0.002,
                                                                         "batch_size": 16}})
    return path


def test_run_history_chains_the_init_checkpoint_and_renumbers_epochs(tmp_path):
    ab = _run(tmp_path / "ab.pt", "ab", [{"epoch": 1, "seconds": 10.0, "loss_total": 9.0}])
    kd = _run(tmp_path / "kd.pt", "kd", [{"epoch": 1, "seconds": 20.0, "loss_total": 0.4},
                                         {"epoch": 2, "seconds": 30.0, "loss_total": 0.3, "dev_ap": 0.9}], init=str(ab))
    history = curves.run_history(kd)
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert [h["stage"] for h in history] == ["ab", "kd", "kd"]
    assert ablation.row_budget(kd) == (3, 60.0, "adamw lr 0.002 b16")
    # an init checkpoint that is gone: only the run's own epochs
    ab.unlink()
    assert [h["epoch"] for h in curves.run_history(kd)] == [1, 2]


def test_curves_cli_writes_a_png_with_labels(tmp_path):
    a = _run(tmp_path / "a.pt", "hard", [{"epoch": e, "loss_total": 1 / e, "dev_ap": 0.8 + e / 100,
                                          "dev_f@r95": 0.9, "dev_reject@r95": 0.5} for e in (1, 2, 3)])
    b = _run(tmp_path / "b.pt", "kd", [{"epoch": 1, "loss_total": 0.5}])  # no dev figures logged
    out = curves.main([f"hard={a}", str(b), "--out", str(tmp_path / "c" / "curves.png")])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_curves_cli_rejects_a_missing_checkpoint(tmp_path, capsys):
    with pytest.raises(SystemExit):
        curves.main([str(tmp_path / "nope.pt")])
    assert "no checkpoint at" in capsys.readouterr().err
