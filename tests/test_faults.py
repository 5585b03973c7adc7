"""Storage faults, injected through a fault filesystem: transient ones are retried with
backoff, permanent ones (and transient ones that outlast the retries) end in ``failed``."""

from __future__ import annotations

import re
import time

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.io import InputTooLarge, ReadConfig, ReadError, read_bytes
from pipeline.run import config_from_options, run
from tests.faulty_fs import PROTOCOL, Fault
from tests.http_server import HttpServer, Route
from tests.images import image_bytes
from tests.pipeline_helpers import assert_conserved, read_outputs

DATA = bytes(range(256)) * 40
BACKOFF = [0.2, 0.4, 0.8, 1.6]


def read(uri, sleeps, **config):
    return read_bytes(uri, ReadConfig(**{"retries": 3, "timeout_s": 2.0, **config}), sleep=sleeps.append)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_first_k_failed_reads_are_retried_with_backoff(faulty_fs, k):
    uri = faulty_fs.put("a.bin", DATA, Fault(fail_first=k))
    sleeps = []
    assert read(uri, sleeps) == DATA
    assert sleeps == BACKOFF[:k]
    assert faulty_fs.opens["a.bin"] == k + 1


def test_transient_fault_outlasting_the_retries_fails_with_reason(faulty_fs):
    uri = faulty_fs.put("a.bin", DATA, Fault(fail_first=99, error=TimeoutError))
    sleeps = []
    with pytest.raises(ReadError, match=r"^TimeoutError: injected fault on attempt 3 \(after 3 attempts\)$"):
        read(uri, sleeps, retries=2)
    assert sleeps == BACKOFF[:2]


@pytest.mark.parametrize("error,reason", [
    (PermissionError, "permission denied"),
    (FileNotFoundError, "file not found"),
    (IsADirectoryError, "is a directory"),
])
def test_permanent_faults_are_not_retried(faulty_fs, error, reason):
    uri = faulty_fs.put("a.bin", DATA, Fault(fail_first=1, error=error))
    sleeps = []
    with pytest.raises(ReadError, match=reason):
        read(uri, sleeps)
    assert sleeps == [] and faulty_fs.opens["a.bin"] == 1


def test_missing_object_is_not_retried(faulty_fs):
    sleeps = []
    with pytest.raises(ReadError, match="file not found"):
        read(f"{PROTOCOL}://nothing-here.jpg", sleeps)
    assert sleeps == []


def test_hung_read_times_out_and_is_retried(faulty_fs):
    uri = faulty_fs.put("slow.bin", DATA, Fault(hang_first=1))
    sleeps = []
    start = time.perf_counter()
    assert read(uri, sleeps, timeout_s=0.2) == DATA
    assert time.perf_counter() - start < 2
    assert sleeps == BACKOFF[:1] and faulty_fs.opens["slow.bin"] == 2


def test_read_that_always_hangs_fails_after_retries(faulty_fs):
    uri = faulty_fs.put("stuck.bin", DATA, Fault(hang_all=True))
    sleeps = []
    start = time.perf_counter()
    with pytest.raises(ReadError, match=r"ReadTimeout: read timed out after 0.1 s \(after 3 attempts\)"):
        read(uri, sleeps, timeout_s=0.1, retries=2)
    assert time.perf_counter() - start < 2  # the hung threads are abandoned, not waited for


def test_short_reads_are_assembled(faulty_fs):
    uri = faulty_fs.put("a.bin", DATA, Fault(chunk=7))
    sleeps = []
    assert read(uri, sleeps) == DATA
    assert sleeps == [] and faulty_fs.reads["a.bin"] > len(DATA) // 7


def test_premature_end_of_file_is_retried(faulty_fs):
    uri = faulty_fs.put("a.bin", DATA, Fault(cut_first=2))
    sleeps = []
    assert read(uri, sleeps) == DATA
    assert sleeps == BACKOFF[:2]
    uri = faulty_fs.put("b.bin", DATA, Fault(cut_first=99))
    with pytest.raises(ReadError, match=rf"IncompleteRead: got {len(DATA) // 2} of {len(DATA)} bytes"):
        read(uri, sleeps, retries=1)


