"""A run stopped after a pass and resumed from its last.pt ends with the same student as a run
that went through: ``training.crossval run`` resumes stopped runs and counts them as whole ones."""
import importlib

import pytest
import torch

from model.registry import read_checkpoint
from tests.training_helpers import TINY

RUNS = {
    "hard-flips": ("train_student", []),
    "hard-rotate-zoom-jpeg": ("train_student", ["--augment.rotate_p", "0.5", "--augment.zoom_p", "0.5",
                                                "--augment.jpeg_p", "0.5"]),
    # the shipped recipe's terms (teacher outputs memoised) and the discriminator with its k_t
    "kd-began-memo": ("distill", ["--stage", "soft", "--losses", "hard:1.0", "kd:1.0", "began:0.2",
                                  "--teacher_memo"]),
}


@pytest.mark.parametrize("run", sorted(RUNS))
def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(run, tiny_root, tiny_teacher, tmp_path,
                                                                      monkeypatch):
    from training import loop

    module, extra = RUNS[run]
    main = importlib.import_module(f"training.{module}").main
    teacher = ["--teacher", tiny_teacher] if module == "distill" else []
    common = ["--root", tiny_root, *TINY, *extra, *teacher, "--epochs", "3"]
    main([*common, "--out_dir", str(tmp_path / "whole"), "--out", str(tmp_path / "whole.pt")])

    # the first session ends after one pass, as a killed job would; the second resumes unhindered
    with monkeypatch.context() as patch:
        patch.setattr(loop, "budget_spent", lambda state, cfg: state.epoch >= 1)
        main([*common, "--out_dir", str(tmp_path / "parts"), "--out", str(tmp_path / "parts.pt")])
    assert read_checkpoint(tmp_path / "parts" / "last.pt")["loop"]["epoch"] == 1
    main([*common, "--out_dir", str(tmp_path / "parts"), "--out", str(tmp_path / "parts.pt"), "--resume"])

    whole, parts = read_checkpoint(tmp_path / "whole.pt"), read_checkpoint(tmp_path / "parts.pt")
    assert [h["epoch"] for h in parts["meta"]["history"]] == [1, 2, 3]
    assert whole["state_dict"].keys() == parts["state_dict"].keys()
    for name, value in whole["state_dict"].items():
        torch.testing.assert_close(parts["state_dict"][name], value, msg=name)
