"""Cross-source validation (training.crossval), the records it selects, the reference recipe
and the one-cycle schedule, on tiny generated data sets (seconds)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch
import pytest

from model.registry import load_checkpoint
from training import crossval, metrics
from training.config import AugmentConfig, DataConfig, SynthConfig, TrainConfig
from training.data import IMAGE, Item, TextFilterDataset, collection_of, select_records, select_unlabelled
from training.engine import lr_at, one_cycle
from training.train_student import build_parser, parse, settings_argv
from tests.training_helpers import TINY, make_tiny_dataset


def two_collection_root(root: Path) -> str:
    """The tiny data set with its images spread over collections ``a`` and ``b``, each with
    text and non-text images (``a``'s text under the source ``a-pseudo``)."""
    make_tiny_dataset(root)
    lines = []
    for i, line in enumerate((root / "labels.jsonl").read_text().splitlines()):
        record = json.loads(line)
        collection = "a" if (i // 2) % 2 == 0 else "b"
        record["source"] = f"{collection}-pseudo" if collection == "a" and record["label"] else collection
        lines.append(json.dumps(record))
    (root / "labels.jsonl").write_text("\n".join(lines) + "\n")
    return str(root)


@pytest.fixture(scope="module")
def cv_root(tmp_path_factory) -> str:
    return two_collection_root(tmp_path_factory.mktemp("cv"))


def test_holdout_selects_whole_collections_across_splits(cv_root):
    cfg = DataConfig(root=cv_root, holdout=("a",))
    train, held = select_records(cfg, "train"), select_records(cfg, "eval")
    assert {collection_of(r.source) for r in held} == {"a"} and {r.source for r in held} == {"a", "a-pseudo"}
    assert {collection_of(r.source) for r in train} == {"b"}
    assert len(train) + len(held) == 12 and {r.split for r in held} == {"train", "dev"}
    by_split = DataConfig(root=cv_root)
    assert {r.split for r in select_records(by_split, "train")} == {"train"}
    with pytest.raises(ValueError, match="no records"):
        select_records(DataConfig(root=cv_root, holdout=("nowhere",)), "train")


def test_pools_are_read_beside_the_data_root(cv_root, tmp_path):
    pool = Path(two_collection_root(tmp_path / "pool"))
    lines = [json.dumps({**json.loads(line), "source": "pooled"})
             for line in (pool / "labels.jsonl").read_text().splitlines()]
    (pool / "labels.jsonl").write_text("\n".join(lines) + "\n")
    cfg = DataConfig(root=cv_root, pools=(str(pool),), holdout=("pooled",))
    held = select_records(cfg, "eval")
    assert len(held) == 12 and all(Path(r.path).is_absolute() and Path(r.path).is_file() for r in held)
    ds = TextFilterDataset.for_role(cfg, "eval")
    assert ds[ds.items()[0]].image.shape[2] == 3  # read from the pool's own folder


def test_eval_pools_are_scored_but_never_trained_on(cv_root, tmp_path):
    pool = Path(two_collection_root(tmp_path / "pool"))
    lines = [json.dumps({**json.loads(line), "source": "p-" + json.loads(line)["source"]})
             for line in (pool / "labels.jsonl").read_text().splitlines()]
    (pool / "labels.jsonl").write_text("\n".join(lines) + "\n")
    plain = DataConfig(root=cv_root)
    # a fold holding out a pool collection, for a recipe that does not train on the pool
    cfg = DataConfig(root=cv_root, eval_pools=(str(pool),), holdout=("p-a", "a"))
    train, held = select_records(cfg, "train"), select_records(cfg, "eval")
    assert {r.source for r in train} == {"b"}  # neither the pool's p-b nor anything held out
    assert {collection_of(r.source) for r in held} == {"a", "p-a"}
    assert sum(Path(r.path).is_relative_to(pool.resolve()) for r in held) == 6
    # by split: the pool's dev records are scored, its train records are not trained on
    by_split = DataConfig(root=cv_root, eval_pools=(str(pool),))
    assert select_records(by_split, "train") == select_records(plain, "train")
    assert len(select_records(by_split, "eval")) == 2 * len(select_records(plain, "eval"))
    # a pool both trained on and scored is read once
    both = DataConfig(root=cv_root, pools=(str(pool),), eval_pools=(str(pool),), holdout=("p-a",))
    assert len(select_records(both, "eval")) == 6 and len(select_records(both, "train")) == 18


def unlabelled_pool(root: Path) -> str:
    """A pool whose unlabelled.jsonl holds the tiny data set's 12 images, unlabelled, as the rests
    of collections ``a`` and ``b`` (``a-rest``, ``b-rest``), both splits."""
    two_collection_root(root)
    lines = [json.dumps({**d, "label": -1, "boxes": [], "source": collection_of(d["source"]) + "-rest"})
             for d in map(json.loads, (root / "labels.jsonl").read_text().splitlines())]
    (root / "unlabelled.jsonl").write_text("\n".join(lines) + "\n")
    (root / "labels.jsonl").unlink()
    return str(root)


def test_unlabelled_records_are_trained_on_only_outside_the_held_out_collections(cv_root, tmp_path):
    pool = unlabelled_pool(tmp_path / "unl")
    cfg = DataConfig(root=cv_root, unlabelled_pools=(pool,), unlabelled_share=0.5, holdout=("a",))
    assert collection_of("a-rest") == "a" and collection_of("a-pseudo") == "a"
    unlabelled = select_unlabelled(cfg)
    assert len(unlabelled) == 6 and {r.source for r in unlabelled} == {"b-rest"}
    assert all(Path(r.path).is_absolute() and Path(r.path).is_file() and r.label == -1 for r in unlabelled)
    train, held = TextFilterDataset.for_role(cfg, "train"), TextFilterDataset.for_role(cfg, "eval")
    assert [r.source for r in train.records[-6:]] == ["b-rest"] * 6 and len(train) == 12
    assert {r.label for r in held.records} == {0, 1} and len(held) == 6  # never scored on
    by_split = DataConfig(root=cv_root, unlabelled_pools=(pool,))
    assert {r.split for r in select_unlabelled(by_split)} == {"train"} and len(select_unlabelled(by_split)) == 8
    assert select_unlabelled(DataConfig(root=cv_root)) == []
    labelled = Path(pool) / "unlabelled.jsonl"
    labelled.write_text(labelled.read_text().replace('"label": -1', '"label": 0', 1))
    with pytest.raises(ValueError, match="holds 1 records with a label"):
        select_unlabelled(cfg)


def test_flip_only_training_decodes_once_and_mirrors_labels(cv_root):
    cfg = DataConfig(root=cv_root, fixed_long_edge=341, synth=SynthConfig(enabled=False), crop_share=0.0,
                     augment=AugmentConfig(flip_p=0.5, rotate_p=0, zoom_p=0, jpeg_p=0))
    ds = TextFilterDataset.for_role(cfg, "train")
    text = next(i for i, r in enumerate(ds.records) if r.label == 1)
    seeds = {}
    for seed in range(40):  # find a seed that flips and one that does not
        flipped = np.random.default_rng(seed).random() < 0.5
        seeds.setdefault(flipped, seed)
    plain, mirrored = ds[Item(IMAGE, text, seeds[False])], ds[Item(IMAGE, text, seeds[True])]
    assert plain.image.shape == (256, 341, 3) and list(ds.decoded) == [text]
    assert np.array_equal(mirrored.image, plain.image[:, ::-1])
    mirror = np.concatenate([plain.labels[:25].reshape(5, 5)[:, ::-1].ravel(),
                             plain.labels[25:].reshape(3, 3)[:, ::-1].ravel()])
    assert np.array_equal(mirrored.labels, mirror) and plain.labels.any()
    rotating = DataConfig(root=cv_root, augment=AugmentConfig(rotate_p=0.5))
    assert TextFilterDataset.for_role(rotating, "train").decoded is None  # other augmentations: no cache


def test_one_cycle_schedule():
    cfg = TrainConfig(lr=2e-3, schedule="onecycle", warmup_steps=0)
    assert lr_at(0, 0.0, cfg) == pytest.approx(2e-3 / 25)
    assert lr_at(0, 0.3, cfg) == pytest.approx(2e-3)
    assert lr_at(0, 1.0, cfg) == pytest.approx(2e-3 / 25 / 1e4)
    assert one_cycle(0.15) < one_cycle(0.3) and one_cycle(0.65) < one_cycle(0.3)


def test_reference_recipe_and_settings():
    _, train_cfg, data_cfg, _ = parse(build_parser(), ["--recipe", "reference"])
    assert (train_cfg.schedule, train_cfg.batch_size, data_cfg.fixed_long_edge) == ("onecycle", 32, 341)
    assert not data_cfg.synth.enabled and data_cfg.augment.rotate_p == 0 and data_cfg.crop_share == 0
    argv = settings_argv({"fixed_long_edge": "0", "synth.enabled": "true", "augment.jpeg_quality": "90,95",
                          "model_config": "strides=2,2,2,2,1,2 pool_after= shared_mapper=false"})
    _, train_cfg, data_cfg, _ = parse(build_parser(), ["--recipe", "reference", *argv, "--lr", "1e-3"])
    assert data_cfg.fixed_long_edge == 0 and data_cfg.synth.enabled and data_cfg.augment.jpeg_quality == (90, 95)
    assert train_cfg.model_config == ("strides=2,2,2,2,1,2", "pool_after=", "shared_mapper=false")
    assert train_cfg.lr == 1e-3  # flags after the recipe win
    argv = settings_argv({"losses": "hard:1.0,kd:0.5", "unlabelled_pools": "/p/u", "unlabelled_share": "0.3"})
    _, train_cfg, data_cfg, _ = parse(build_parser(), ["--recipe", "reference", *argv])
    assert train_cfg.losses == ("hard:1.0", "kd:0.5")
    assert data_cfg.unlabelled_pools == ("/p/u",) and data_cfg.unlabelled_share == 0.3
    assert not data_cfg.unlabelled_views  # unlabelled draws augmented like labelled ones unless asked
    argv = settings_argv({"unlabelled_views": "true", "unlabelled_augment.zoom_p": "0.6", "unlabelled_augment.colour_p": "0.8",
                          "unlabelled_mix": "cutmix", "unlabelled_mix_p": "0.5"})
    _, _, views_data, _ = parse(build_parser(), ["--recipe", "reference_wide", *argv])
    assert views_data.unlabelled_mix == "cutmix" and views_data.unlabelled_mix_p == 0.5
    assert views_data.unlabelled_views and views_data.unlabelled_augment.zoom_p == 0.6
    assert views_data.unlabelled_augment.colour_p == 0.8 and views_data.augment.zoom_p == 0.0  # labelled: the recipe's
    # reference_wide: the same recipe, only the layout differs
    _, wide_cfg, wide_data, _ = parse(build_parser(), ["--recipe", "reference_wide"])
    _, ref_cfg, ref_data, _ = parse(build_parser(), ["--recipe", "reference_fast"])
    assert wide_cfg.model_config[0] == "channels=16,16,32,48,72,72" and wide_cfg.model_config[1:] == ref_cfg.model_config[1:]
    assert (wide_cfg.lr, wide_cfg.epochs, wide_data) == (ref_cfg.lr, ref_cfg.epochs, ref_data)
    # reference_separable: the same recipe on the separable layout
    _, sep_cfg, sep_data, _ = parse(build_parser(), ["--recipe", "reference_separable"])
    assert "separable=true" in sep_cfg.model_config and sep_data == wide_data
    assert dataclasses.replace(sep_cfg, model_config=wide_cfg.model_config) == wide_cfg
    # reference_wide96: the same recipe; wider last convolutions, the sixth separable
    _, w96_cfg, w96_data, _ = parse(build_parser(), ["--recipe", "reference_wide96"])
    assert "channels=16,16,32,64,96,96" in w96_cfg.model_config and "separable_convs=6" in w96_cfg.model_config
    assert dataclasses.replace(w96_cfg, model_config=wide_cfg.model_config) == wide_cfg and w96_data == wide_data
    # captions_colour: reference_wide plus captions and colour jitter, nothing else
    _, cap_cfg, cap_data, _ = parse(build_parser(), ["--recipe", "captions_colour"])
    assert cap_cfg == wide_cfg
    assert cap_data.synth.enabled and (cap_data.synth.share, cap_data.synth.caption_share, cap_data.synth.page_share) == (0.15, 1.0, 0.0)
    assert (cap_data.augment.colour_p, cap_data.augment.gray_p, cap_data.augment.blur_p) == (0.8, 0.1, 0.0)
    assert dataclasses.replace(cap_data, synth=wide_data.synth, augment=wide_data.augment) == wide_data


def test_rejection_and_recall_at_operating_points():
    labels = np.array([1] * 20 + [0] * 10)
    scores = np.concatenate([np.linspace(0.5, 1.0, 20), np.linspace(0.0, 0.9, 10)])
    threshold, rejection = metrics.rejection_at_recall(scores, labels, 0.95)
    assert (scores[labels == 1] >= threshold).mean() >= 0.95
    assert rejection == pytest.approx((scores[labels == 0] < threshold).mean())
    threshold, recall = metrics.recall_at_rejection(scores, labels, 0.9)
    assert (scores[labels == 0] < threshold).mean() >= 0.9
    assert recall == pytest.approx((scores[labels == 1] >= threshold).mean())
    assert metrics.decision_flips(np.array([0.1, 0.6, 0.7]), np.array([0.1, 0.4, 0.8]), 0.5) == pytest.approx(1 / 3)


def test_crossval_trains_scores_and_resumes_folds(cv_root, tmp_path):
    out = tmp_path / "cv"
    argv = ["run", "--name", "ref", "--recipe", "reference", "--seeds", "0", "--folds", "dev", "a",
            "--out_dir", str(out), "--num_threads", "1", "--num_workers", "0",
            "--set", "epochs=1", "--extra", "--root", cv_root, *TINY]
    crossval.main(argv)
    result = json.loads((out / "ref" / "a-s0" / "result.json").read_text())
    fig = result["rules"]["max"]
    assert (fig["n_text"], fig["n_non_text"]) == (3, 3)  # collection a: text in a-pseudo, both splits
    assert 0 <= fig["reject@r95"] <= 1 and 0 <= fig["jpeg95_flips"] <= 1 and set(result["rules"]) == {"max", "both_grids"}
    model, meta = load_checkpoint(out / "ref" / "a-s0" / "student.pt")
    assert tuple(meta["data_config"]["holdout"]) == ("a",) and meta["preprocess"]["fixed_long_edge"] == 341
    assert meta["recipe"] == "reference" and sum(p.numel() for p in model.parameters()) == 76_529
    scores = np.load(out / "ref" / "a-s0" / "scores.npz")
    assert scores["probs"].shape == scores["probs_jpeg95"].shape == (6, 34)

    stamp = (out / "ref" / "a-s0" / "student.pt").stat().st_mtime_ns
    crossval.main(argv)  # finished folds are not trained again
    assert (out / "ref" / "a-s0" / "student.pt").stat().st_mtime_ns == stamp
    summary = crossval.add_pooled(crossval.summarise(crossval.load_results(out)), out)
    assert summary["ref"]["source_folds"] == ["a"] and summary["ref"]["n_complete_seeds"] == 1
    assert summary["ref"]["pooled"]["ap"] == pytest.approx(fig["ap"])  # one source fold: pooled = that fold
    table = crossval.markdown_table(summary)
    assert table.splitlines()[2].startswith("| ref | 1 |") and "dev" in table.splitlines()[0]


def test_crossval_fine_tunes_from_an_init_checkpoint(cv_root, tmp_path):
    out = tmp_path / "cv"
    common = ["--recipe", "reference", "--seeds", "0", "--folds", "a", "--out_dir", str(out), "--num_threads", "1",
              "--num_workers", "0"]
    crossval.main(["run", "--name", "base", *common, "--set", "epochs=1", "--extra", "--root", cv_root, *TINY])
    base = out / "base" / "a-s0" / "student.pt"
    template = str(out / "base" / "{fold}-s{seed}" / "student.pt")
    tuned = ["run", "--name", "tuned", *common, "--set", "epochs=1", "lr=0", "--init", template]
    extra = ["--extra", "--root", cv_root, *TINY]
    # seed 1 has no stage-1 checkpoint: refused before anything is trained, seed 0 included
    with pytest.raises(FileNotFoundError, match="no init checkpoint .*a-s1.* for fold a seed 1"):
        crossval.main([*tuned, "--seeds", "0", "1", *extra])
    assert not (out / "tuned").exists()
    with pytest.raises(ValueError, match="--init given twice"):
        crossval.main([*tuned, *extra, "--init", str(base)])
    # a zero learning rate leaves the initial weights as they are: they are the base's, not a fresh init
    crossval.main([*tuned, *extra])
    start, _ = load_checkpoint(base)
    tuned, meta = load_checkpoint(out / "tuned" / "a-s0" / "student.pt")
    assert meta["init"] == str(base)
    weights = [k for k, v in start.state_dict().items() if k.endswith("weight") and v.dim() == 4]
    assert weights and all(torch.equal(start.state_dict()[k], tuned.state_dict()[k]) for k in weights)


def test_table_keeps_the_folds_asked_for(cv_root, tmp_path, capsys):
    out = tmp_path / "cv"
    crossval.main(["run", "--name", "ref", "--recipe", "reference", "--seeds", "0", "--folds", "a", "b",
                   "--out_dir", str(out), "--num_threads", "1", "--num_workers", "0",
                   "--set", "epochs=1", "--extra", "--root", cv_root, *TINY])
    capsys.readouterr()
    crossval.main(["table", "--out_dir", str(out), "--folds", "b"])
    head, _, row = capsys.readouterr().out.splitlines()[:3]
    b = json.loads((out / "ref" / "b-s0" / "result.json").read_text())["rules"]["max"]
    assert "b: AP" in head and "a: AP" not in head
    assert row.split(" | ")[2] == f"{b['ap']:.3f}"  # the mean over fold b alone
    capsys.readouterr()

    # per held-out collection: a-pseudo counts as a; figures at the fold's own threshold
    per = crossval.collection_figures(out, "ref")
    assert set(per) == {"a", "b"} and per["a"]["fold"] == "a" and per["b"]["fold"] == "b"
    scores = np.load(out / "ref" / "b-s0" / "scores.npz")
    values = crossval.image_score(scores["probs"], "max")
    labels = scores["image_labels"].astype(bool)
    assert (per["b"]["n_text"], per["b"]["n_non_text"]) == (int(labels.sum()), int((~labels).sum()))
    assert per["b"]["recall"] == pytest.approx(float((values[labels] >= b["thr@r95"]).mean()))
    assert per["b"]["rejection"] == pytest.approx(b["reject@r95"])  # one collection: the fold's own figure
    crossval.main(["collections", "--out_dir", str(out), "--names", "ref", "--folds", "a"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[2].startswith("| a | a |")


def test_crossval_distils_from_a_per_fold_teacher_on_unlabelled_images(cv_root, tmp_path):
    out = tmp_path / "cv"
    common = ["--recipe", "reference", "--seeds", "0", "--out_dir", str(out), "--num_threads", "1",
              "--num_workers", "0"]
    extra = ["--extra", "--root", cv_root, *TINY]
    crossval.main(["run", "--name", "ref", "--folds", "a", *common, "--set", "epochs=1", *extra])
    template = str(out / "ref" / "{fold}-s{seed}" / "student.pt")
    assert crossval.run_checkpoint(template, "a", 0) == out / "ref" / "a-s0" / "student.pt"
    with pytest.raises(ValueError, match="only {fold} and {seed}"):
        crossval.run_checkpoint(str(out / "{folds}.pt"), "a", 0)

    pool = unlabelled_pool(tmp_path / "unl")
    kd = ["--set", "epochs=1", "losses=hard:1.0,kd:1.0", "unlabelled_share=0.5", *extra, "--unlabelled_pools", pool]
    # fold b has no teacher yet: refused before anything is trained, fold a included
    with pytest.raises(FileNotFoundError, match="no teacher checkpoint .*b-s0.* for fold b seed 0"):
        crossval.main(["run", "--name", "kd", "--folds", "a", "b", "--teacher", template, *common, *kd])
    assert not (out / "kd").exists()
    with pytest.raises(ValueError, match="need a teacher"):
        crossval.main(["run", "--name", "kd", "--folds", "a", *common, *kd])
    with pytest.raises(ValueError, match="use no teacher"):
        crossval.main(["run", "--name", "hard", "--folds", "a", "--teacher", template, *common, "--set", "epochs=1",
                       *extra])

    crossval.main(["run", "--name", "kd", "--folds", "a", "--teacher", template, *common, *kd])
    result = json.loads((out / "kd" / "a-s0" / "result.json").read_text())
    assert result["teacher"] == str(out / "ref" / "a-s0" / "student.pt")
    assert result["rules"]["max"]["n_text"] + result["rules"]["max"]["n_non_text"] == 6  # unlabelled never scored
    _, meta = load_checkpoint(out / "kd" / "a-s0" / "student.pt")
    assert meta["teacher"] == result["teacher"] and meta["stage"] == "distill"
    assert list(meta["train_config"]["losses"]) == ["hard:1.0", "kd:1.0"]
    assert meta["data_config"]["unlabelled_share"] == 0.5 and tuple(meta["data_config"]["unlabelled_pools"]) == (pool,)
    assert "loss_kd" in meta["history"][-1]


def test_crossval_distils_from_an_ensemble_of_seeds_and_scores_the_ensemble(cv_root, tmp_path, capsys):
    out = tmp_path / "cv"
    common = ["--recipe", "reference", "--out_dir", str(out), "--num_threads", "1", "--num_workers", "0"]
    extra = ["--extra", "--root", cv_root, *TINY]
    crossval.main(["run", "--name", "ref", "--folds", "a", "--seeds", "0", "1", *common, "--set", "epochs=1", *extra])
    capsys.readouterr()

    # the ensemble row: mean region probabilities of both seeds, image by image
    crossval.main(["ensemble", "--name", "ens", "--members", "ref", "--seeds", "0", "1", "--folds", "a",
                   "--out_dir", str(out)])
    assert "| ens |" in capsys.readouterr().out
    runs = [np.load(out / "ref" / f"a-s{s}" / "scores.npz") for s in (0, 1)]
    ens = np.load(out / "ens" / "a-s0" / "scores.npz")
    for k, path in enumerate(ens["paths"]):
        rows = [r["probs"][list(r["paths"]).index(path)] for r in runs]
        assert np.allclose(ens["probs"][k], np.mean(rows, axis=0))
    result = json.loads((out / "ens" / "a-s0" / "result.json").read_text())
    labels, scores = ens["image_labels"], crossval.image_score(ens["probs"], "max")
    assert result["rules"]["max"]["ap"] == pytest.approx(metrics.average_precision(scores, labels))
    assert result["settings"] == {"members": ["ref"], "seeds": [0, 1]}
    with pytest.raises(FileNotFoundError, match="no held-out scores .*b-s0"):
        crossval.main(["ensemble", "--name", "ens", "--members", "ref", "--seeds", "0", "--folds", "b",
                       "--out_dir", str(out)])

    # distillation from the ensemble of both seeds' students
    templates = [str(out / "ref" / "{fold}-s0" / "student.pt"), str(out / "ref" / "{fold}-s1" / "student.pt")]
    crossval.main(["run", "--name", "kd", "--folds", "a", "--seeds", "0", "--teacher", *templates, *common,
                   "--set", "epochs=1", "losses=hard:1.0,kd:1.0", *extra])
    result = json.loads((out / "kd" / "a-s0" / "result.json").read_text())
    assert result["teacher"] == [t.format(fold="a") for t in templates]
    _, meta = load_checkpoint(out / "kd" / "a-s0" / "student.pt")
    assert meta["teacher"] == result["teacher"] and "loss_kd" in meta["history"][-1]


def test_table_from_results_alone(cv_root, tmp_path, capsys):
    """An archive of result.json files (what docs/crossval keeps) gives the table without pooled figures."""
    out = tmp_path / "cv"
    crossval.main(["run", "--name", "ref", "--recipe", "reference", "--seeds", "0", "--folds", "a",
                   "--out_dir", str(out), "--num_threads", "1", "--num_workers", "0",
                   "--set", "epochs=1", "--extra", "--root", cv_root, *TINY])
    archive = tmp_path / "archive" / "ref" / "a-s0"
    archive.mkdir(parents=True)
    (archive / "result.json").write_text((out / "ref" / "a-s0" / "result.json").read_text())
    capsys.readouterr()
    crossval.main(["table", "--out_dir", str(tmp_path / "archive")])
    row = capsys.readouterr().out.splitlines()[2].split(" | ")
    fig = json.loads((archive / "result.json").read_text())["rules"]["max"]
    assert row[:3] == ["| ref", "1", f"{fig['ap']:.3f}"] and row[6] == "-"  # no scores: no pooled figures
    with pytest.raises(SystemExit):  # nor per-collection figures: a clear error, not a traceback
        crossval.main(["collections", "--out_dir", str(tmp_path / "archive"), "--names", "ref"])
    assert "no held-out scores (scores.npz) of ref" in capsys.readouterr().err


def _result(name, fold, seed, rejection):
    figures = {"ap": 0.9, "reject@r95": rejection, "recall@rej90": 0.5, "jpeg95_flips": 0.0}
    return {"name": name, "recipe": "reference", "settings": {}, "fold": fold, "seed": seed, "rules": {"max": figures}}


def test_verdict_counts_a_win_only_beyond_the_seed_spread():
    results = [_result("ref", f, s, r) for (f, s, r) in [("a", 0, 0.50), ("b", 0, 0.30), ("a", 1, 0.54), ("b", 1, 0.30)]]
    results += [_result("big", f, s, r + 0.10) for (f, s, r) in [("a", 0, 0.50), ("b", 0, 0.30), ("a", 1, 0.52), ("b", 1, 0.30)]]
    results += [_result("small", f, s, r + 0.01) for (f, s, r) in [("a", 0, 0.50), ("b", 0, 0.30), ("a", 1, 0.54), ("b", 1, 0.30)]]
    results += [_result("worse", f, 0, 0.1) for f in "ab"] + [_result("worse", f, 1, 0.12) for f in "ab"]
    results += [_result("one_seed", f, 0, 0.9) for f in "ab"] + [_result("one_fold", "a", s, 0.9) for s in (0, 1)]
    summary = crossval.summarise(results)
    assert summary["ref"]["spread"]["reject@r95"] == pytest.approx(0.01)  # seed means 0.40 / 0.42
    assert crossval.verdict(summary["big"], summary["ref"]).endswith("win (spread 0.010)")
    assert crossval.verdict(summary["small"], summary["ref"]).startswith("+0.010 level")  # not more than the spread
    assert " loss " in crossval.verdict(summary["worse"], summary["ref"])
    assert crossval.verdict(summary["one_seed"], summary["ref"]) == "needs 2 seeds"
    assert crossval.verdict(summary["one_fold"], summary["ref"]) == "other folds"
    table = crossval.markdown_table(summary, ["ref", "big"], baseline="ref").splitlines()
    assert "vs ref: rej@r95" in table[0] and "| baseline |" in table[2] and "win" in table[3]


def test_table_names_a_missing_baseline(tmp_path, capsys):
    with pytest.raises(SystemExit):
        crossval.main(["table", "--out_dir", str(tmp_path), "--baseline", "nope"])
    assert "--baseline nope: no results of that name" in capsys.readouterr().err


def _scored_run(out_dir, name, fold, seed, text_probs, non_text_probs):
    """A run written as ``crossval run`` writes it, from given region probabilities."""
    probs = np.array([[p] * 34 for p in [*text_probs, *non_text_probs]], dtype=np.float32)
    labels = np.array([1] * len(text_probs) + [0] * len(non_text_probs))
    pred = {"probs": probs, "probs_jpeg95": probs, "image_labels": labels,
            "sources": np.array([fold] * len(labels)), "paths": np.array([f"{fold}/{i}.jpg" for i in range(len(labels))])}
    return crossval.write_run(crossval.run_dir(out_dir, name, fold, seed), pred,
                              {"name": name, "recipe": "reference", "settings": {}, "fold": fold, "seed": seed,
                               "teacher": None, "train_seconds": 0.0})


def test_table_over_several_run_directories_takes_each_run_from_the_last(tmp_path, capsys):
    """Archives of earlier sessions and the live runs make one table; a rerun replaces the run it repeats."""
    old, new = tmp_path / "session1", tmp_path / "runs"
    _scored_run(old, "ref", "a", 0, [0.9, 0.8], [0.85, 0.1])  # half the non-text rejected at recall 1
    _scored_run(old, "ref", "b", 0, [0.9, 0.8], [0.1, 0.2])
    for path in old.glob("*/*/scores.npz"):
        path.unlink()  # an archive keeps result.json only
    _scored_run(new, "ref", "a", 0, [0.9, 0.8], [0.1, 0.2])  # the rerun of fold a rejects everything
    _scored_run(old, "other", "a", 0, [0.9], [0.1])  # a row only the archive has

    results = crossval.load_results([old, new])
    assert sorted((r["name"], r["fold"]) for r in results) == [("other", "a"), ("ref", "a"), ("ref", "b")]
    ref_a = next(r for r in results if (r["name"], r["fold"]) == ("ref", "a"))
    assert ref_a["rules"]["max"]["reject@r95"] == 1.0  # from the last directory, not the archive's 0.5
    assert crossval.find_run([old, new], "ref", "a", 0) == crossval.run_dir(new, "ref", "a", 0)
    assert crossval.find_run([old, new], "ref", "b", 0) == crossval.run_dir(old, "ref", "b", 0)
    assert crossval.find_run([old, new], "ref", "c", 0) is None
    summary = crossval.add_pooled(crossval.summarise(results), [old, new])
    assert summary["ref"]["fold_means"]["a"]["reject@r95"] == 1.0
    assert summary["ref"]["pooled"] is None  # fold b's scores were not kept

    _scored_run(new, "ref", "b", 0, [0.9, 0.8], [0.1, 0.95])  # now both folds have scores in runs/
    summary = crossval.add_pooled(crossval.summarise(crossval.load_results([old, new])), [old, new])
    assert summary["ref"]["pooled"]["reject@r95"] == pytest.approx(0.75)  # 3 of 4 non-text below the pooled threshold
    crossval.main(["table", "--out_dir", str(old), str(new)])
    lines = capsys.readouterr().out.splitlines()
    assert sorted(line.split(" | ")[0] for line in lines[2:]) == ["| other", "| ref"]
    assert "0.750" in next(line for line in lines if line.startswith("| ref |"))
