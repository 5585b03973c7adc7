"""The crawl demo's set builder and the text-overlap measure (no OCR run here)."""

from __future__ import annotations

import io
import os

import numpy as np

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
