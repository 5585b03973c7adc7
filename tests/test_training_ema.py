"""The exponential moving average of the weights (training.ema): its arithmetic against a
reference computed from the recorded weights, what the checkpoints hold, resume, and that
training with it off (or under it) is the training of today."""

from __future__ import annotations

import math
import shutil

import pytest
import torch

from model.registry import build_model, load_checkpoint, read_checkpoint
from tests.training_helpers import TINY
from training import train_student
from training.config import AugmentConfig, DataConfig, SynthConfig, TrainConfig
from training.data import BalancedSampler, TextFilterDataset, batches
from training.ema import WeightEMA, build_ema
from training.engine import LoopState, build_optimizer, train_epoch
from training.losses import build_objective


def _train(root, run, *flags, epochs=2):
    """Train the tiny student (no dev evaluation); returns its last.pt as read."""
    train_student.main(["--root", root, *TINY, "--epochs", str(epochs), "--eval_every", "0", "--out_dir", str(run),
                        "--out", str(run / "student.pt"), *flags])
    return read_checkpoint(run / "last.pt")


def _assert_same(a: dict, b: dict, exact=True):
    assert a.keys() == b.keys()
    for key in a:
        if exact:
            assert torch.equal(a[key], b[key]), key
        else:
            torch.testing.assert_close(a[key], b[key], msg=key)


def test_ema_after_n_steps_is_the_reference_average_of_the_recorded_weights(tiny_root):
    torch.manual_seed(0)
    model = build_model("student")
    cfg = TrainConfig(lr=1e-2, warmup_steps=1, ema_decay=0.7, ema_start=0.3)
    data_cfg = DataConfig(root=tiny_root, synth=SynthConfig(enabled=False), crop_share=0.0, epoch_size=16,
                          augment=AugmentConfig(rotate_p=0, jpeg_p=0, zoom_p=0))
    dataset = TextFilterDataset.for_split(data_cfg, "train", train=True)
    data = list(batches(dataset, BalancedSampler(dataset, data_cfg), 4))
    optimizer = build_optimizer(model, cfg)
    ema = build_ema(model, cfg)
    recorded = []  # the live weights (BN running statistics included) after each optimiser step
    optimizer.register_step_post_hook(lambda *_: recorded.append(
        {k: v.detach().clone() for k, v in model.state_dict().items()}))
    state = LoopState()
    train_epoch(model, data, build_objective(cfg.losses), optimizer, cfg, state, 16, ema=ema)

    assert len(recorded) == state.step == 4
    # steps at progress 0 and 0.25 copy the weights (before ema_start 0.3); 0.5 and 0.75 average
    reference = dict(recorded[1])
    for weights in recorded[2:]:
        reference = {k: 0.7 * v + 0.3 * weights[k] if v.is_floating_point() else weights[k]
                     for k, v in reference.items()}
    averaged = ema.module.state_dict()
    _assert_same(averaged, reference, exact=False)
    bn_means = [k for k in averaged if k.endswith("running_mean")]
    assert bn_means and all(torch.isfinite(averaged[k]).all() for k in averaged)
    for key in bn_means + [name for name, _ in model.named_parameters()]:
        # the average differs from the last live weights by 0.7 x (its previous value - them):
        # a skipped update, a wrong decay or an update before the step would not match above
        assert not torch.allclose(averaged[key], recorded[-1][key]), key
    assert not ema.module.training and not any(p.requires_grad for p in ema.module.parameters())


def test_ema_settings_are_checked_and_zero_is_off():
    model = build_model("student")
    assert build_ema(model, TrainConfig()) is None
    for decay in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match="ema_decay"):
            build_ema(model, TrainConfig(ema_decay=decay))
    with pytest.raises(ValueError, match="ema_start"):
        WeightEMA(model, 0.99, start=1.5)


