"""The bad-input corpus (tests/data/make_bad_corpus.py): every entry is decided by its
content, whatever its name; broken ones end in ``failed`` with a readable reason."""

from __future__ import annotations

import os

import pytest

from pipeline.io import ReadConfig, expand_pattern
from pipeline.records import FAILED, NON_TEXT, TEXT
from pipeline.run import run
from pipeline.transforms import ReadAndDecodeFn
from tests.data.make_bad_corpus import CORPUS_FLAGS, DECIDED, EITHER, MAX_BYTES, REASONS, make_corpus
from tests.images import image_bytes
from tests.pipeline_helpers import assert_conserved, read_outputs


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[str, dict[str, str]]:
    folder = str(tmp_path_factory.mktemp("corpus") / "bad")
    return folder, make_corpus(folder)


def assert_readable(record: dict) -> None:
    error = record["error"]
    assert error and "\n" not in error and "Traceback" not in error and len(error) <= 500, record
    assert record["stage"] in ("read", "decode") and record["error_type"], record


def assert_outcomes(outcomes: dict[str, dict], expected: dict[str, str]) -> None:
    """``outcomes``: name -> its record. Decided kinds decided, failed ones failed with the reason."""
    assert sorted(outcomes) == sorted(expected)
    for name, want in expected.items():
        record = outcomes[name]
        if want == EITHER:
            continue
        got = DECIDED if record["label"] in (TEXT, NON_TEXT) else FAILED
        assert got == want, (name, record)
        if got == FAILED:
            assert_readable(record)
            assert REASONS.get(name, "").lower() in record["error"].lower(), (name, record)


def test_corpus_has_the_kinds_and_odd_names(corpus):
    _, expected = corpus
    assert len(expected) >= 20
    assert sum(v == DECIDED for v in expected.values()) >= 10 and sum(v == FAILED for v in expected.values()) >= 10
    names = list(expected)
    for odd in (" ", "#", "?", "::", "\\"):
        assert any(odd in n for n in names), odd
    assert any(not n.isascii() for n in names) and any("." not in n for n in names)
    assert set(REASONS) <= set(expected)


def test_every_entry_is_decided_or_failed_with_a_reason(corpus):
    folder, expected = corpus
    decode = ReadAndDecodeFn(ReadConfig(max_bytes=MAX_BYTES, retries=0))
    outcomes = {}
    for name in expected:
        (out,) = decode.process(os.path.join(folder, name))
        outcomes[name] = out.value if getattr(out, "tag", None) == FAILED else {"label": TEXT}
    assert_outcomes(outcomes, expected)


def test_folder_input_lists_every_entry_but_the_directory(corpus):
    folder, expected = corpus
    listed = sorted(os.path.relpath(u, folder) for u in expand_pattern(folder))
    assert listed == sorted(n for n in expected if not os.path.isdir(os.path.join(folder, n)))


def test_a_file_name_with_wildcards_is_found_literally(tmp_path):
    (tmp_path / "img[1].jpg").write_bytes(image_bytes("JPEG"))
    assert list(expand_pattern(str(tmp_path / "img[1].jpg"))) == [str(tmp_path / "img[1].jpg")]


def test_corpus_through_the_pipeline_multi_processing(corpus, student_checkpoint, tmp_path):
    folder, expected = corpus
    listing = tmp_path / "uris.txt"  # a folder input skips sub-folders: name the one in the corpus
    listing.write_text(os.path.join(folder, "a directory.jpg") + "\n", encoding="utf-8")
    out = str(tmp_path / "out")
    summary = run(["--runner=FnApiRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=2",
                   "--input", folder, "--input_list", str(listing), "--output", out,
                   "--model_path", student_checkpoint, *CORPUS_FLAGS])
    outputs = read_outputs(out)
    assert_conserved(outputs, [os.path.join(folder, name) for name in expected])
    records = [r for route in outputs.values() for r in route]
    assert_outcomes({os.path.relpath(r["uri"], folder): r for r in records}, expected)
    assert summary["images"] == len(expected)
