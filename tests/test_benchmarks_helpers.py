"""The crawl demo's set builder, the text-overlap measure (no OCR run here) and the
screenshots benchmark (with a stand-in for Chromium)."""

from __future__ import annotations

import io
import os
import sys

import numpy as np
import pytest

from benchmarks.common import text_chars_kept
from benchmarks.crawl_demo import build_crawl
from tests.conftest import SHARED_DATA


def test_text_chars_kept_ignores_order_and_spaces():
    assert text_chars_kept(["OPEN 24H", "CAFE"], ["CAFE", "OPEN24H"]) == (11, 11)
    assert text_chars_kept(["ABCD"], ["AB"]) == (2, 4)
    assert text_chars_kept([], ["X"]) == (0, 0)


def test_build_crawl_without_the_data_folder(tmp_path):
    truth = build_crawl(str(tmp_path / "crawl"), 20, 0.15, data_dir=str(tmp_path / "missing"))
    assert len(truth) == 20 and sum(truth.values()) == 3
    assert all(os.path.isfile(p) for p in truth)


def test_build_crawl_from_the_dev_split(tmp_path):
    if not os.path.exists(os.path.join(SHARED_DATA, "labels.jsonl")):
        return
    truth = build_crawl(str(tmp_path / "crawl"), 40, 0.15)
    assert len(truth) == 40 and sum(truth.values()) == 6


def test_draft_tolerance_helpers(tmp_path):
    from PIL import Image

    from benchmarks.draft_tolerance import upscaled_jpeg
    from training.metrics import prf_at

    Image.new("RGB", (300, 200), (10, 200, 30)).save(tmp_path / "a.png")
    with Image.open(io.BytesIO(upscaled_jpeg(str(tmp_path / "a.png"), 1000))) as big:
        assert big.format == "JPEG" and big.size == (1500, 1000)
    at = prf_at(np.array([0.9, 0.2, 0.8, 0.1]), np.array([1, 1, 0, 0]), 0.5)
    p, r = at["precision"], at["recall"]
    assert (p, r) == (0.5, 0.5)


def _fake_chromium(tmp_path) -> str:
    """A stand-in for Chromium: writes a PNG of the window size to --screenshot=PATH
    (dark lines on white for pages whose name has "text", plain white otherwise)."""
    script = tmp_path / "fake-chromium"
    script.write_text(f"""#!{sys.executable}
import sys
from PIL import Image, ImageDraw
args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if "=" in a)
w, h = map(int, args["window-size"].split(","))
img = Image.new("RGB", (w, h), "white")
if "text" in sys.argv[-1]:
    for y in range(20, h - 20, 24):
        ImageDraw.Draw(img).rectangle([20, y, w - 20, y + 12], fill="black")
img.save(args["screenshot"])
""")
    script.chmod(0o755)
    return str(script)


def test_screenshots_benchmark_scores_every_window_size(tmp_path, student_checkpoint):
    from benchmarks import screenshots

    html = tmp_path / "html"
    (html / "sub").mkdir(parents=True)
    for name in ("a-text", "b-text", "c-blank"):
        (html / "sub" / f"{name}.html").write_text("<p>" + "words " * 1000 + "</p>")
    (html / "tiny.html").write_text("<p>x</p>")  # under min_bytes: never picked
    pages = screenshots.find_pages([str(html)], n=10, seed=0)
    assert [p.name for p in pages] == ["a-text.html", "b-text.html", "c-blank.html"]
    assert screenshots.find_pages([str(html)], n=2, seed=1) == screenshots.find_pages([str(html)], n=2, seed=1)

    shots = tmp_path / "shots"
    results = screenshots.main(["--html_dir", str(html), "--sizes", "640x400", "300x500", "--chromium",
                                _fake_chromium(tmp_path), "--model_path", student_checkpoint,
                                "--shots_dir", str(shots)])
    assert sorted(p.name for p in (shots / "640x400").iterdir()) == ["000-a-text.png", "001-b-text.png",
                                                                    "002-c-blank.png"]
    for size in ("640x400", "300x500"):
        r = results[(size, os.path.relpath(student_checkpoint))]
        assert r["n"] == 3 and 0.0 <= r["recall"] <= 1.0 and 0.0 < r["median"] < 1.0
    # A kept screenshot is reused; a failing browser is a warning, not a crash.
    assert screenshots.screenshot("/bin/false", pages[0], "640x400", shots / "640x400" / "000-a-text.png")
    assert screenshots.screenshot("/bin/false", pages[0], "640x400", shots / "new.png") is None


def test_synthetic_checks_score_every_kind(student_checkpoint, tmp_path):
    from benchmarks import synthetic_checks
    from training.config import SynthConfig
    from training.synthtext import find_fonts

    if not find_fonts(SynthConfig().font_dirs, 1):
        pytest.skip("no TrueType fonts installed")
    results = synthetic_checks.main(["--n", "2", "--model_path", student_checkpoint, "--data_dir", str(tmp_path)])
    kinds = {kind for kind, _ in results}
    assert len(kinds) == len(synthetic_checks.PAGE_FONT_SIZES) + 3  # no dev photos in tmp_path
    assert all(r["n"] == 2 and 0.0 <= r["text_rate"] <= 1.0 for r in results.values())
    # The same seed draws the same images.
    fonts = find_fonts(SynthConfig().font_dirs, 2)
    a = synthetic_checks.build_kinds(1, 3, fonts, [])
    b = synthetic_checks.build_kinds(1, 3, fonts, [])
    assert all(np.array_equal(a[k][0], b[k][0]) for k in a)


def test_score_rules_reward_agreement_of_both_grids():
    from benchmarks.score_rules import RULES, rule_figures

    rng = np.random.default_rng(0)
    n = 200
    labels = np.arange(n) % 2
    probs = rng.uniform(0.0, 0.2, (n, 34))
    # text: both grids see it; non-text: a single 5x5 cell spikes (texture), the 3x3 grid stays low
    probs[labels == 1, 3] = rng.uniform(0.5, 1.0, n // 2)
    probs[labels == 1, 30] = rng.uniform(0.5, 1.0, n // 2)
    probs[labels == 0, 7] = rng.uniform(0.5, 1.0, n // 2)
    figures = rule_figures(probs, labels)
    assert set(figures) == set(RULES)
    assert figures["max"]["ap"] < 0.8
    assert figures["both_grids"]["ap"] == pytest.approx(1.0)
    assert figures["min(max 5x5, max 3x3)"]["r0.95"]["rejection"] == pytest.approx(1.0)
    # the pipeline's rules are the ones measured
    from model.regions import image_score
    np.testing.assert_array_equal(RULES["max"](probs), image_score(probs))
    np.testing.assert_allclose(RULES["both_grids"](probs), np.sqrt(probs[:, :25].max(1) * probs[:, 25:].max(1)))


def test_onnx_ms_times_the_shipped_export():
    from benchmarks import onnx_ms

    shipped = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "model", "weights",
                           "student.onnx")
    results = onnx_ms.main([shipped, "--iters", "2"])
    assert 0 < results[shipped] < 1000