def test_without_ema_no_state_and_out_is_the_live_weights_and_ema_leaves_training_alone(tiny_root, tmp_path):
    plain = _train(tiny_root, tmp_path / "plain")
    assert "live_state_dict" not in plain and "ema" not in plain["meta"]
    assert plain["meta"]["train_config"]["ema_decay"] == 0.0
    _assert_same(read_checkpoint(tmp_path / "plain" / "student.pt")["state_dict"], plain["state_dict"])

    # the same seed with an EMA on: the trained (live) weights are bit for bit those of the run without
    averaged = _train(tiny_root, tmp_path / "ema", "--ema_decay", "0.9", "--ema_start", "0")
    _assert_same(averaged["live_state_dict"], plain["state_dict"])
    assert any(not torch.equal(averaged["state_dict"][k], plain["state_dict"][k]) for k in plain["state_dict"])


def test_checkpoints_and_dev_figures_hold_the_ema_and_say_so(tiny_root, tmp_path):
    from training.loop import dev_summary

    run = tmp_path / "run"
    last = _train(tiny_root, run, "--ema_decay", "0.8", "--ema_start", "0", "--keep_every", "2", "--eval_every", "2")
    ema, live = last["state_dict"], last["live_state_dict"]
    model, meta = load_checkpoint(run / "student.pt", expect="student")
    assert meta["ema"] == {"decay": 0.8, "start": 0.0}
    assert read_checkpoint(run / "epoch-002.pt")["meta"]["ema"] == last["meta"]["ema"] == meta["ema"]
    _assert_same(model.state_dict(), ema)
    _assert_same(read_checkpoint(run / "epoch-002.pt")["state_dict"], ema)
    assert "live_state_dict" not in read_checkpoint(run / "student.pt")
    # BN running statistics: finite, trained away from their initial 0 / 1, and averaged (not the live ones)
    for key in (k for k in ema if k.endswith(("running_mean", "running_var"))):
        assert torch.isfinite(ema[key]).all(), key
        assert not torch.equal(ema[key], torch.zeros_like(ema[key]) if key.endswith("mean") else torch.ones_like(ema[key]))
        assert not torch.equal(ema[key], live[key]), key
    # the dev figures of the log are the EMA's
    cfg = TrainConfig(num_threads=1)
    dev = TextFilterDataset.for_role(DataConfig(root=tiny_root), "eval")
    logged = meta["history"][-1]
    figures = dev_summary(model.to(memory_format=torch.channels_last), dev, cfg)
    assert logged["dev_thr@r95"] == pytest.approx(figures["dev_thr@r95"], abs=1e-5)
    live_model, _ = load_checkpoint(run / "student.pt")
    live_model.load_state_dict(live)
    assert not math.isclose(logged["dev_thr@r95"], dev_summary(live_model, dev, cfg)["dev_thr@r95"], abs_tol=1e-5)


def test_resume_continues_the_ema(tiny_root, tmp_path, monkeypatch):
    import training.loop as loop

    saves = loop.save_training_checkpoint

    def keep_first_epoch(path, model, optimizer, state, *args, **kwargs):  # the run stopped after epoch 1
        saves(path, model, optimizer, state, *args, **kwargs)
        if state.epoch == 1:
            shutil.copytree(tmp_path / "straight", tmp_path / "resumed", ignore=shutil.ignore_patterns("*.tmp-*"))

    monkeypatch.setattr(loop, "save_training_checkpoint", keep_first_epoch)
    flags = ("--ema_decay", "0.9", "--ema_start", "0")
    straight = _train(tiny_root, tmp_path / "straight", *flags)
    monkeypatch.setattr(loop, "save_training_checkpoint", saves)
    assert read_checkpoint(tmp_path / "resumed" / "last.pt")["loop"]["epoch"] == 1
    resumed = _train(tiny_root, tmp_path / "resumed", *flags, "--resume")
    assert {**resumed["loop"], "seconds": 0} == {**straight["loop"], "seconds": 0}
    _assert_same(resumed["live_state_dict"], straight["live_state_dict"], exact=False)
    _assert_same(resumed["state_dict"], straight["state_dict"], exact=False)