def test_declared_size_over_max_bytes_is_refused_before_reading(faulty_fs):
    uri = faulty_fs.put("big.bin", DATA, Fault(size=10**12))
    with pytest.raises(InputTooLarge, match="max_bytes"):
        read(uri, [], max_bytes=10**6)
    assert faulty_fs.reads["big.bin"] == 0


def test_http_errors_are_retried_or_not_by_status():
    """fsspec reports every failed HTTP request as FileNotFoundError: the status decides."""
    with HttpServer({
        "/flaky.jpg": Route(body=DATA, fail_first=2, fail_status=503),  # HEAD and GET of the first attempt
        "/throttled.jpg": Route(body=DATA, fail_first=2, fail_status=429),
        "/forbidden.jpg": Route(status=403),
        "/gone.jpg": Route(status=410),
        "/down.jpg": Route(status=502),
    }) as server:
        for path in ("/flaky.jpg", "/throttled.jpg"):
            sleeps = []
            assert read(server.url(path), sleeps) == DATA
            assert sleeps == BACKOFF[:1]
        for path, reason in (("/forbidden.jpg", "permission denied (HTTP 403)"), ("/gone.jpg", "file not found"),
                             ("/missing.jpg", "file not found")):
            sleeps = []
            with pytest.raises(ReadError, match=re.escape(reason)):
                read(server.url(path), sleeps)
            assert sleeps == [], path
        sleeps = []
        with pytest.raises(ReadError, match=r"502.*\(after 3 attempts\)"):
            read(server.url("/down.jpg"), sleeps, retries=2)
        assert sleeps == BACKOFF[:2]
        closed = server.url("/flaky.jpg")
    sleeps = []
    with pytest.raises(ReadError, match=r"(after 2 attempts)"):  # nothing listens on the port any more
        read(closed, sleeps, retries=1)
    assert sleeps == BACKOFF[:1]


def test_read_timeout_flag_reaches_the_read_config(student_checkpoint):
    def config(*flags):
        return config_from_options(PipelineOptions(["--model_path", student_checkpoint, *flags])).read

    assert config().timeout_s == 60.0
    assert config("--read_timeout", "2.5").timeout_s == 2.5
    assert config("--read_timeout", "0").timeout_s is None


def test_pipeline_retries_transient_faults_and_fails_permanent_ones(faulty_fs, student_checkpoint, tmp_path):
    jpeg = image_bytes("JPEG", (300, 200))
    recovers = {
        "flaky.jpg": Fault(fail_first=1),
        "slow_once.jpg": Fault(hang_first=1),
        "short_reads.jpg": Fault(chunk=100),
        "cut_once.jpg": Fault(cut_first=1),
    }
    fails = {
        "down.jpg": (Fault(fail_first=99), "ConnectionResetError"),
        "stuck.jpg": (Fault(hang_all=True), "timed out"),
        "forbidden.jpg": (Fault(fail_first=1, error=PermissionError), "permission denied"),
        "always_cut.jpg": (Fault(cut_first=99), "IncompleteRead"),
    }
    uris = [faulty_fs.put(name, jpeg, fault) for name, fault in recovers.items()]
    uris += [faulty_fs.put(name, jpeg, fault) for name, (fault, _) in fails.items()]
    uris.append(f"{PROTOCOL}://missing.jpg")
    listing = tmp_path / "uris.txt"
    listing.write_text("\n".join(uris) + "\n")
    out = str(tmp_path / "out")
    run(["--runner=FnApiRunner", "--input_list", str(listing), "--output", out, "--model_path", student_checkpoint,
         "--read_retries", "1", "--read_timeout", "0.2"])
    outputs = read_outputs(out)
    assert_conserved(outputs, uris)
    failed = {r["uri"].split("://", 1)[1]: r for r in outputs["failed"]}
    assert sorted(failed) == sorted([*fails, "missing.jpg"])
    for name, (_, reason) in fails.items():
        assert failed[name]["stage"] == "read" and reason in failed[name]["error"], failed[name]
    assert "not found" in failed["missing.jpg"]["error"]
    assert all(faulty_fs.opens[name] >= 2 for name in ("flaky.jpg", "slow_once.jpg", "cut_once.jpg"))
