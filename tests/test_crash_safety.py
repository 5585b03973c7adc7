"""Crashes, killed workers and re-executed bundles never leave duplicate, missing or
half-written records in the outputs.

FnApiRunner does not retry a failed bundle, so a retry is reproduced the way Beam does it:
the writing DoFns run once more over the same input after a first attempt whose side
effects stay and whose outputs are thrown away. Crashes are real: a DoFn that raises
mid-run, and a job process killed with SIGKILL in the middle of writing a file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from pipeline.records import ROUTES
from pipeline.run import run
from pipeline.sinks import STAGING, TMP, CopyToOcrInboxFn, _FinalizeFn, _WriteShardFn, write_atomically
from pipeline.transforms import RouteByScoreFn
from tests.conftest import REPO, SAMPLES
from tests.pipeline_helpers import assert_conserved, read_outputs

RUNNER = ["--runner=FnApiRunner"]
SAMPLE_URIS = sorted(os.path.join(SAMPLES, n) for n in os.listdir(SAMPLES))


def snapshot(folder) -> dict[str, bytes]:
    """Every file below ``folder`` (relative path -> bytes)."""
    files = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, folder)] = f.read()
    return files


def visible(files: dict[str, bytes]) -> dict[str, bytes]:
    """What a reader of the output folder sees: no hidden names (staging, temporary)."""
    return {p: b for p, b in files.items() if not any(part.startswith(".") for part in p.split(os.sep))}


def assert_no_leftovers(folder) -> None:
    left = [p for p in snapshot(folder) if TMP in p or STAGING in p]
    assert not left, f"temporary or staging files left: {left}"


def run_filter(out, model, *flags):
    return run([*RUNNER, "--output", str(out), "--model_path", model, *flags])


# --- the writing DoFns, re-executed ---------------------------------------------------


def test_write_shard_fn_rewrites_the_same_shard(tmp_path):
    fn = _WriteShardFn("text", str(tmp_path / ".staging-x" / "text"), {})
    lines = ['{"uri": "b"}', '{"uri": "a"}', '{"uri": "c"}']
    first = list(fn.process((1, lines), 3))
    files = snapshot(tmp_path)
    second = list(fn.process((1, list(reversed(lines))), 3))  # a retry may see another order
    assert first == second == [("text", str(tmp_path / ".staging-x" / "text-00001-of-00003.jsonl"))]
    assert snapshot(tmp_path) == files
    assert list(files.values()) == [b'{"uri": "a"}\n{"uri": "b"}\n{"uri": "c"}\n']


def stage_run(out, staging_id, shards: dict[str, list[str]]):
    """Staged shards as _WriteShardFn leaves them; returns _FinalizeFn's side input."""
    staged = []
    for route, bodies in shards.items():
        fn = _WriteShardFn(route, os.path.join(out, STAGING + staging_id, route), {})
        for i, body in enumerate(bodies):
            staged += fn.process((i, [body]), len(bodies))
    return staged


