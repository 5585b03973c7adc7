"""--state: incremental runs decide only new or changed inputs."""

from __future__ import annotations

import os

import pytest

import pipeline.sinks
from pipeline.fingerprint import fingerprint
from pipeline.run import run
from pipeline.state import CURRENT, GENERATIONS, StateStore
from tests.images import image_bytes
from tests.pipeline_helpers import assert_conserved, read_outputs

RUNNER = ["--runner=FnApiRunner"]


def write_images(folder, start: int, n: int) -> list[str]:
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i in range(start, start + n):
        path = os.path.join(folder, f"img_{i:03d}.png")
        with open(path, "wb") as f:
            f.write(image_bytes("PNG", (64 + i, 48 + i % 7), color=(i * 7 % 256, 40, 200 - i)))
        paths.append(path)
    return paths


def filter_run(folder, out, state, checkpoint, *extra):
    return run([*RUNNER, "--input", str(folder), "--output", str(out), "--state", str(state),
                "--model_path", checkpoint, *extra])


def decided(out) -> list[str]:
    outputs = read_outputs(str(out))
    return sorted(r["uri"] for r in outputs["text"] + outputs["non_text"])


def test_second_run_decides_only_new_images(student_checkpoint, tmp_path):
    images, state = tmp_path / "images", tmp_path / "state"
    first = write_images(images, 0, 25)
    summary = filter_run(images, tmp_path / "out1", state, student_checkpoint)
    assert decided(tmp_path / "out1") == sorted(first)
    assert summary["skipped"] == 0
    assert sorted(e["uri"] for e in StateStore(str(state)).entries()) == sorted(first)

    added = write_images(images, 25, 5)
    summary = filter_run(images, tmp_path / "out2", state, student_checkpoint)
    assert decided(tmp_path / "out2") == sorted(added)
    assert summary["images"] == 5 and summary["skipped"] == 25
    entries = StateStore(str(state)).entries()
    assert sorted(e["uri"] for e in entries) == sorted(first + added)
    assert all(set(e) == {"uri", "fingerprint", "label", "score", "decided_at"} and e["fingerprint"] for e in entries)


def test_changed_image_is_decided_again_and_failed_ones_retried(student_checkpoint, tmp_path):
    images, state = tmp_path / "images", tmp_path / "state"
    paths = write_images(images, 0, 4)
    broken = images / "broken.jpg"
    broken.write_bytes(b"not an image")
    filter_run(images, tmp_path / "out1", state, student_checkpoint)
    with open(paths[0], "wb") as f:
        f.write(image_bytes("PNG", (99, 77), color=(1, 2, 3)))
    os.utime(paths[0], (1_900_000_000, 1_900_000_000))
    filter_run(images, tmp_path / "out2", state, student_checkpoint)
    outputs = read_outputs(str(tmp_path / "out2"))
    assert decided(tmp_path / "out2") == [paths[0]]
    assert [r["uri"] for r in outputs["failed"]] == [str(broken)]  # never recorded: retried


def test_reprocess_decides_everything(student_checkpoint, tmp_path):
    images, state = tmp_path / "images", tmp_path / "state"
    paths = write_images(images, 0, 3)
    filter_run(images, tmp_path / "out1", state, student_checkpoint)
    summary = filter_run(images, tmp_path / "out2", state, student_checkpoint, "--reprocess")
    assert decided(tmp_path / "out2") == sorted(paths) and summary["skipped"] == 0


def test_entries_of_inputs_not_listed_are_kept_and_old_generations_pruned(student_checkpoint, tmp_path):
    state = tmp_path / "state"
    a, b = tmp_path / "a", tmp_path / "b"
    in_a, in_b = write_images(a, 0, 2), write_images(b, 2, 2)
    filter_run(a, tmp_path / "out1", state, student_checkpoint)
    filter_run(b, tmp_path / "out2", state, student_checkpoint)
    filter_run(b, tmp_path / "out3", state, student_checkpoint)
    assert decided(tmp_path / "out3") == []
    assert sorted(e["uri"] for e in StateStore(str(state)).entries()) == sorted(in_a + in_b)
    generations = sorted(os.listdir(state / GENERATIONS))
    assert len(generations) == 2
    assert (state / CURRENT).read_text().strip() == generations[-1]


def test_crashed_run_does_not_mark_images_done(student_checkpoint, tmp_path, monkeypatch):
    images, state = tmp_path / "images", tmp_path / "state"
    first = write_images(images, 0, 3)
    filter_run(images, tmp_path / "out1", state, student_checkpoint)
    live = (state / CURRENT).read_text()
    write_images(images, 3, 2)

    def crash(self, *args, **kwargs):
        raise RuntimeError("killed while publishing")

    monkeypatch.setattr(pipeline.sinks._FinalizeFn, "process", crash)
    with pytest.raises(Exception, match="killed while publishing"):
        filter_run(images, tmp_path / "out2", state, student_checkpoint)
    assert (state / CURRENT).read_text() == live
    assert sorted(e["uri"] for e in StateStore(str(state)).entries()) == sorted(first)


def test_fingerprint_from_listing_info():
    assert fingerprint({"type": "file", "size": 10, "mtime": 1.5}) == "size=10;mtime=1.5"
    assert fingerprint({"type": "file", "size": 10, "generation": "7", "md5Hash": "x"}) == "size=10;generation=7;md5Hash=x"
    assert fingerprint({"type": "file", "size": 10}) is None  # size alone does not tell a change
    assert fingerprint(None) is None and fingerprint({"type": "directory", "mtime": 1}) is None


def test_http_inputs_skipped_by_etag_and_never_without_one(student_checkpoint, tmp_path):
    from tests.http_server import HttpServer, Route

    data = image_bytes("PNG", (80, 60))
    with HttpServer({"/a.png": Route(body=data), "/b.png": Route(body=data, etag='"v1"')}) as server:
        listing = tmp_path / "urls.txt"
        listing.write_text(server.url("/a.png") + "\n" + server.url("/b.png") + "\n")
        for out in ("out1", "out2"):  # a.png has no ETag / Last-Modified: processed every time
            summary = run([*RUNNER, "--input_list", str(listing), "--output", str(tmp_path / out), "--state",
                           str(tmp_path / "state"), "--model_path", student_checkpoint])
        assert_conserved(read_outputs(str(tmp_path / "out1")), [server.url("/a.png"), server.url("/b.png")])
        assert_conserved(read_outputs(str(tmp_path / "out2")), [server.url("/a.png")])
        assert summary["skipped"] == 1
        server.routes["/b.png"] = Route(body=data, etag='"v2"')  # changed on the server
        run([*RUNNER, "--input_list", str(listing), "--output", str(tmp_path / "out3"), "--state",
             str(tmp_path / "state"), "--model_path", student_checkpoint])
        assert_conserved(read_outputs(str(tmp_path / "out3")), [server.url("/a.png"), server.url("/b.png")])


def test_reprocess_needs_state(student_checkpoint, tmp_path):
    with pytest.raises(ValueError, match="--state"):
        run([*RUNNER, "--reprocess", "--output", str(tmp_path / "out"), "--model_path", student_checkpoint])
