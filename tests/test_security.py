"""Security at the pipeline level: resource limits, OCR inbox names that cannot escape the
inbox, and credentials in URIs that never reach logs, failed records or reports.
(Checkpoints that run code on load are refused: tests/test_checkpoints.py.)"""

from __future__ import annotations

import logging
import os

import pytest

from pipeline.run import run
from tests.faulty_fs import Fault
from tests.http_server import HttpServer, Route
from tests.images import image_bytes
from tests.pipeline_helpers import assert_conserved, read_outputs

RUNNER = ["--runner=FnApiRunner"]


def tree(folder) -> set[str]:
    """Every path below ``folder`` (files and folders), relative."""
    found = set()
    for root, dirs, files in os.walk(folder):
        found.update(os.path.relpath(os.path.join(root, n), folder) for n in dirs + files)
    return found


def test_resource_limits_fail_the_input_not_the_run(faulty_fs, student_checkpoint, tmp_path):
    small = tmp_path / "small.jpg"
    small.write_bytes(image_bytes("JPEG", (64, 48)))
    big = tmp_path / "big.jpg"
    big.write_bytes(image_bytes("JPEG", (64, 48)) + b"\0" * 30_000)
    wide = tmp_path / "wide.png"
    wide.write_bytes(image_bytes("PNG", (1000, 200), mode="L"))  # 200,000 pixels, a few hundred bytes
    stuck = faulty_fs.put("stuck.jpg", small.read_bytes(), Fault(hang_all=True))
    listing = tmp_path / "uris.txt"
    uris = [str(small), str(big), str(wide), stuck]
    listing.write_text("\n".join(uris) + "\n")
    out = str(tmp_path / "out")
    run([*RUNNER, "--input_list", str(listing), "--output", out, "--model_path", student_checkpoint,
         "--max_bytes", "20000", "--max_pixels", "100000", "--read_timeout", "0.3", "--read_retries", "1"])
    outputs = read_outputs(out)
    assert_conserved(outputs, uris)
    failed = {r["uri"]: r for r in outputs["failed"]}
    assert sorted(failed) == sorted(uris[1:])
    assert failed[str(big)]["stage"] == "read" and "max_bytes=20000" in failed[str(big)]["error"]
    assert failed[str(wide)]["stage"] == "decode" and "more than the limit 100000" in failed[str(wide)]["error"]
    assert failed[stuck]["stage"] == "read" and "timed out after 0.3 s (after 2 attempts)" in failed[stuck]["error"]


HOSTILE_NAMES = [
    "-rf --no-preserve-root.jpg",
    "line\nbreak.jpg",
    "\u202egpj.exe",                       # right-to-left override: shows as exe.jpg
    "ＦＵＬＬ／ＷＩＤＴＨ.jpg",                 # full-width solidus
    "文字.jpg",                            # nothing ASCII but the extension
    "\u0301\u200b\u200d",                  # only combining and zero-width characters
    "CON",
    "x" * 240 + ".jpg",
]
# Names starting with a dot are hidden, so a folder input skips them: they are listed.
LISTED_NAMES = ["..%2f..%2fescape.jpg", "..\\..\\windows.jpg"]