@pytest.fixture
def previous_run(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    old = {"text-00000-of-00002.jsonl": b'{"uri": "old1"}\n', "text-00001-of-00002.jsonl": b'{"uri": "old2"}\n',
           "non_text-00000-of-00001.jsonl": b"", "failed-00000-of-00001.jsonl": b'{"uri": "old3"}\n',
           "summary.json": b"{}", ".staging-crashed/text/text-00000-of-00001.jsonl": b"{}\n"}
    for name, data in old.items():
        os.makedirs(os.path.dirname(out / name), exist_ok=True)
        (out / name).write_bytes(data)
    return str(out)


EXPECTED_AFTER_FINALIZE = {
    "text-00000-of-00001.jsonl": b'{"uri": "new1"}\n',
    "non_text-00000-of-00002.jsonl": b'{"uri": "new2"}\n',
    "non_text-00001-of-00002.jsonl": b'{"uri": "new3"}\n',
    "failed-00000-of-00001.jsonl": b"",
    "summary.json": b"{}",
}


def test_finalize_fn_publishes_once_however_often_it_runs(previous_run):
    staged = stage_run(previous_run, "new", {"text": ['{"uri": "new1"}'],
                                             "non_text": ['{"uri": "new2"}', '{"uri": "new3"}']})
    fn = _FinalizeFn(previous_run, ROUTES, {})
    first = list(fn.process(None, staged))
    assert snapshot(previous_run) == EXPECTED_AFTER_FINALIZE
    assert list(fn.process(None, staged)) == first  # re-executed after it completed
    assert snapshot(previous_run) == EXPECTED_AFTER_FINALIZE


def test_finalize_fn_interrupted_midway_completes_when_rerun(previous_run, monkeypatch):
    staged = stage_run(previous_run, "new", {"text": ['{"uri": "new1"}'],
                                             "non_text": ['{"uri": "new2"}', '{"uri": "new3"}']})
    fn = _FinalizeFn(previous_run, ROUTES, {})
    import fsspec.implementations.local as local

    real_mv, moves = local.LocalFileSystem.mv, []

    def mv_then_die(self, *args, **kwargs):
        if len(moves) == 1:
            raise OSError("worker killed")
        moves.append(args)
        return real_mv(self, *args, **kwargs)

    monkeypatch.setattr(local.LocalFileSystem, "mv", mv_then_die)
    with pytest.raises(OSError, match="worker killed"):
        list(fn.process(None, staged))
    monkeypatch.undo()
    list(fn.process(None, staged))
    assert snapshot(previous_run) == EXPECTED_AFTER_FINALIZE


def test_finalize_fn_never_drops_a_shard_silently(tmp_path):
    fn = _FinalizeFn(str(tmp_path), ROUTES, {})
    with pytest.raises(FileNotFoundError, match="missing"):
        list(fn.process(None, [("text", str(tmp_path / ".staging-x" / "text-00000-of-00001.jsonl"))]))


def test_copy_to_ocr_inbox_fn_copies_once(tmp_path):
    image = tmp_path / "a.jpg"
    image.write_bytes(b"image bytes")
    fn = CopyToOcrInboxFn(str(tmp_path / "inbox"))
    record = {"uri": str(image), "label": "text"}
    first, second = list(fn.process(record)), list(fn.process(record))
    assert first == second and len(first) == 1
    assert snapshot(tmp_path / "inbox") == {os.path.basename(first[0]["ocr_inbox_uri"]): b"image bytes"}


def test_failed_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    import fsspec.implementations.local as local

    monkeypatch.setattr(local.LocalFileSystem, "mv", lambda self, *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        write_atomically(str(tmp_path / "x.jsonl"), b"data")
    assert os.listdir(tmp_path) == []


# --- whole pipelines --------------------------------------------------------------------


def twice(process):
    """``process`` as a retried bundle runs it: a first attempt whose side effects stay and
    whose outputs Beam discards, then the attempt that counts."""
    def retried(self, *args, **kwargs):
        list(process(self, *args, **kwargs))
        yield from process(self, *args, **kwargs)
    return retried


def test_re_executed_bundles_write_no_duplicates(mixed_folder, student_checkpoint, tmp_path, monkeypatch):
    for fn in (_WriteShardFn, _FinalizeFn, CopyToOcrInboxFn):
        monkeypatch.setattr(fn, "process", twice(fn.process))
    out, inbox = tmp_path / "out", tmp_path / "inbox"
    run_filter(out, student_checkpoint, "--input", mixed_folder["dir"], "--threshold", "0",
               "--ocr_inbox", str(inbox), "--records_per_shard", "3")
    outputs = read_outputs(str(out))
    assert_conserved(outputs, mixed_folder["good"] + mixed_folder["bad"])
    assert sorted(os.listdir(inbox)) == sorted(os.path.basename(r["ocr_inbox_uri"]) for r in outputs["text"])
    assert_no_leftovers(out)
    assert_no_leftovers(inbox)


class Crash(RuntimeError):
    pass


def crash_after(n, process):
    calls = []

    def crashing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > n:
            raise Crash("injected crash")
        yield from process(self, *args, **kwargs)
    return crashing


@pytest.mark.parametrize("where", [(RouteByScoreFn, 3), (_WriteShardFn, 1), (_FinalizeFn, 0)],
                         ids=["mid-routing", "mid-writing", "before-publishing"])
def test_crashed_rerun_leaves_previous_outputs_intact(where, student_checkpoint, tmp_path, monkeypatch):
    out = tmp_path / "out"
    run_filter(out, student_checkpoint, "--threshold", "0")  # every sample is text
    before = snapshot(out)
    fn, n = where
    monkeypatch.setattr(fn, "process", crash_after(n, fn.process))
    with pytest.raises(Exception, match="injected crash"):  # every sample would move to non_text
        run_filter(out, student_checkpoint, "--threshold", "1", "--records_per_shard", "5")
    assert visible(snapshot(out)) == before
    monkeypatch.undo()
    run_filter(out, student_checkpoint, "--threshold", "1", "--records_per_shard", "5")
    outputs = read_outputs(str(out))
    assert_conserved(outputs, SAMPLE_URIS)
    assert len(outputs["non_text"]) == len(SAMPLE_URIS)
    assert_no_leftovers(out)


KILLED_MID_WRITE = textwrap.dedent("""
    import os, signal, sys
    import pipeline.sinks as sinks

    real, calls = sinks.write_atomically, []

    def write_then_die(uri, data, storage_options=None):
        calls.append(uri)
        if len(calls) < 2:
            return real(uri, data, storage_options)
        parent, name = uri.rsplit("/", 1)
        with open(f"{parent}/{sinks.TMP}killed-{name}", "wb") as f:  # as write_atomically would
            f.write(data[: len(data) // 2])
        os.kill(os.getpid(), signal.SIGKILL)

    sinks.write_atomically = write_then_die
    from pipeline.run import main
    sys.exit(main(sys.argv[1:]))
""")


def test_job_killed_mid_write_leaves_previous_outputs_intact(student_checkpoint, tmp_path):
    out = tmp_path / "out"
    run_filter(out, student_checkpoint, "--threshold", "0")
    before = snapshot(out)
    killed = subprocess.run(  # killed while writing its second shard of three
        [sys.executable, "-c", KILLED_MID_WRITE, *RUNNER, "--output", str(out), "--model_path", student_checkpoint,
         "--threshold", "1", "--records_per_shard", "5"], cwd=REPO, capture_output=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    after = snapshot(out)
    assert visible(after) == before
    assert any(TMP in p and STAGING in p for p in after), "the kill did not happen mid-write"
    run_filter(out, student_checkpoint, "--threshold", "1")
    outputs = read_outputs(str(out))
    assert_conserved(outputs, SAMPLE_URIS)
    assert len(outputs["non_text"]) == len(SAMPLE_URIS)
    assert_no_leftovers(out)
