"""training.select: candidates scored on a held-out pool, each batch decoded once, ranked by rejection."""

import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from model import build_model, save_checkpoint
from training import metrics
from training.config import DataConfig
from training.data import TextFilterDataset, batches
from training.engine import predict, predict_many
from training.select import (candidate_names, main, rank_correlation, recipe_summary, recipes_of,
                            split_half_consistency)


def _pool(root, portrait=False):
    """12 images of three collections: text blocks, and two kinds of plain non-text photo
    (``portrait``: every fourth one 60x90, so batches come out grouped by shape)."""
    (root / "images").mkdir(parents=True)
    lines = []
    for i in range(12):
        source = ("blocks", "sky", "grass")[i % 3]
        img = Image.new("RGB", (60, 90) if portrait and i % 4 == 1 else (90, 60), {"blocks": (30, 30, 30), "sky": (90, 140, 230), "grass": (40, 160, 50)}[source])
        boxes = []
        if source == "blocks":
            ImageDraw.Draw(img).rectangle([8, 8, 70, 30], fill=(250, 250, 250))
            boxes = [[8, 8, 71, 8, 71, 31, 8, 31]]
        img = Image.fromarray(np.clip(np.asarray(img, int) + 7 * i, 0, 255).astype(np.uint8))
        img.save(root / "images" / f"{i}.png")
        lines.append(json.dumps({"path": f"images/{i}.png", "label": int(source == "blocks"), "boxes": boxes,
                                 "ignore": [], "source": source, "split": "train"}))
    (root / "labels.jsonl").write_text("\n".join(lines) + "\n")
    return str(root)


def _students(tmp_path, n=3, **config):
    paths = []
    for seed in range(n):
        torch.manual_seed(seed)
        path = tmp_path / f"s{seed}" / "student.pt"
        path.parent.mkdir()
        save_checkpoint(path, build_model("student", **config), {})
        paths.append(str(path))
    return paths


def test_predict_many_equals_predict_per_model(tiny_root):
    torch.manual_seed(0)
    models = {"a": build_model("student"), "b": build_model("student")}
    dataset = TextFilterDataset.for_split(DataConfig(root=tiny_root), "dev", train=False)
    together = predict_many(models, batches(dataset, dataset.items(), 3))
    for name, model in models.items():
        alone = predict(model, batches(dataset, dataset.items(), 3))
        assert np.allclose(together["probs"][name], alone["probs"], atol=1e-6)
        assert together["paths"] == alone["paths"] and (together["image_labels"] == alone["image_labels"]).all()


def test_select_ranks_candidates_by_rejection_on_the_pool(tiny_root, tmp_path):
    pool = _pool(tmp_path / "pool")
    paths = _students(tmp_path)
    out = tmp_path / "out"
    result = main([*paths, "--root", pool, "--threshold_root", tiny_root, "--threshold_recall", "0.5",
                   "--target_recall", "0.75", "--out", str(out)])
    cands = result["candidates"]
    assert sorted(cands) == ["s0", "s1", "s2"] and result["n"] == 12 and result["n_text"] == 4
    assert result["pick"] == max(cands, key=lambda n: (cands[n]["rejection_here"], cands[n]["ap"]))
    for name, c in cands.items():  # every figure follows from the saved per-image scores
        saved = np.load(out / f"{name}_scores.npz")
        s, y, src = saved["scores"], saved["labels"], saved["sources"]
        assert len(s) == 12 and int(y.sum()) == 4
        assert c["threshold_here"] == metrics.threshold_for_recall(s, y, 0.75)
        assert c["rejection_here"] == pytest.approx((s[y == 0] < c["threshold_here"]).mean())
        assert c["recall_at_threshold"] == pytest.approx((s[y == 1] >= c["threshold"]).mean())
        assert set(c["rejection_by_source"]) == {"sky", "grass"}
        assert c["rejection_by_source"]["sky"] == pytest.approx((s[src == "sky"] < c["threshold_here"]).mean())
    table = (out / "select.md").read_text()
    assert f"| {result['pick']} (pick) |" in table and "| grass | sky |" in table
    assert json.loads((out / "select.json").read_text())["pick"] == result["pick"]


def test_ensembles_are_scored_beside_the_candidates_and_never_picked(tiny_root, tmp_path):
    pool = _pool(tmp_path / "pool")
    paths = _students(tmp_path)
    out = tmp_path / "out"
    result = main([*paths, "--root", pool, "--threshold_root", tiny_root, "--threshold_recall", "0.5",
                   "--ensemble", "alone=s1", "pair=s0,s2", "--out", str(out)])
    cands = result["candidates"]
    assert cands["pair"]["members"] == ["s0", "s2"] and cands["pair"]["checkpoint"] is None
    assert result["pick"] in ("s0", "s1", "s2")  # an ensemble is not a shippable student
    alone, s1 = np.load(out / "alone_scores.npz")["scores"], np.load(out / "s1_scores.npz")["scores"]
    assert np.allclose(alone, s1)  # the mean of one member is that member
    pair, s0, s2 = (np.load(out / f"{n}_scores.npz")["scores"] for n in ("pair", "s0", "s2"))
    assert (pair <= np.maximum(s0, s2) + 1e-6).all() and not np.allclose(pair, s0)  # max of a mean <= max of maxes
    assert "| pair (mean of 2) |" in (out / "select.md").read_text()
    with pytest.raises(ValueError, match="members must be candidates"):
        main([*paths, "--root", pool, "--threshold_root", tiny_root, "--ensemble", "bad=s0,s9", "--out", str(out)])
    with pytest.raises(SystemExit):
        main([*paths, "--root", pool, "--threshold_root", tiny_root, "--ensemble", "s0s1", "--out", str(out)])


