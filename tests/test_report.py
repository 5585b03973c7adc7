"""The HTML run report (``--report``): content, self-containment, size, and a real render
in headless Chromium (skipped where Chromium is not installed)."""

from __future__ import annotations

import html as html_lib
import json
import os
import re
import shutil
import subprocess
import tempfile

import numpy as np
import pytest

from pipeline.report import MAX_BYTES, PER_ROUTE, REPORT_NAME, build_report, write_report
from tests.conftest import SAMPLES

RUNNER = ["--runner=FnApiRunner"]
SECRET_URI = "https://user:hunter2@127.0.0.1:9/crawl/img.jpg?X-Goog-Signature=secret123&w=1"


def decided(uri: str, score: float, threshold: float) -> dict:
    rng = np.random.default_rng(int(score * 1e6))
    grid = (rng.random((5, 5)) * score).round(4)
    grid[rng.integers(5), rng.integers(5)] = score
    return {"uri": uri, "label": "text" if score >= threshold else "non_text", "score": round(score, 6),
            "threshold": threshold, "regions_5x5": grid.tolist(), "regions_3x3": [[0.1] * 3] * 3}


def write_shards(out: str, route: str, records: list, shards: int) -> None:
    os.makedirs(out, exist_ok=True)
    for i in range(shards):
        with open(os.path.join(out, f"{route}-{i:05d}-of-{shards:05d}.jsonl"), "w") as f:
            for r in records[i::shards]:
                f.write(json.dumps(r, sort_keys=True) + "\n")


@pytest.fixture(scope="module")
def large_run(tmp_path_factory) -> dict:
    """Manifests of a run larger than the gallery's cap: 130 text, 110 non-text, 7 failed."""
    out = str(tmp_path_factory.mktemp("report") / "out")
    threshold = 0.6
    samples = [os.path.join(SAMPLES, n) for n in sorted(os.listdir(SAMPLES))]
    rng = np.random.default_rng(0)
    text_scores = np.round(rng.uniform(threshold, 1.0, 130), 6)
    non_text_scores = np.round(rng.uniform(0.0, threshold - 1e-6, 110), 6)
    text = [decided(samples[i % len(samples)], float(s), threshold) for i, s in enumerate(text_scores)]
    non_text = [decided(samples[i % len(samples)], float(s), threshold) for i, s in enumerate(non_text_scores)]
    # at the threshold, so shown first; unreadable since the run: a gap in the gallery, not an error
    text[7] = decided(os.path.join(SAMPLES, "moved-away.jpg"), threshold, threshold)
    failed = (
        [{"uri": f"/data/broken-{i}.jpg", "label": "failed", "stage": "decode", "error_type": "ImageDecodeError",
          "error": "empty file (0 bytes)"} for i in range(4)]
        + [{"uri": "https://***@127.0.0.1:9/crawl/img.jpg?X-Goog-Signature=REDACTED&w=1", "label": "failed",
            "stage": "read", "error_type": "ReadError", "error": "connection refused <b>bold</b>"}] * 2
        + [{"uri": "/data/odd.jpg", "label": "failed", "stage": "inference", "error_type": "BadModelOutput",
            "error": "model returned 0 region probabilities"}]
    )
    write_shards(out, "text", text, 2)
    write_shards(out, "non_text", non_text, 3)
    write_shards(out, "failed", failed, 1)
    summary = {"images": 247, "text": 130, "non_text": 110, "failed": 7, "seconds": 12.5, "images_per_second": 19.76,
               "threshold": threshold, "score_rule": "both_grids", "outputs": {r: os.path.join(out, f"{r}-*.jsonl") for r in ("text", "non_text")}}
    path = write_report(out, summary)
    return {"out": out, "path": path, "html": open(path, encoding="utf-8").read(), "threshold": threshold,
            "text": text, "non_text": non_text}


def strip_failure_uris(page: str) -> str:
    """The page less the failure table's URI cells (the only place a URL may appear as text)."""
    table = re.search(r"<h2>Failures by reason</h2><table>.*?</table>", page, re.S)
    assert table, "no failures table"
    cleaned = re.sub(r"<div class='uri'>[^<]*</div>", "", table.group(0))
    return page.replace(table.group(0), cleaned)


def test_report_counts_histogram_and_throughput(large_run):
    page = large_run["html"]
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    text = re.sub(r"<[^>]+>", " ", page)
    for label, n in (("IMAGES", 247), ("TEXT", 130), ("NON-TEXT", 110), ("FAILED", 7)):
        assert re.search(rf"{label.lower()}\s+{n}\b", text, re.I), label
    assert "19.8" in text and "12.5 s" in text  # images/s and wall time
    assert page.count("<svg") == 1 and "threshold 0.6" in page
    assert re.search(r"threshold\s+0\.6\s+\(both_grids\)", text)  # the card: the rule it belongs to
    assert "image score (score rule both_grids)" in page  # the histogram's axis names the rule too
    bars = re.findall(r"<title>(text|non_text) [0-9.]+-[0-9.]+: (\d+)</title>", page)
    assert sum(int(n) for route, n in bars if route == "text") == 130
    assert sum(int(n) for route, n in bars if route == "non_text") == 110


