"""training.neverseen: the never-seen basis recipes are ranked on (session 30), from training.select folders."""

import json

import numpy as np
import pytest

from training import metrics
from training.neverseen import (bootstrap_noise, candidate_rows, could_still_win, main, recipe_bootstrap, recipe_of,
                                recipe_rows)

# session 30's figures on the audited basis (docs/select/session30-new.md, session30-rule.md)
KDTUP20 = [0.466, 0.464, 0.462, 0.449]


def _select_dir(folder, candidates, paths, sources, labels, seed):
    """A training.select --out folder: select.json (each candidate's dev threshold) and per-candidate scores."""
    folder.mkdir()
    rng = np.random.default_rng(seed)
    scores = {}
    for k, (name, threshold) in enumerate(candidates.items()):
        # text scores high, non-text low, with overlap; each candidate a little different
        s = np.where(np.asarray(labels) == 1, rng.uniform(0.3, 1.0, len(labels)), rng.uniform(0.0, 0.6, len(labels)))
        s = np.clip(s + 0.02 * k, 0, 1)
        scores[name] = s
        np.savez_compressed(folder / f"{name}_scores.npz", paths=np.array(paths), sources=np.array(sources),
                            labels=np.array(labels), scores=s)
    (folder / "select.json").write_text(json.dumps({"candidates": {n: {"threshold": t} for n, t in candidates.items()}}))
    return scores


@pytest.fixture
def basis(tmp_path):
    cands = {"a-s0": 0.3, "a-s1": 0.35, "b-s0": 0.4}
    n_eval = 60
    eval_labels = [1 if i % 6 == 0 else 0 for i in range(n_eval)]
    eval_sources = ["faces" if i % 2 else "weather" for i in range(n_eval)]
    eval_paths = [f"eval/{i}.jpg" for i in range(n_eval)]
    ev = _select_dir(tmp_path / "n", cands, eval_paths, eval_sources, eval_labels, 0)
    text_paths = [f"people/{i}.jpg" for i in range(20)] + [f"ocrd/linegt/{i}.png" for i in range(4)]
    text_labels = [1] * 16 + [0] * 4 + [1] * 4
    text_sources = ["utkface"] * 10 + ["flickr8k"] * 10 + ["ocrd-documents"] * 4
    tx = _select_dir(tmp_path / "p", {n: t for n, t in cands.items() if n != "b-s0"}, text_paths, text_sources,
                     text_labels, 1)
    return tmp_path, ev, tx, (eval_paths, eval_labels, eval_sources), (text_paths, text_labels, text_sources)


def test_rows_match_a_hand_computation(basis):
    root, ev, tx, (_, ylab, ysrc), (tpaths, tlab, _) = basis
    rows = {r["name"]: r for r in candidate_rows(root / "p", root / "n")}
    y = np.array(ylab)
    s = ev["a-s0"]
    keep = np.char.find(np.array(tpaths), "/linegt/") < 0  # text-line strips left out
    text = np.concatenate([tx["a-s0"][keep & (np.array(tlab) == 1)], s[y == 1]])
    neg = s[y == 0]
    t95 = metrics.threshold_for_recall(np.concatenate([text, neg]), np.r_[np.ones(len(text)), np.zeros(len(neg))], 0.95)
    row = rows["a-s0"]
    assert row["n_text"] == 16 + 10 and row["n_non_text"] == 50
    assert row["rej95"] == pytest.approx((neg < t95).mean())
    assert row["rej_dev"] == pytest.approx((neg < 0.3).mean())
    assert row["recall_dev"] == pytest.approx((text >= 0.3).mean())
    faces = (y == 0) & (np.array(ysrc) == "faces")
    assert row["by_source"]["faces"] == pytest.approx((s[faces] < 0.3).mean())
    # b-s0 has no scores on the text pool: it trained there, so only the evaluation-only text counts
    assert rows["b-s0"]["text_pool_seen"] and rows["b-s0"]["n_text"] == 10


