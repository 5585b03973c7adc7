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


def test_gs_state_and_webdataset_shard(gcs, student_checkpoint, tmp_path):
    """--state on an object store: CURRENT names the live generation; the second run skips
    the unchanged images and the unchanged shard (fingerprints from the listing: size +
    generation / md5Hash)."""
    import io
    import tarfile

    from pipeline.state import StateStore

    fs = gcs.filesystem()
    fs.mkdir("nightly")
    names = sorted(os.listdir(SAMPLES))[:3]
    for name in names:
        fs.put_file(os.path.join(SAMPLES, name), f"nightly/imgs/{name}")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in names[:2]:
            tar.add(os.path.join(SAMPLES, name), arcname=f"k/{name}")
    fs.pipe_file("nightly/shards/shard-000.tar", buf.getvalue())
    so = json.dumps(gcs.storage_options)
    args = ["--runner=FnApiRunner", "--input", "gs://nightly/imgs/*", "--input", "gs://nightly/shards/shard-{000..000}.tar",
            "--state", "gs://nightly/state", "--model_path", student_checkpoint, "--storage_options", so]
    first = run([*args, "--output", "gs://nightly/out1"])
    assert first["images"] == 5 and first["failed"] == 0
    fs.put_file(os.path.join(SAMPLES, sorted(os.listdir(SAMPLES))[5]), "nightly/imgs/new.jpg")
    second = run([*args, "--output", "gs://nightly/out2"])
    assert second["images"] == 1 and second["skipped"] == 5
    store = StateStore("gs://nightly/state", gcs.storage_options)
    uris = sorted(e["uri"] for e in store.entries())
    assert "gs://nightly/imgs/new.jpg" in uris and "gs://nightly/shards/shard-000.tar#k/" + names[0] in uris
    assert "gs://nightly/shards/shard-000.tar" in uris  # the shard's own entry: not read again
    assert len(uris) == 7 and all(e["fingerprint"] for e in store.entries())
