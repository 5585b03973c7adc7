"""gs:// in and out, through a local GCS emulator."""

from __future__ import annotations

import json
import os

import pytest

from tests import gcs_emulator  # noqa: F401  (sets the gcsfs environment first)
from tests.conftest import SAMPLES
from tests.gcs_emulator import GcsEmulator

from pipeline.run import run  # noqa: E402


@pytest.fixture(scope="module")
def gcs():
    emulator = GcsEmulator()
    yield emulator
    emulator.stop()


def test_gs_input_output_and_inbox(gcs, student_checkpoint):
    fs = gcs.filesystem()
    fs.mkdir("crawl")
    names = sorted(os.listdir(SAMPLES))[:5]
    for name in names:
        fs.put_file(os.path.join(SAMPLES, name), f"crawl/2026/{name}")
    fs.pipe_file("crawl/2026/broken.jpg", b"<html>oops</html>")
    fs.put_file(student_checkpoint, "crawl/models/student.pt")

    summary = run([
        "--runner=FnApiRunner",
        "--input", "gs://crawl/2026/*",
        "--input", "gs://crawl/2026/missing.jpg",
        "--output", "gs://crawl/out",
        "--ocr_inbox", "gs://crawl/inbox",
        "--model_path", "gs://crawl/models/student.pt",
        "--threshold", "0",
        "--storage_options", json.dumps(gcs.storage_options),
    ])
    assert summary["images"] == len(names) + 2
    records = {}
    for route in ("text", "non_text", "failed"):
        shards = fs.glob(f"crawl/out/{route}-*-of-*.jsonl")
        assert shards, route
        records[route] = [json.loads(line) for s in shards for line in fs.cat(s).decode().splitlines() if line]
    assert sorted(r["uri"] for r in records["text"]) == sorted(f"gs://crawl/2026/{n}" for n in names)
    failed = {r["uri"]: r for r in records["failed"]}
    assert failed["gs://crawl/2026/broken.jpg"]["stage"] == "decode"
    assert failed["gs://crawl/2026/missing.jpg"]["stage"] == "read"
    assert len(fs.ls("crawl/inbox")) == len(names)
    assert not fs.glob("crawl/out/.staging-*/**"), "staged shards left behind"
    assert json.loads(fs.cat("crawl/out/summary.json"))["text"] == len(names)