def test_keep_lines_text_without_and_audit_change_the_text_side(basis):
    root, _, _, (epaths, _, _), _ = basis
    base = {r["name"]: r for r in candidate_rows(root / "p", root / "n")}["a-s0"]
    lines = {r["name"]: r for r in candidate_rows(root / "p", root / "n", keep_lines=True)}["a-s0"]
    assert lines["n_text"] == base["n_text"] + 4
    without = {r["name"]: r for r in candidate_rows(root / "p", root / "n", text_without=["utkface"])}["a-s0"]
    assert without["n_text"] == base["n_text"] - 10
    audited = {r["name"]: r for r in candidate_rows(root / "p", root / "n",
                                                    non_text=frozenset({epaths[0], "people/0.jpg"}))}["a-s0"]
    assert (audited["n_text"], audited["n_non_text"]) == (base["n_text"] - 2, base["n_non_text"] + 1)


def test_recipes_recorded_rows_and_verdicts():
    rows = [{"name": n, "recipe": recipe_of(n), "rej_dev": 0.6, "rej95": v, "recall_dev": 0.9, "by_source": {"x": v}}
            for n, v in (("kdOnly-s0", 0.50), ("kdOnly-s2", 0.52), ("ref-s4", 0.31), ("ref-s5", 0.32))]
    recipes = recipe_rows(rows, {"kdTuP20": KDTUP20}, baseline="kdTuP20", n_seeds=4)
    assert recipes["kdTuP20"]["n_recorded"] == 4 and recipes["kdTuP20"]["n"] == 4
    assert recipes["kdOnly"]["n"] == 2 and recipes["kdOnly"]["verdict"].startswith("+0.050 win")
    assert recipes["kdOnly"]["could_still_win"] and not recipes["ref"]["could_still_win"]
    assert "verdict" not in recipes["kdTuP20"]
    one = recipe_rows(rows[:1], {"kdTuP20": KDTUP20}, baseline="kdTuP20", n_seeds=4)["kdOnly"]
    assert one["verdict"] == "needs 2 seeds" and one["could_still_win"]
    # recorded seeds join a recipe's scored ones in the ranking figure only
    merged = recipe_rows(rows, {"ref": [0.318, 0.310]})["ref"]
    assert merged["rej95"] == [0.318, 0.310, 0.31, 0.32] and merged["n"] == 4 and merged["n_recorded"] == 2
    assert merged["rej_dev"] == [0.6, 0.6]
    with pytest.raises(ValueError, match="baseline"):
        recipe_rows(rows, baseline="nope")


def test_could_still_win_reproduces_session30s_algebra():
    # kdTuP20s (0.446, 0.455) and kdTuA20 (0.476, 0.426): "no seeds 4 and 5 can make it win" (session 30)
    assert not could_still_win([0.446, 0.455], KDTUP20, 4)
    assert not could_still_win([0.476, 0.426], KDTUP20, 4)
    # two seeds close together well above the baseline can still win; all seeds in: the rule itself
    assert could_still_win([0.49, 0.50], KDTUP20, 4)
    assert could_still_win([0.49, 0.50, 0.49, 0.50], KDTUP20, 4)
    assert not could_still_win([0.47, 0.46, 0.47, 0.46], KDTUP20, 4)


def test_recipe_of_names():
    assert recipe_of("kdTuP20-s5") == "kdTuP20" and recipe_of("soup-bs0") == "soup"
    assert recipe_of("shipped") == "wide104" and recipe_of("teacherP") == "teacherP"