def test_candidates_of_different_input_shapes_are_refused(tiny_root, tmp_path):
    a = _students(tmp_path, n=1)[0]
    b = tmp_path / "fixed.pt"
    save_checkpoint(b, build_model("student"), {"preprocess": {"short_edge": 256, "fixed_long_edge": 341}})
    with pytest.raises(ValueError, match="another input shape"):
        main([a, str(b), "--root", tiny_root, "--threshold_root", tiny_root, "--out", str(tmp_path / "o")])


def test_candidate_names_are_short_and_unique():
    assert candidate_names(["runs/cv/ROW/dev-s0/student.pt", "runs/cv/ROW/dev-s1/student.pt"]) == ["dev-s0", "dev-s1"]
    assert candidate_names(["shipped=model/weights/student.pt", "runs/x/dev-s0/student.pt"]) == \
        ["shipped", "runs/x/dev-s0"]
    assert candidate_names(["model/weights/student.pt"]) == ["weights/student"]
    with pytest.raises(ValueError, match="not unique"):
        candidate_names(["a=x.pt", "a=y.pt"])


def test_split_half_consistency_says_whether_some_students_are_better_everywhere():
    assert rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert rank_correlation([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    overall = {f"s{i}": {"a": 0.1 * i, "b": 0.5 + 0.1 * i, "c": 0.2 * i, "d": 0.3 + 0.05 * i} for i in range(4)}
    assert split_half_consistency(overall) == pytest.approx(1.0)  # the better student is better everywhere
    traded = {f"s{i}": {"a": 0.1 * i, "b": 0.9 - 0.1 * i} for i in range(4)}
    assert split_half_consistency(traded) == pytest.approx(-1.0)  # what one collection gains, the other loses
    assert split_half_consistency({"s0": {"a": 0.5, "b": 0.5}, "s1": {"a": 0.4, "b": 0.6}}) is None


def _counting_predict_many(monkeypatch):
    """Record the model names training.select actually runs (not read from the cache)."""
    import training.select as select_module
    ran = []

    def counting(models, batches_):
        ran.append(sorted(models))
        return predict_many(models, batches_)
    monkeypatch.setattr(select_module, "predict_many", counting)
    return ran


def test_cache_scores_only_new_candidates_and_gives_the_same_figures(tiny_root, tmp_path, monkeypatch):
    pool = _pool(tmp_path / "pool", portrait=True)
    paths = _students(tmp_path)
    args = ["--root", pool, "--threshold_root", tiny_root, "--threshold_recall", "0.5", "--target_recall", "0.75",
            "--cache", str(tmp_path / "cache")]
    ran = _counting_predict_many(monkeypatch)
    first = main([*paths[:2], *args, "--out", str(tmp_path / "a")])
    assert ran == [["s0", "s1"], ["s0", "s1"]]  # dev, then the pool
    ran.clear()
    again = main([*paths, *args, "--out", str(tmp_path / "b")])
    assert ran == [["s2"], ["s2"]]  # s0, s1 read from the cache
    for name in ("s0", "s1"):
        assert again["candidates"][name] == first["candidates"][name]
        assert np.array_equal(np.load(tmp_path / "a" / f"{name}_scores.npz")["scores"],
                              np.load(tmp_path / "b" / f"{name}_scores.npz")["scores"])
    ran.clear()
    uncached = main([*paths, *args[:-2], "--out", str(tmp_path / "c")])
    assert ran == [["s0", "s1", "s2"], ["s0", "s1", "s2"]]
    assert uncached["candidates"] == again["candidates"] and uncached["pick"] == again["pick"]


def test_cache_keys_follow_checkpoint_and_labels_content(tiny_root, tmp_path):
    from training.score_cache import ScoreCache
    pool = _pool(tmp_path / "pool")
    (ckpt,) = _students(tmp_path, n=1)
    cache, cfg = ScoreCache(tmp_path / "cache"), DataConfig(root=pool)
    key = cache.key(ckpt, cfg, "all", None)
    assert cache.key(ckpt, cfg, "all", None) == key and cache.key(ckpt, cfg, "dev", None) != key
    torch.manual_seed(7)
    save_checkpoint(ckpt, build_model("student"), {})  # retrained in place: new weights, new key
    assert ScoreCache(tmp_path / "cache").key(ckpt, cfg, "all", None) != key
    key = ScoreCache(tmp_path / "cache").key(ckpt, cfg, "all", None)
    labels = tmp_path / "pool" / "labels.jsonl"
    labels.write_text(labels.read_text().replace('"source": "sky"', '"source": "cloud"'))
    assert ScoreCache(tmp_path / "cache").key(ckpt, cfg, "all", None) != key


def test_cache_entries_of_other_images_or_broken_files_are_not_used(tmp_path, caplog):
    from training.score_cache import ScoreCache
    cache = ScoreCache(tmp_path / "cache")
    entry = {"probs": np.random.default_rng(0).random((3, 34)).astype(np.float32), "image_labels": np.array([1, 0, 0]),
             "sources": np.array(["a", "b", "b"]), "paths": np.array(["x.png", "y.png", "z.png"])}
    cache.save("k", **entry)
    loaded = cache.load("k", ["x.png", "y.png", "z.png"])
    assert all(np.array_equal(loaded[f], entry[f]) for f in entry)
    reordered = cache.load("k", ["z.png", "x.png", "y.png"])  # rows follow the paths asked for
    assert reordered["paths"].tolist() == ["z.png", "x.png", "y.png"]
    assert np.array_equal(reordered["probs"], entry["probs"][[2, 0, 1]])
    assert reordered["sources"].tolist() == ["b", "a", "b"] and reordered["image_labels"].tolist() == [0, 1, 0]
    assert cache.load("k", ["x.png", "y.png"]) is None and cache.load("k", ["x.png", "y.png", "w.png"]) is None
    assert cache.load("absent", ["x.png"]) is None
    cache.path("broken").write_bytes(b"not an npz")
    assert cache.load("broken", ["x.png"]) is None and "unreadable" in caplog.text
    with pytest.raises(ValueError, match="missing paths"):
        cache.save("k2", probs=entry["probs"], image_labels=entry["image_labels"], sources=entry["sources"])
    assert sorted(p.name for p in cache.directory.iterdir()) == ["broken.npz", "k.npz"]  # no temporary files left


def test_recipes_group_seeds_and_judge_them_by_the_spread_rule():
    names = ["synth-s0", "synth-s1", "synth-s2", "plain-s0", "plain-s1", "shipped", "odd-s0"]
    assert recipes_of(names) == {"synth": ["synth-s0", "synth-s1", "synth-s2"], "plain": ["plain-s0", "plain-s1"]}
    assert recipes_of(names, {"ship": ["shipped", "plain-s0"]}) == {"ship": ["shipped", "plain-s0"]}
    with pytest.raises(ValueError, match="unknown"):
        recipes_of(names, {"x": ["nobody"]})
    cands = {n: {"rejection_here": r, "ap": 0.9} for n, r in
             {"synth-s0": 0.90, "synth-s1": 0.86, "synth-s2": 0.88, "plain-s0": 0.80, "plain-s1": 0.82,
              "odd-s0": 0.5, "shipped": 0.7}.items()}
    summary = recipe_summary(cands, recipes_of(names), baseline="plain")
    assert summary["synth"]["n"] == 3 and summary["synth"]["rejection_here"] == pytest.approx(0.88)
    assert summary["synth"]["rejection_spread"] == pytest.approx(0.02)
    assert summary["synth"]["verdict"] == "+0.070 win (spread 0.020)" and summary["plain"]["verdict"] is None
    close = dict(cands, **{"synth-s0": {"rejection_here": 0.86, "ap": 0.9}, "synth-s1": {"rejection_here": 0.78, "ap": 0.9}})
    assert "level" in recipe_summary(close, {"synth": ["synth-s0", "synth-s1"], "plain": ["plain-s0", "plain-s1"]},
                                     baseline="plain")["synth"]["verdict"]
    with pytest.raises(ValueError, match="baseline"):
        recipe_summary(cands, recipes_of(names), baseline="odd")


def test_select_reports_recipes_and_refuses_an_unknown_baseline_before_scoring(tiny_root, tmp_path, monkeypatch):
    pool = _pool(tmp_path / "pool")
    paths = _students(tmp_path, n=4)
    specs = [f"{r}-s{k}={p}" for (r, k), p in zip([("a", 0), ("a", 1), ("b", 0), ("b", 1)], paths)]
    args = ["--root", pool, "--threshold_root", tiny_root, "--threshold_recall", "0.5", "--target_recall", "0.75"]
    ran = _counting_predict_many(monkeypatch)
    with pytest.raises(ValueError, match="baseline 'c'"):
        main([*specs, *args, "--baseline", "c", "--out", str(tmp_path / "x")])
    assert ran == []  # refused before any image was scored
    result = main([*specs, *args, "--baseline", "a", "--out", str(tmp_path / "out")])
    rows, cands = result["recipes"], result["candidates"]
    assert sorted(rows) == ["a", "b"] and rows["a"]["verdict"] is None and rows["b"]["verdict"]
    assert rows["b"]["rejection_here"] == pytest.approx((cands["b-s0"]["rejection_here"] + cands["b-s1"]["rejection_here"]) / 2)
    table = (tmp_path / "out" / "select.md").read_text()
    assert "| recipe | seeds | rejection at recall | AP | verdict |" in table and "| b | 2 | " in table