def test_report_groups_failures_by_stage_and_type(large_run):
    page = large_run["html"]
    rows = re.findall(r"<tr><td>(\w+)</td><td>(\w+)</td><td class='n'>(\d+)</td>", page)
    assert rows == [("decode", "ImageDecodeError", "4"), ("read", "ReadError", "2"),
                    ("inference", "BadModelOutput", "1")]
    assert "&lt;b&gt;bold&lt;/b&gt;" in page and "<b>bold</b>" not in page  # escaped
    # the failed records' URIs, as redacted by the pipeline
    assert html_lib.escape("https://***@127.0.0.1:9/crawl/img.jpg?X-Goog-Signature=REDACTED&w=1") in page


def test_report_is_self_contained_small_and_caps_thumbnails(large_run):
    page = large_run["html"]
    assert len(page.encode("utf-8")) < MAX_BYTES
    assert os.path.getsize(large_run["path"]) < 2 * 1024 * 1024  # 2 x 48 small JPEGs
    imgs = re.findall(r"<img\b[^>]*>", page)
    assert 0 < len(imgs) <= 2 * PER_ROUTE
    assert len(imgs) == 2 * PER_ROUTE - 1  # one text image is no longer readable
    assert "image not readable now" in page
    for tag in imgs:
        assert re.search(r'src="data:image/jpeg;base64,[A-Za-z0-9+/=]+"', tag), tag[:80]
    # no resource is loaded from anywhere: every src/href is a data: URI or a fragment
    for attr in re.findall(r"\b(?:src|href)\s*=\s*[\"']?([^\"'\s>]*)", page):
        assert attr.startswith(("data:", "#")), attr[:80]
    assert not re.search(r"<(link|script|iframe|object|embed)\b", page, re.I)
    assert not re.search(r"url\(|@import", page, re.I)
    rest = strip_failure_uris(page)
    assert "http://" not in rest and "https://" not in rest


def test_gallery_shows_the_records_closest_to_the_threshold_first(large_run):
    page, threshold = large_run["html"], large_run["threshold"]
    text_part = page.split("Text images closest to the threshold", 1)[1].split("Non-text images", 1)[0]
    shown = [float(s) for s in re.findall(r"<figcaption><b>([0-9.]+)</b>", text_part)]
    assert len(shown) == PER_ROUTE
    expected = sorted((r["score"] for r in large_run["text"]), key=lambda s: abs(s - threshold))[:PER_ROUTE]
    assert shown == [round(s, 3) for s in expected]
    # text images carry their 5x5 heatmap; non-text ones do not
    assert text_part.count("class=\"heat\"") == PER_ROUTE - 1
    non_text_part = page.split("Non-text images closest to the threshold", 1)[1]
    assert "class=\"heat\"" not in non_text_part
    assert len(re.findall(r"<figcaption>", non_text_part)) == PER_ROUTE


def test_report_of_an_empty_run(tmp_path):
    out = str(tmp_path / "out")
    for route in ("text", "non_text", "failed"):
        write_shards(out, route, [], 1)
    page = build_report(out, {"images": 0, "seconds": 0.1, "images_per_second": None, "threshold": 0.5})
    assert "<img" not in page and "none" in page


def test_pipeline_report_flag(mixed_folder, student_checkpoint, tmp_path):
    from pipeline.run import run

    listing = tmp_path / "uris.txt"
    listing.write_text(f"{mixed_folder['dir']}/photo.png\n{mixed_folder['dir']}/empty.jpg\n{SECRET_URI}\n")
    out = str(tmp_path / "out")
    summary = run([*RUNNER, "--input", mixed_folder["dir"], "--input_list", str(listing), "--output", out,
                   "--model_path", student_checkpoint, "--read_retries", "0", "--report"])
    path = os.path.join(out, REPORT_NAME)
    page = open(path, encoding="utf-8").read()
    assert f"{summary['images']:,}" in page and summary["failed"] >= 5
    assert "hunter2" not in page and "secret123" not in page  # failed URIs are the redacted ones
    assert "127.0.0.1:9" in page
    n_decided = summary["text"] + summary["non_text"]
    assert len(re.findall(r"<img\b", page)) == min(n_decided, 2 * PER_ROUTE)
    rest = strip_failure_uris(page)
    assert "http://" not in rest and "https://" not in rest


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.mark.skipif(chromium() is None, reason="Chromium is not installed (Debian: apt-get install -y chromium)")
def test_report_renders_in_headless_chromium(large_run, tmp_path):
    from PIL import Image

    shot = tmp_path / "report.png"
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", f"--screenshot={shot}", "--window-size=1200,2000",
             "file://" + os.path.abspath(large_run["path"])],
            capture_output=True, text=True, timeout=180,
        )
    assert shot.exists(), proc.stderr[-2000:]
    img = np.asarray(Image.open(shot).convert("RGB")).astype(np.int16)
    assert img.shape[:2] == (2000, 1200)
    grey = img.mean(axis=2)
    assert grey.std() > 20, "the screenshot is (nearly) blank"
    assert (grey < 200).mean() > 0.05, "too little is drawn"

    def share_near(color, tol=40):
        return (np.abs(img - np.asarray(color)).max(axis=2) < tol).mean()

    assert share_near((0xD9, 0x48, 0x0F)) > 0.002  # the text bars / route bar
    assert share_near((0x1C, 0x7E, 0xD6)) > 0.002  # the non-text bars
    # the gallery's photos: many distinct colours, unlike a page of flat boxes
    lower = img[1200:].reshape(-1, 3) // 16
    assert len(np.unique(lower[:, 0] * 256 + lower[:, 1] * 16 + lower[:, 2])) > 200