def test_cli_writes_tables_and_rejects_bad_flags(basis, tmp_path, capsys):
    root = basis[0]
    out = tmp_path / "out" / "neverseen.md"
    result = main([str(root / "p"), str(root / "n"), "--baseline", "a", "--recorded", "old=0.2,0.25",
                   "--seeds", "4", "--out", str(out)])
    assert "| a | 2 |" in out.read_text() and "| old | 2 (2 recorded) |" in out.read_text()
    assert json.loads(out.with_suffix(".json").read_text())["recipes"]["old"]["could_still_win"] is False
    assert result["recipes"]["a"]["n"] == 2
    by_seed = [r["by_source"]["faces"] for r in result["candidates"] if r["recipe"] == "a"]
    assert result["recipes"]["a"]["by_source"]["faces"] == pytest.approx(np.mean(by_seed))
    assert "mean over seeds" in out.read_text()
    for bad in (["--recorded", "old=x"], ["--recorded", "old"], ["--baseline", "nope"]):
        with pytest.raises(SystemExit) as exc:
            main([str(root / "p"), str(root / "n"), *bad])
        assert exc.value.code == 2
    with pytest.raises(SystemExit):
        main([str(root / "p"), str(tmp_path / "missing")])
    assert "error" in capsys.readouterr().err


def test_bootstrap_is_paired_deterministic_and_matches_the_rows(basis):
    root = basis[0]
    rows = {r["name"]: r for r in candidate_rows(root / "p", root / "n")}
    names = ["a-s0", "a-s1", "b-s0"]
    noise = bootstrap_noise(root / "p", root / "n", names, "a-s0", resamples=50, seed=3)
    assert noise == bootstrap_noise(root / "p", root / "n", names, "a-s0", resamples=50, seed=3)
    for n in names:  # on the full basis the figures are the rows'
        assert noise[n]["rej95"] == pytest.approx(rows[n]["rej95"])
        assert noise[n]["diff"] == pytest.approx(rows[n]["rej95"] - rows["a-s0"]["rej95"])
        assert noise[n]["sd"] > 0
    assert noise["a-s0"]["diff_sd"] == 0.0 and noise["a-s1"]["diff_sd"] > 0
    other = bootstrap_noise(root / "p", root / "n", names, "a-s0", resamples=50, seed=4, keep_draws=True)
    assert len(other["a-s1"]["draws"]) == 50 and "draws" not in noise["a-s1"]
    assert other["a-s1"]["sd"] == pytest.approx(np.std(other["a-s1"]["draws"], ddof=1))
    assert other["a-s1"]["sd"] != noise["a-s1"]["sd"]
    with pytest.raises(ValueError, match="reference"):
        bootstrap_noise(root / "p", root / "n", names, "nope")
    with pytest.raises(ValueError, match="at least 2"):
        bootstrap_noise(root / "p", root / "n", names, "a-s0", resamples=1)


def test_bootstrap_needs_one_select_run_per_pool(basis, tmp_path):
    root, _, _, (epaths, elabels, esources), _ = basis
    moved = tmp_path / "moved"
    _select_dir(moved, {"a-s0": 0.3, "c-s0": 0.3}, epaths[::-1], esources, elabels, 5)
    np.savez_compressed(moved / "c-s0_scores.npz", **dict(np.load(root / "n" / "a-s0_scores.npz")))
    with pytest.raises(ValueError, match="different images"):
        bootstrap_noise(root / "p", moved, ["a-s0", "c-s0"], "a-s0")


def test_cli_bootstrap_table(basis, tmp_path):
    root = basis[0]
    out = tmp_path / "boot.md"
    result = main([str(root / "p"), str(root / "n"), "--baseline", "a", "--bootstrap", "20", "--out", str(out)])
    assert "paired bootstrap over the images, 20 resamples; against a-s0" in out.read_text()
    assert set(json.loads(out.with_suffix(".json").read_text())["bootstrap"]) == {"a-s0", "a-s1", "b-s0"}
    assert result["bootstrap"]["a-s0"]["diff_sd"] == 0.0


