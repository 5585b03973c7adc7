import pytest

from pipeline.io import ReadConfig, ReadError, InputTooLarge, expand_pattern, read_bytes
from pipeline.records import failed_record
from pipeline.uris import redact_text, redact_uri, safe_name


@pytest.mark.parametrize("uri,secret", [
    ("https://alice:hunter2@example.com/a.jpg", "hunter2"),
    ("https://example.com/a.jpg?X-Goog-Signature=abc123def&X-Goog-Credential=svc%40p", "abc123def"),
    ("https://example.com/a.jpg?X-Amz-Signature=deadbeef&w=200", "deadbeef"),
    ("https://example.com/a.jpg?token=s3cr3t", "s3cr3t"),
])
def test_secrets_never_reach_failed_records(uri, secret):
    assert secret not in redact_uri(uri)
    rec = failed_record(uri, "read", OSError(f"GET {uri} failed: 403"))
    assert secret not in str(rec)
    assert rec["uri"].startswith("https://")


def test_redaction_keeps_harmless_parts():
    assert redact_uri("/data/a.jpg") == "/data/a.jpg"
    assert redact_uri("gs://b/a.jpg") == "gs://b/a.jpg"
    assert redact_uri("https://example.com/a.jpg?w=200") == "https://example.com/a.jpg?w=200"
    assert "hunter2" not in redact_text("see https://bob:hunter2@h/x", "other")


@pytest.mark.parametrize("uri", [
    "../../etc/passwd", "/abs/path/../../x.jpg", "gs://b/dir/..", "https://h/a/%2e%2e/b.jpg",
    "C:\\windows\\system32\\x.jpg", "foto_\u0301\u202e\u200bgpj.exe", ".hidden", "a/b/", "",
])
def test_safe_names_cannot_escape_the_folder(uri):
    name = safe_name(uri)
    assert name and "/" not in name and "\\" not in name
    assert not name.startswith(".")
    assert name.isascii() and len(name) <= 100


def test_safe_names_do_not_collide():
    assert safe_name("gs://a/x/img.jpg") != safe_name("gs://b/x/img.jpg")
    assert safe_name("gs://a/x/img.jpg").endswith("_img.jpg")


def test_read_retries_transient_errors_then_succeeds(tmp_path, monkeypatch):
    path = tmp_path / "a.bin"
    path.write_bytes(b"abc")
    import pipeline.io as io_mod

    real = io_mod.filesystem
    calls = {"n": 0}

    def flaky(uri, so=None):
        calls["n"] += 1
        if calls["n"] <= 2:
            raise ConnectionResetError("reset by peer")
        return real(uri, so)

    monkeypatch.setattr(io_mod, "filesystem", flaky)
    sleeps = []
    assert read_bytes(str(path), ReadConfig(retries=3), sleep=sleeps.append) == b"abc"
    assert sleeps == [0.2, 0.4]


def test_read_gives_up_after_retries_and_not_on_permanent_errors(tmp_path, monkeypatch):
    import pipeline.io as io_mod

    monkeypatch.setattr(io_mod, "filesystem", lambda uri, so=None: (_ for _ in ()).throw(TimeoutError("slow")))
    sleeps = []
    with pytest.raises(ReadError, match="after 3 attempts"):
        read_bytes("x", ReadConfig(retries=2), sleep=sleeps.append)
    assert len(sleeps) == 2
    monkeypatch.undo()
    with pytest.raises(ReadError, match="not found"):
        read_bytes(str(tmp_path / "nope"), ReadConfig(retries=5), sleep=sleeps.append)
    assert len(sleeps) == 2  # no retry of a missing file


def test_max_bytes(tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(b"x" * 1001)
    with pytest.raises(InputTooLarge):
        read_bytes(str(path), ReadConfig(max_bytes=1000))
    assert len(read_bytes(str(path), ReadConfig(max_bytes=1001))) == 1001


def test_expand_folder_glob_and_single(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("a.jpg", "b.png", "sub/c.jpg", ".hidden.jpg"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.rsplit("/", 1)[-1] for p in expand_pattern(str(tmp_path))] == ["a.jpg", "b.png", "c.jpg"]
    assert len(list(expand_pattern(str(tmp_path / "*.jpg")))) == 1
    assert list(expand_pattern(str(tmp_path / "none-*.jpg"))) == []
    assert list(expand_pattern("https://example.com/x.jpg")) == ["https://example.com/x.jpg"]
    assert list(expand_pattern(str(tmp_path / "missing.jpg"))) == [str(tmp_path / "missing.jpg")]


@pytest.mark.parametrize("uri,protocol", [
    ("/data/a::b.jpg", "file"), ("a::b.jpg", "file"), ("file:odd.jpg", "file"), ("C:\\x.jpg", "file"),
    ("file:///data/a.jpg", "file"), ("gs://b/a.jpg", "gs"), ("simplecache::gs://b/a.jpg", "simplecache"),
])
def test_local_names_are_never_parsed_as_urls(uri, protocol):
    from pipeline.uris import get_protocol

    assert get_protocol(uri) == protocol


def test_secrets_in_free_text_are_redacted():
    from pipeline.uris import redact_secrets

    text = "GET https://bob:pw123@h/a.jpg?X-Amz-Signature=abc&w=2 failed; retry https://h/b?token=zz'"
    assert redact_secrets(text) == (
        "GET https://***@h/a.jpg?X-Amz-Signature=REDACTED&w=2 failed; retry https://h/b?token=REDACTED'")