def test_ocr_inbox_names_cannot_escape_the_inbox(student_checkpoint, tmp_path):
    inputs = tmp_path / "in"
    for sub in ("a", "b", "listed"):
        (inputs / sub).mkdir(parents=True)
    data = {}
    for i, name in enumerate(HOSTILE_NAMES):
        data[str(inputs / "a" / name)] = image_bytes("JPEG", (64 + i, 48))
    data[str(inputs / "b" / "CON")] = image_bytes("PNG", (50, 50))  # the same base name twice
    listed = [str(inputs / "listed" / name) for name in LISTED_NAMES]
    listed += [str(inputs / "b" / ".." / "a" / "CON")]  # a file already read, under a second spelling
    for path in listed[:-1]:
        data[path] = image_bytes("JPEG", (40, 40))
    for path, content in data.items():
        with open(path, "wb") as f:
            f.write(content)
    listing = tmp_path / "uris.txt"
    listing.write_text("\n".join(listed) + "\n")
    before = tree(tmp_path)
    out, inbox = tmp_path / "out", tmp_path / "inbox"
    run([*RUNNER, "--input", str(inputs / "a"), "--input", str(inputs / "b"), "--input_list", str(listing),
         "--output", str(out), "--model_path", student_checkpoint, "--threshold", "0", "--ocr_inbox", str(inbox)])
    text = read_outputs(str(out))["text"]
    assert_conserved({"text": text, "non_text": [], "failed": []}, sorted(set(data) | set(listed)))
    copied = os.listdir(inbox)
    assert len(copied) == len(text) == len(data) + 1
    for name in copied:
        assert name.isascii() and name.isprintable() and not name.startswith((".", "-"))
        assert "/" not in name and "\\" not in name and len(name) <= 100
        assert os.path.isfile(inbox / name) and not os.path.islink(inbox / name)
    for record in text:
        target = record["ocr_inbox_uri"]
        assert os.path.dirname(target) == str(inbox)
        with open(target, "rb") as f:
            assert f.read() == data[os.path.normpath(record["uri"])]
    new = tree(tmp_path) - before
    assert all(p.split(os.sep)[0] in ("out", "inbox") for p in new), new


SECRETS = ["hunter2-PASSWORD", "SIGNATURE0123456789abcdef", "svc-account@project", "svc-account%40project",
           "TOKEN-s3cr3t-value", "bearer-TOKEN-as-user"]


@pytest.fixture
def http_server():
    with HttpServer({
        "/forbidden.jpg": Route(status=403),
        "/error.jpg": Route(status=500),
        "/page.jpg": Route(body=b"<!DOCTYPE html><html>sign in</html>"),
        "/direct-input.jpg": Route(body=b"<!DOCTYPE html><html>sign in</html>"),
    }) as server:
        yield server


def test_credentials_in_uris_never_reach_logs_records_or_reports(http_server, student_checkpoint, tmp_path,
                                                                 caplog, capfd):
    signed = "X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=svc-account%40project&" \
             "X-Goog-Signature=SIGNATURE0123456789abcdef&w=200"
    uris = [
        http_server.url("/forbidden.jpg", "alice:hunter2-PASSWORD", signed),
        http_server.url("/missing.jpg", query=signed),
        http_server.url("/error.jpg", query="token=TOKEN-s3cr3t-value"),
        http_server.url("/page.jpg", "bearer-TOKEN-as-user", "sig=SIGNATURE0123456789abcdef"),
        http_server.url("/direct-input.jpg", "alice:hunter2-PASSWORD"),
    ]
    listing = tmp_path / "uris.txt"
    listing.write_text("\n".join(uris[:4]) + "\n")
    out = tmp_path / "out"
    caplog.set_level(logging.DEBUG)
    run([*RUNNER, "--input_list", str(listing), "--input", uris[4], "--output", str(out),
         "--model_path", student_checkpoint, "--read_retries", "1"])
    failed = read_outputs(str(out))["failed"]
    assert len(failed) == 5 and {r["stage"] for r in failed} == {"read", "decode"}
    assert {r["uri"].split("?")[0].rsplit("/", 1)[1] for r in failed} == {
        "forbidden.jpg", "missing.jpg", "error.jpg", "page.jpg", "direct-input.jpg"}
    by_name = {r["uri"].split("?")[0].rsplit("/", 1)[1]: r for r in failed}
    assert "permission denied (HTTP 403)" == by_name["forbidden.jpg"]["error"]
    assert "500" in by_name["error.jpg"]["error"] and "(after 2 attempts)" in by_name["error.jpg"]["error"]
    written = "".join(open(os.path.join(out, f), encoding="utf-8").read() for f in os.listdir(out))
    captured = capfd.readouterr()
    everything = {"logs": caplog.text, "stdout": captured.out, "stderr": captured.err, "outputs": written}
    assert "REDACTED" in written
    for where, text in everything.items():
        for secret in SECRETS:
            assert secret not in text, f"{secret} in {where}"
