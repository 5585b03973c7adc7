import os
import pickle

import pytest
import torch

from model import build_model, load_checkpoint, save_checkpoint
from model.registry import CheckpointError


def test_round_trip_keeps_config_weights_and_meta(tmp_path):
    torch.manual_seed(0)
    model = build_model("student", embed_dim=32)
    path = tmp_path / "s.pt"
    save_checkpoint(path, model, {"threshold": 0.37, "note": "test"})
    loaded, meta = load_checkpoint(path, expect="student")
    assert loaded.config == model.config
    assert meta == {"threshold": 0.37, "note": "test"}
    assert not loaded.training
    x = torch.randn(1, 3, 256, 256)
    model.eval()
    assert torch.equal(model(x).logits, loaded(x).logits)
    assert not [f for f in os.listdir(tmp_path) if ".tmp-" in f]


def test_wrong_model_kind_is_refused(tmp_path):
    path = tmp_path / "t.pt"
    save_checkpoint(path, build_model("teacher", width=0.125))
    with pytest.raises(CheckpointError, match="expected 'student'"):
        load_checkpoint(path, expect="student")


def student_with_config(tmp_path, **changes):
    """A saved student checkpoint whose stored config was edited afterwards."""
    path = tmp_path / "s.pt"
    save_checkpoint(path, build_model("student"))
    state = torch.load(path, weights_only=True)
    state["config"].update(changes)
    torch.save(state, path)
    return path


def test_wrong_shapes_give_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(student_with_config(tmp_path, embed_dim=16))


def test_unknown_config_field(tmp_path):
    with pytest.raises(CheckpointError, match="unknown fields"):
        load_checkpoint(student_with_config(tmp_path, heads=4))


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/textfilter-pwned",))


def test_code_running_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "textfilter-checkpoint/1", "payload": _RunsCode()}, path)
    if os.path.exists("/tmp/textfilter-pwned"):
        os.remove("/tmp/textfilter-pwned")
    with pytest.raises(CheckpointError, match="refusing"):
        load_checkpoint(path)
    assert not os.path.exists("/tmp/textfilter-pwned")


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "x.pt"
    path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    torch.save({"state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="not a textfilter checkpoint"):
        load_checkpoint(path)


def test_weights_only_copy_drops_training_state(tmp_path):
    from model.registry import read_checkpoint, weights_only_copy

    torch.manual_seed(0)
    model = build_model("student")
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.randn(1, 3, 64, 64)).logits.sum().backward()
    optimizer.step()
    src = tmp_path / "last.pt"
    save_checkpoint(src, model, {"stage": "hard"}, optimizer=optimizer.state_dict(), loop={"epoch": 3})
    dest = tmp_path / "out" / "student.pt"
    weights_only_copy(src, dest)
    copied = read_checkpoint(dest)
    assert set(copied) == {"format", "model", "config", "state_dict", "meta"}
    assert dest.stat().st_size < src.stat().st_size
    loaded, meta = load_checkpoint(dest, expect="student")
    assert meta == {"stage": "hard"}
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)
