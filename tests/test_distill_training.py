"""Tests of the teacher / distillation training front ends and the adversarial hook of
the engine, on a tiny generated data set (a few seconds each)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from model.registry import build_model, load_checkpoint, read_checkpoint, save_checkpoint
from training.config import AugmentConfig, DataConfig, SynthConfig, TrainConfig
from training.data import BalancedSampler, TextFilterDataset, batches
from training.engine import LoopState, build_discriminator_optimizer, build_optimizer, train_epoch
from training.loop import parse_model_config
from training.losses import build_objective
from tests.training_helpers import TINY

def tiny_batches(root: str, n: int = 8, batch_size: int = 4):
    cfg = DataConfig(root=root, synth=SynthConfig(enabled=False), crop_share=0.0, epoch_size=n,
                     augment=AugmentConfig(rotate_p=0, jpeg_p=0, zoom_p=0))
    ds = TextFilterDataset.for_split(cfg, "train", train=True)
    return list(batches(ds, BalancedSampler(ds, cfg), batch_size))


# --- the adversarial hook of the engine ------------------------------------------------------------

def test_adversarial_hook_alternates_and_keeps_discriminator_out_of_student_optimizer(tiny_root):
    torch.manual_seed(0)
    student = build_model("student")
    teacher = build_model("teacher", {"width": 0.125}).eval()
    cfg = TrainConfig(lr=1e-3, warmup_steps=1, losses=("kd:1.0", "began:0.2"))
    objective = build_objective(cfg.losses)
    began = objective.terms[1]
    optimizer = build_optimizer(student, cfg)
    disc_optimizer = build_discriminator_optimizer(objective, cfg)

    student_params = {id(p) for g in optimizer.param_groups for p in g["params"]}
    disc_params = {id(p) for p in began.discriminator.parameters()}
    assert disc_params and not (student_params & disc_params)
    assert {id(p) for g in disc_optimizer.param_groups for p in g["params"]} == disc_params
    assert disc_optimizer.param_groups[0]["lr"] == pytest.approx(2 * cfg.lr)

    events = []
    student_step, disc_step = optimizer.step, began.discriminator_step

    def record_student_step(*a, **k):
        events.append("student")
        return student_step(*a, **k)

    def record_disc_step(opt, s_feats, t_feats):
        assert opt is disc_optimizer
        assert not s_feats.requires_grad and not t_feats.requires_grad
        events.append("disc")
        return disc_step(opt, s_feats, t_feats)

    optimizer.step = record_student_step
    began.discriminator_step = record_disc_step
    d_before = [p.detach().clone() for p in began.discriminator.parameters()]
    t_before = [p.detach().clone() for p in teacher.parameters()]
    data = tiny_batches(tiny_root)
    losses = train_epoch(student, data, objective, optimizer, cfg, LoopState(), 8, teacher,
                         disc_optimizer=disc_optimizer)
    assert events == ["student", "disc"] * len(data)
    assert any(not torch.equal(a, b) for a, b in zip(d_before, began.discriminator.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(t_before, teacher.parameters()))  # teacher frozen
    assert 0.0 <= float(began.k) <= 1.0
    assert {"kd", "began", "began_d_loss", "began_k", "total"} <= set(losses)
    # the discriminator's lr follows the schedule at 2x the student's
    assert disc_optimizer.param_groups[0]["lr"] == pytest.approx(2 * optimizer.param_groups[0]["lr"])


def test_adversarial_terms_require_a_discriminator_optimizer(tiny_root):
    student, teacher = build_model("student"), build_model("teacher", {"width": 0.125}).eval()
    cfg = TrainConfig(losses=("began:0.2",))
    objective = build_objective(cfg.losses)
    with pytest.raises(ValueError, match="discriminator"):
        train_epoch(student, tiny_batches(tiny_root, 4), objective, build_optimizer(student, cfg), cfg,
                    LoopState(), 4, teacher)


def test_no_discriminator_optimizer_without_adversarial_terms():
    assert build_discriminator_optimizer(build_objective(("hard:1.0", "kd:1.0")), TrainConfig()) is None


# --- model config overrides -------------------------------------------------------------------------

def test_parse_model_config_types_values():
    assert parse_model_config("teacher", ["width=0.375", "embed_dim=32", "batch_norm=false"]) == \
        {"width": 0.375, "embed_dim": 32, "batch_norm": False}
    assert parse_model_config("student", ["channels=(8,8,8,8,8,8)"]) == {"channels": (8,) * 6}
    with pytest.raises(ValueError, match="key=value"):
        parse_model_config("teacher", ["depth=3"])
    with pytest.raises(ValueError, match="key=value"):
        parse_model_config("teacher", ["width"])
    assert parse_model_config("student", ["separable=1", "shared_mapper=off"]) == {"separable": True, "shared_mapper": False}
    with pytest.raises(ValueError, match="yes or no"):  # not silently False
        parse_model_config("student", ["separable=maybe"])


def test_teacher_config_override_round_trips_through_checkpoint(tmp_path):
    model = build_model("teacher", parse_model_config("teacher", ["width=0.125", "dropout=0.1"]))
    path = tmp_path / "teacher.pt"
    save_checkpoint(path, model, {})
    loaded, _ = load_checkpoint(path, expect="teacher")
    assert loaded.config.width == 0.125 and loaded.config.dropout == 0.1
    assert loaded.block5[1].out_channels == model.block5[1].out_channels == 64
    x = torch.randn(1, 3, 64, 96)
    model.eval()
    torch.testing.assert_close(loaded(x).logits, model(x).logits)


# --- the command-line front ends, end to end on the tiny data ---------------------------------------

def test_train_teacher_stores_width_and_resumes(tiny_teacher, tiny_root):
    from training import train_teacher

    model, meta = load_checkpoint(tiny_teacher, expect="teacher")
    assert model.config.width == 0.125
    assert meta["stage"] == "teacher" and list(meta["train_config"]["model_config"]) == ["width=0.125"]
    assert "optimizer" not in read_checkpoint(tiny_teacher)
    run_dir = str(Path(tiny_teacher).parent / "run")
    last = read_checkpoint(Path(run_dir) / "last.pt")
    assert last["loop"]["epoch"] == 1 and "optimizer" in last
    train_teacher.main(["--root", tiny_root, *TINY, "--epochs", "2", "--model_config", "width=0.125",
                        "--out_dir", run_dir, "--out", tiny_teacher, "--resume"])
    assert read_checkpoint(Path(run_dir) / "last.pt")["loop"]["epoch"] == 2
    assert [h["epoch"] for h in load_checkpoint(tiny_teacher)[1]["history"]] == [1, 2]


@pytest.mark.parametrize("stage", ["hard", "soft", "soft_adv"])
def test_distill_ablation_stages_run(stage, tiny_teacher, tiny_root, tmp_path):
    from training import distill

    out = tmp_path / f"{stage}.pt"
    distill.main(["--stage", stage, "--teacher", tiny_teacher, "--root", tiny_root, *TINY, "--epochs", "1",
                  "--out_dir", str(tmp_path / stage), "--out", str(out)])
    model, meta = load_checkpoint(out, expect="student")
    assert meta["stage"] == stage
    assert "optimizer" not in read_checkpoint(out)


def test_distill_with_an_ema_averages_the_student_only_and_resumes(tiny_teacher, tiny_root, tmp_path):
    from training import distill

    out = tmp_path / "soft_adv.pt"
    args = ["--stage", "soft_adv", "--teacher", tiny_teacher, "--root", tiny_root, *TINY, "--ema_decay", "0.9",
            "--ema_start", "0", "--out_dir", str(tmp_path / "run"), "--out", str(out)]
    distill.main([*args, "--epochs", "1"])
    last = read_checkpoint(tmp_path / "run" / "last.pt")
    assert last["live_state_dict"].keys() == last["state_dict"].keys() == build_model("student").state_dict().keys()
    assert "terms.1.k" in last["objective"] and "disc_optimizer" in last  # the discriminator as before
    distill.main([*args, "--epochs", "2", "--resume"])
    model, meta = load_checkpoint(out, expect="student")
    assert meta["ema"] == {"decay": 0.9, "start": 0.0} and [h["epoch"] for h in meta["history"]] == [1, 2]
    assert "dev_ap" in meta["history"][-1] and "live_state_dict" not in read_checkpoint(out)


def test_distill_ab_then_kd_with_discriminator_state(tiny_teacher, tiny_root, tmp_path):
    from training import distill

    ab = tmp_path / "ab.pt"
    distill.main(["--stage", "ab", "--teacher", tiny_teacher, "--root", tiny_root, *TINY, "--epochs", "1",
                  "--out_dir", str(tmp_path / "ab"), "--out", str(ab)])
    ab_model, ab_meta = load_checkpoint(ab, expect="student")
    assert list(ab_meta["train_config"]["losses"]) == ["ab:1.0"]

    kd = tmp_path / "kd.pt"
    args = ["--stage", "kd", "--teacher", tiny_teacher, "--init", str(ab), "--root", tiny_root, *TINY,
            "--out_dir", str(tmp_path / "kd"), "--out", str(kd)]
    distill.main([*args, "--epochs", "1"])
    model, meta = load_checkpoint(kd, expect="student")
    assert meta["init"] == str(ab) and list(meta["train_config"]["losses"]) == ["kd:1.0", "began:0.2"]
    saved = read_checkpoint(kd)
    assert "optimizer" not in saved and "disc_optimizer" not in saved and "objective" not in saved
    assert not any("discriminator" in k for k in saved["state_dict"])
    last = read_checkpoint(tmp_path / "kd" / "last.pt")
    assert "began_loss.k" not in last["objective"]  # keys are those of the Objective module
    assert "terms.1.k" in last["objective"] and "disc_optimizer" in last
    # resume continues with the discriminator and k_t it stopped with
    distill.main([*args, "--epochs", "2", "--resume"])
    assert read_checkpoint(tmp_path / "kd" / "last.pt")["loop"]["epoch"] == 2
    assert "loss_began_k" in load_checkpoint(kd)[1]["history"][-1]

    # the shipped-student contract: evaluate stores a threshold, the file stays small
    from training import evaluate

    evaluate.main(["--checkpoint", str(kd), "--root", tiny_root, "--write_threshold", "--plots", str(tmp_path / "p")])
    _, meta = load_checkpoint(kd, expect="student")
    assert 0.0 <= meta["threshold"] <= 1.0 and meta["score_rule"] == "max"
    assert kd.stat().st_size < 600_000
    # a threshold chosen for another score rule is stored with that rule, and read back by default
    figures = evaluate.main(["--checkpoint", str(kd), "--root", tiny_root, "--score_rule", "both_grids",
                             "--write_threshold", "--plots", str(tmp_path / "p")])
    _, meta = load_checkpoint(kd, expect="student")
    assert meta["score_rule"] == figures["score_rule"] == "both_grids"
    assert meta["threshold"] == figures["at_threshold"]["threshold"]
    assert evaluate.main(["--checkpoint", str(kd), "--root", tiny_root, "--plots", str(tmp_path / "p")])[
        "score_rule"] == "both_grids"


def test_train_student_front_end_still_works(tiny_root, tmp_path):
    from training import train_student

    out = tmp_path / "student.pt"
    train_student.main(["--root", tiny_root, *TINY, "--epochs", "1", "--out_dir", str(tmp_path / "s"),
                        "--out", str(out)])
    model, meta = load_checkpoint(out, expect="student")
    assert meta["stage"] == "hard" and list(meta["train_config"]["model_config"]) == []


def test_evaluate_writes_all_plots(tiny_root, tmp_path, student_checkpoint):
    from training import evaluate

    figures = evaluate.main(["--checkpoint", student_checkpoint, "--root", tiny_root, "--plots", str(tmp_path),
                             "--threshold", "0.999", "--target_recall", "0.5"])
    assert figures["at_threshold"]["threshold"] == 0.999
    target = figures["at_target"]  # the operating point a threshold set on these images gives
    assert target["threshold"] == figures["threshold_for_target"] and target["recall"] >= 0.5
    stem = Path(student_checkpoint).stem + "_dev"
    for suffix in ("pr", "scores", "per_source", "errors"):
        png = tmp_path / f"{stem}_{suffix}.png"
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / f"{stem}_eval.json").read_text())["n"] == figures["n"] == 4
    saved = np.load(tmp_path / f"{stem}_scores.npz")  # per image: path, source, label, score
    assert len(saved["paths"]) == len(saved["scores"]) == 4 and int(saved["labels"].sum()) == figures["n_text"]
    at = figures["at_threshold"]
    assert int(((saved["scores"] >= at["threshold"]) & (saved["labels"] == 1)).sum()) == at["tp"]
    assert figures["at_best_f"]["f1"] >= max(figures["at_threshold"]["f1"], figures["at_0.5"]["f1"])


def test_evaluate_split_all_scores_every_record_of_the_labels_file(tiny_root, tmp_path, student_checkpoint):
    from training import evaluate
    from training.data import load_records

    figures = evaluate.main(["--checkpoint", student_checkpoint, "--root", tiny_root, "--split", "all",
                             "--plots", str(tmp_path)])
    records = load_records(tiny_root)
    assert {r.split for r in records} == {"train", "dev"}
    assert figures["n"] == len(records) > 4
    assert figures["n_text"] == sum(r.label == 1 for r in records)
    assert (tmp_path / f"{Path(student_checkpoint).stem}_all_eval.json").is_file()


def test_evaluate_writes_under_runs_by_default_never_next_to_the_weights(tiny_root, tmp_path, student_checkpoint,
                                                                          monkeypatch):
    from training import evaluate

    monkeypatch.chdir(tmp_path)
    weights = Path(student_checkpoint).parent
    before = sorted(p.name for p in weights.iterdir())
    evaluate.main(["--checkpoint", student_checkpoint, "--root", tiny_root])
    stem = Path(student_checkpoint).stem
    assert (tmp_path / "runs" / "eval" / stem / f"{stem}_dev_eval.json").is_file()
    assert (tmp_path / "runs" / "eval" / stem / f"{stem}_dev_scores.png").is_file()
    assert sorted(p.name for p in weights.iterdir()) == before


def test_ablation_trains_missing_rows_and_writes_table(tiny_teacher, tiny_root, tmp_path):
    from training import ablation

    table = ablation.main(["--teacher", tiny_teacher, "--root", tiny_root, "--rows", "soft", "full",
                           "--epochs", "2", "--ab_epochs", "1", "--out_dir", str(tmp_path), *TINY])
    assert (tmp_path / "ablation.md").read_text() == table
    lines = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ")}
    assert "not run yet" in lines["hard"] and "not run yet" in lines["soft_adv"]
    assert "| 2 |" in lines["soft"] and "| 2 |" in lines["full"]  # same budget, AB epochs counted
    assert f"| {tiny_teacher} | 2 |" in lines["soft"] and f"| {tiny_teacher} | 2 |" in lines["full"]  # via init
    assert table.startswith(f"Teacher for rows trained now: `{tiny_teacher}`, ")
    assert load_checkpoint(tmp_path / "full.pt")[1]["init"] == str(tmp_path / "full_ab.pt")
    # a second call reuses the checkpoints and plugs in one trained elsewhere
    again = ablation.main(["--teacher", tiny_teacher, "--root", tiny_root, "--no_train", "--out_dir", str(tmp_path),
                           "--existing", f"hard={tmp_path / 'soft.pt'}"])
    hard = [line for line in again.splitlines() if line.startswith("| hard")][0]
    assert "not run yet" not in hard and f"| {tiny_teacher} |" in hard


def test_plateau_schedule_divides_lr_by_ten_when_loss_stops_improving():
    from training.engine import lr_at, plateau_update

    cfg = TrainConfig(lr=1e-3, schedule="plateau", warmup_steps=0, plateau_tol=0.01)
    state = LoopState()
    assert not plateau_update(state, 1.0, cfg) and state.best_loss == 1.0
    assert not plateau_update(state, 0.9, cfg)
    assert plateau_update(state, 0.895, cfg)  # < 1 % better: a plateau
    assert state.lr_scale == pytest.approx(0.1) and state.best_loss == 0.9
    assert lr_at(1000, 0.9, cfg, state.lr_scale) == pytest.approx(1e-4)
    assert not plateau_update(state, 0.5, TrainConfig(schedule="cosine"))


# --- devices, thread loader, time budget -----------------------------------------------------------

def test_resolve_device():
    from training.engine import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda")


def test_time_budget_stops_training_and_drives_the_schedule(tiny_root, tmp_path):
    from training import train_student
    from training.engine import budget_spent, lr_at

    out = tmp_path / "student.pt"
    train_student.main(["--root", tiny_root, *TINY, "--epochs", "1000", "--time_budget", "1.5", "--loader", "thread",
                        "--num_workers", "2", "--eval_every", "0", "--out_dir", str(tmp_path / "s"), "--out", str(out)])
    history = load_checkpoint(out)[1]["history"]
    last = read_checkpoint(tmp_path / "s" / "last.pt")["loop"]
    assert 1 <= len(history) < 1000 and last["epoch"] == len(history)
    assert last["seconds"] >= 1.5 and budget_spent(LoopState(**last), TrainConfig(time_budget=1.5))
    # on a time budget the cosine runs on elapsed time: half the time, half way down
    cfg = TrainConfig(lr=1.0, warmup_steps=0, min_lr_ratio=0.0, time_budget=10.0)
    assert lr_at(5, 0.5, cfg) == pytest.approx(0.5)


def test_compact_data_scales_images_and_boxes_alike(tiny_root, tmp_path):
    from model.regions import region_labels
    from training import compact_data
    from training.data import load_records

    compact_data.main(["--root", tiny_root, "--out", str(tmp_path), "--split", "train", "dev", "--short_edge", "32",
                       "--quality", "90"])
    before = {Path(r.path).stem: r for r in load_records(tiny_root)}
    after = load_records(tmp_path)
    assert len(after) == len(before) == 12
    for r in after:
        src = before[Path(r.path).stem]
        assert r.path.endswith(".webp") and (r.label, r.split, r.source) == (src.label, src.split, src.source)
        with Image.open(tmp_path / r.path) as img:
            assert min(img.size) == 32 and img.size == (48, 32)  # 96 x 64 -> 48 x 32
        np.testing.assert_array_equal(region_labels(r.boxes, 48, 32), region_labels(src.boxes, 96, 64))


def test_gpu_recipe_script_runs_every_stage_on_cpu(tiny_root, tmp_path):
    import os
    import subprocess
    import sys

    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "TEXTFILTER_DATA_ROOT": tiny_root, "DEVICE": "cpu",
           "OUT": str(out), "RUNS": str(tmp_path / "runs"), "TEACHER_WIDTH": "0.125", "TEACHER_EPOCHS": "1",
           "ROW_EPOCHS": "2", "LONG_EPOCHS": "2", "AB_EPOCHS": "1", "BUDGET": "280", "EXTRA": " ".join(TINY)}
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run(["bash", str(repo / "training" / "gpu_recipe.sh")], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert load_checkpoint(out / "teacher.pt", expect="teacher")[0].config.width == 0.125
    for row in ("hard", "soft", "soft_adv", "full", "long"):
        model, meta = load_checkpoint(out / f"{row}.pt", expect="student")
        assert "optimizer" not in read_checkpoint(out / f"{row}.pt")
    assert (out / "logs.tar.gz").stat().st_size > 0


def test_compact_data_skips_unreadable_images_loudly_and_never_overwrites(tiny_root, tmp_path, caplog):
    import shutil

    from training import compact_data
    from training.data import load_records

    root = tmp_path / "root"
    shutil.copytree(tiny_root, root)
    broken = load_records(root, split="train")[0].path
    (root / broken).write_bytes(b"not an image at all")
    out = tmp_path / "out"
    assert compact_data.main(["--root", str(root), "--out", str(out), "--split", "train"]) == 1
    kept = [r.path for r in load_records(out)]
    assert len(kept) == 7 and str(Path(broken).with_suffix(".webp")) not in kept
    assert any(broken in rec.getMessage() for rec in caplog.records if rec.levelname == "WARNING")
    with pytest.raises(SystemExit):  # a second call would drop the first call's labels
        compact_data.main(["--root", str(root), "--out", str(out), "--split", "dev"])
    assert len(load_records(out)) == 7
    with pytest.raises(SystemExit):
        compact_data.main(["--root", str(root), "--out", str(root)])


def test_distilling_with_the_teacher_memo_trains_the_same_student_with_fewer_teacher_runs(tiny_teacher, tiny_root,
                                                                                          tmp_path):
    from training import distill

    students = {}
    for memo in (False, True):
        out = tmp_path / f"memo{memo}.pt"
        distill.main(["--stage", "soft", "--teacher", tiny_teacher, "--root", tiny_root, *TINY, "--epochs", "2",
                      "--augment.flip_p", "0", *(["--teacher_memo"] if memo else []),
                      "--out_dir", str(tmp_path / f"run{memo}"), "--out", str(out)])
        students[memo] = load_checkpoint(out, expect="student")
    (plain, _), (memoised, meta) = students[False], students[True]
    for (name, a), b in zip(plain.state_dict().items(), memoised.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)
    # 16 draws of 8 training images without augmentation: at most one teacher forward per image
    (hits1, misses1), (hits2, misses2) = [(h["teacher_hits"], h["teacher_misses"]) for h in meta["history"]]
    assert hits1 + misses1 == 8 and hits2 + misses2 == 16 and misses2 <= 8 and hits2 >= 8
    assert meta["train_config"]["teacher_memo"] is True