def test_extra_text_joins_the_threshold_and_the_bootstrap(basis, tmp_path):
    root = basis[0]
    labels = [1] * 6 + [0] * 4  # the extra pool's non-text is not part of the basis
    paths, sources = [f"trash/{i}.jpg" for i in range(10)], ["trashnet-print"] * 10
    extra = _select_dir(tmp_path / "x", {"a-s0": 0.3, "a-s1": 0.35, "b-s0": 0.4}, paths, sources, labels, 7)
    base = {r["name"]: r for r in candidate_rows(root / "p", root / "n")}
    rows = {r["name"]: r for r in candidate_rows(root / "p", root / "n", extra_text=[tmp_path / "x"])}
    assert rows["a-s0"]["n_text"] == base["a-s0"]["n_text"] + 6
    assert rows["b-s0"]["n_text"] == base["b-s0"]["n_text"] + 6  # trained on the people pool: still gets the extra text
    assert rows["a-s0"]["n_non_text"] == base["a-s0"]["n_non_text"]
    text = np.concatenate([np.load(root / "p" / "a-s0_scores.npz")["scores"][:16], ev_text(root, "a-s0"),
                           extra["a-s0"][:6]])
    neg = np.load(root / "n" / "a-s0_scores.npz")["scores"][np.array(basis[3][1]) == 0]
    t95 = metrics.threshold_for_recall(np.r_[text, neg], np.r_[np.ones(len(text)), np.zeros(len(neg))], 0.95)
    assert rows["a-s0"]["rej95"] == pytest.approx((neg < t95).mean())
    noise = bootstrap_noise(root / "p", root / "n", ["a-s0", "a-s1"], "a-s0", 20, extra_text=[tmp_path / "x"])
    assert noise["a-s1"]["rej95"] == pytest.approx(rows["a-s1"]["rej95"])
    # b-s0 trained on the people pool: its extra text still counts, in the rows and in the bootstrap alike
    z = dict(np.load(tmp_path / "x" / "b-s0_scores.npz"))
    z["scores"] = np.where(z["labels"] == 1, 0.001, z["scores"])  # text it misses: the threshold must drop
    np.savez_compressed(tmp_path / "x" / "b-s0_scores.npz", **z)
    low = {r["name"]: r for r in candidate_rows(root / "p", root / "n", extra_text=[tmp_path / "x"])}["b-s0"]
    assert low["rej95"] < rows["b-s0"]["rej95"]
    seen = bootstrap_noise(root / "p", root / "n", ["a-s0", "b-s0"], "a-s0", 20, extra_text=[tmp_path / "x"])
    assert seen["b-s0"]["rej95"] == pytest.approx(low["rej95"])
    (tmp_path / "x" / "a-s1_scores.npz").unlink()
    with pytest.raises(ValueError, match="no scores in"):
        candidate_rows(root / "p", root / "n", extra_text=[tmp_path / "x"])


def ev_text(root, name):
    z = np.load(root / "n" / f"{name}_scores.npz")
    return z["scores"][z["labels"] == 1]


def test_recipe_bootstrap_compares_the_means_of_scored_seeds(basis):
    root = basis[0]
    rows = candidate_rows(root / "p", root / "n")
    noise = bootstrap_noise(root / "p", root / "n", [r["name"] for r in rows], "b-s0", 30, keep_draws=True)
    by_recipe = recipe_bootstrap(noise, rows, "b")
    rej = {r["name"]: r["rej95"] for r in rows}
    assert set(by_recipe) == {"a"} and by_recipe["a"]["seeds"] == 2 and by_recipe["a"]["baseline_seeds"] == 1
    assert by_recipe["a"]["diff"] == pytest.approx((rej["a-s0"] + rej["a-s1"]) / 2 - rej["b-s0"])
    pairs = (np.array(noise["a-s0"]["draws"]) + np.array(noise["a-s1"]["draws"])) / 2 - np.array(noise["b-s0"]["draws"])
    assert by_recipe["a"]["sd"] == pytest.approx(np.std(pairs, ddof=1))
    with pytest.raises(ValueError, match="no scored candidate"):
        recipe_bootstrap(noise, rows, "kdTuP20")
    result = main([str(root / "p"), str(root / "n"), "--baseline", "b", "--bootstrap", "10"])
    assert set(result["bootstrap_recipes"]) == {"a"} and "draws" not in result["bootstrap"]["a-s0"]
