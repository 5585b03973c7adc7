"""File names are bytes: names that are not UTF-8, in folders, list files, manifests and
WebDataset shards, are decided like any other, and their URIs lead back to the files."""

from __future__ import annotations

import json
import os
import random

import pytest
from apache_beam.coders import coders
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.items import InputItem
from pipeline.records import FAILED, NON_TEXT, ROUTES, TEXT
from pipeline.run import run
from pipeline.state import StateStore
from pipeline.tar import member_uri, split_member_uri
from pipeline.uris import filesystem, is_text, local_path, local_uri, redact_uri, uri_of_name
from tests.images import image_bytes
from tests.pipeline_helpers import assert_conserved, make_shard, read_outputs

JPEG = image_bytes("JPEG", (96, 64))
BROKEN = b"<html>not an image</html>"

# Any bytes but "/" and NUL, up to the file system's 255-byte limit; "." and ".." name folders.
byte_names = st.binary(min_size=1, max_size=255).filter(lambda b: b"/" not in b and b"\0" not in b
                                                      and b not in (b".", b".."))


def assert_survives(uri: str) -> None:
    """JSON, Beam's coders and the failed records' redaction leave ``uri`` as it is."""
    assert is_text(uri)
    assert json.loads(json.dumps({"uri": uri}, ensure_ascii=False))["uri"] == uri
    item = InputItem(uri, "size=1")
    coder = coders.FastPrimitivesCoder()
    assert coder.decode(coder.encode(item)) == item
    assert coders.StrUtf8Coder().decode(coders.StrUtf8Coder().encode(uri)) == uri
    assert redact_uri(uri) == uri


@settings(max_examples=300, deadline=None)
@given(name=byte_names)
def test_every_byte_name_has_a_uri_that_leads_back_to_it(name):
    path = os.fsdecode(b"/data/crawl/" + name)  # as a folder listing gives it
    uri = local_uri(path)
    assert_survives(uri)
    assert os.fsencode(filesystem(uri)[1]) == b"/data/crawl/" + name
    if is_text(path) and ".tar#" not in path.lower():
        assert uri == path  # a name that is text is its own URI, "%E9" in it included
    else:
        assert uri.startswith("file:///data/crawl/")
        assert uri_of_name(path) == uri  # a list line with the same bytes names the same file

    member = os.fsdecode(name)
    uri = member_uri("gs://b/shard-00.tar", member)
    assert_survives(uri)
    assert split_member_uri(uri) == ("gs://b/shard-00.tar", member)
    if is_text(member) and "#" not in member:
        assert uri == "gs://b/shard-00.tar#" + member


def test_percent_in_a_name_is_never_decoded_unless_in_a_file_uri(tmp_path):
    (tmp_path / "caf%E9.jpg").write_bytes(b"text name")
    (tmp_path / os.fsdecode(b"caf\xe9.jpg")).write_bytes(b"byte name")
    plain = str(tmp_path / "caf%E9.jpg")
    assert local_uri(plain) == plain and local_path(plain) == plain
    encoded = local_uri(str(tmp_path / os.fsdecode(b"caf\xe9.jpg")))
    assert encoded == "file://" + str(tmp_path) + "/caf%E9.jpg"
    assert open(filesystem(encoded)[1], "rb").read() == b"byte name"
    assert open(filesystem(plain)[1], "rb").read() == b"text name"
    assert uri_of_name(os.fsdecode(b"https://h/caf\xe9.jpg?w=1")) == "https://h/caf%E9.jpg?w=1"
    with pytest.raises(ValueError, match="UTF-8"):
        uri_of_name(os.fsdecode(b"gs://b/caf\xe9.jpg"))


def odd_names(n: int, seed: int = 0) -> list[bytes]:
    """``n`` random byte names (not hidden: a folder listing skips those) and the usual suspects."""
    rng = random.Random(seed)
    allowed = [b for b in range(1, 256) if b != ord("/")]
    names = {b"caf\xe9.jpg", b"bad_utf8_\xff\xfe_name.jpg", b"caf%E9.jpg", b"x.tar#y.jpg", b"%", b"#", b"%25",
             b"\xed\xa0\x80 surrogate.jpg", b"new\nline.jpg", b"a" * 255, b"\xff" * 255, "文字.jpg".encode()}
    while len(names) < n:
        name = bytes(rng.choice(allowed) for _ in range(rng.choice([1, 8, 40, 255])))
        if not name.startswith(b"."):
            names.add(name)
    return sorted(names)


def uri_bytes(uri: str) -> bytes:
    return os.fsencode(filesystem(uri)[1])


def test_a_folder_of_odd_byte_names_through_the_pipeline_state_and_inbox(student_checkpoint, tmp_path):
    folder = os.fsencode(tmp_path / "crawl")
    os.mkdir(folder)
    names = odd_names(48)
    broken = b"broken_\xff.jpg"
    for name in names + [broken]:
        with open(os.path.join(folder, name), "wb") as f:
            f.write(BROKEN if name == broken else JPEG)
    out, inbox, state = str(tmp_path / "out"), str(tmp_path / "inbox"), str(tmp_path / "state")
    args = ["--input", os.fsdecode(folder), "--output", out, "--model_path", student_checkpoint,
            "--threshold", "0", "--ocr_inbox", inbox, "--state", state, "--report"]
    summary = run(args)
    outputs = read_outputs(out)
    records = [r for route in ROUTES for r in outputs[route]]
    assert sorted(uri_bytes(r["uri"]) for r in records) == sorted(os.path.join(folder, n) for n in names + [broken])
    assert_conserved(outputs, [local_uri(os.fsdecode(os.path.join(folder, n))) for n in names + [broken]])
    assert [uri_bytes(r["uri"]) for r in outputs[FAILED]] == [os.path.join(folder, broken)]
    assert len(outputs[TEXT]) == len(names) and summary["images"] == len(names) + 1
    copies = sorted(os.listdir(inbox))
    assert len(copies) == len(names) and all(c.isascii() and "%" not in c for c in copies)
    assert all(open(os.path.join(inbox, c), "rb").read() == JPEG for c in copies)
    assert sorted(e["uri"] for e in StateStore(state).entries()) == sorted(r["uri"] for r in outputs[TEXT])
    assert os.path.getsize(os.path.join(out, "report.html")) > 0

    again = run(args)  # unchanged: every decided name is found in the state and skipped
    assert again["skipped"] == len(names) and again["images"] == 1


def test_the_three_cases_and_manifests_on_the_multi_process_runner(student_checkpoint, tmp_path):
    """A folder, a list file, a WebDataset shard and JSONL / CSV / Parquet manifests, each
    with a name that is not UTF-8, among good ones."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = os.fsencode(tmp_path)
    folder = os.path.join(root, b"folder")
    os.mkdir(folder)
    for name in (b"good_1.jpg", b"bad_utf8_\xff\xfe_name.jpg", b"good_2.jpg"):
        with open(os.path.join(folder, name), "wb") as f:
            f.write(JPEG)
    local = {n: os.path.join(root, n) for n in (b"caf\xe9.jpg", b"csv_\xe9.jpg", b"parquet_\xe9.jpg",
                                                 b"jsonl_\xe9.jpg", b"ok.jpg", b"parquet_ok.jpg")}
    for path in local.values():
        with open(path, "wb") as f:
            f.write(JPEG)
    listing = os.path.join(root, b"uris.txt")
    with open(listing, "wb") as f:  # a Latin-1 line among UTF-8 ones, and one that names nothing
        f.write(b"# crawl\n" + local[b"ok.jpg"] + b"\n" + local[b"caf\xe9.jpg"] + b"\ngs://b/caf\xe9.jpg\n")
    jsonl = os.path.join(root, b"m.jsonl")
    with open(jsonl, "wb") as f:
        f.write(b'{"url": "' + local[b"jsonl_\xe9.jpg"] + b'"}\n{not json\n{"url": "gs://b/\xe9.jpg"}\n')
    manifest_csv = os.path.join(root, b"m.csv")
    with open(manifest_csv, "wb") as f:
        f.write(b"key,url\n1," + local[b"csv_\xe9.jpg"] + b"\n")
    parquet = os.path.join(root, b"m.parquet")
    cells = pa.array([local[b"parquet_\xe9.jpg"], local[b"parquet_ok.jpg"]], pa.binary()).view(pa.string())
    pq.write_table(pa.table({"url": cells}), os.fsdecode(parquet))  # a string column that is not UTF-8
    shard = os.path.join(root, b"shard-000.tar")
    make_shard(os.fsdecode(shard), {"0001.jpg": JPEG, os.fsdecode(b"0002_caf\xe9.jpg"): JPEG,
                                    "0003.txt": b"caption"})

    out = str(tmp_path / "out")
    summary = run(["--runner=FnApiRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=2",
                   "--input", os.fsdecode(os.path.join(folder, b"*")), "--input_list", os.fsdecode(listing),
                   "--input", os.fsdecode(jsonl), "--input", os.fsdecode(manifest_csv), "--input", os.fsdecode(parquet),
                   "--input", os.fsdecode(shard), "--output", out, "--model_path", student_checkpoint])
    outputs = read_outputs(out)
    decided = [local_uri(os.fsdecode(p)) for p in
               [os.path.join(folder, n) for n in (b"good_1.jpg", b"bad_utf8_\xff\xfe_name.jpg", b"good_2.jpg")]
               + list(local.values())]
    decided += [member_uri(os.fsdecode(shard), "0001.jpg"), member_uri(os.fsdecode(shard), os.fsdecode(b"0002_caf\xe9.jpg"))]
    lines = [f"{os.fsdecode(listing)}#line=4", f"{os.fsdecode(jsonl)}#line=2", f"{os.fsdecode(jsonl)}#line=3"]
    assert_conserved(outputs, decided + lines)
    assert sorted(r["uri"] for r in outputs[TEXT] + outputs[NON_TEXT]) == sorted(decided)
    errors = {r["uri"].rsplit("#", 1)[1]: r["error"] for r in outputs[FAILED]}
    assert "line 4" in errors["line=4"] and "UTF-8" in errors["line=4"]
    assert "JSON" in errors["line=2"] and "UTF-8" in errors["line=3"]
    assert summary["images"] == len(decided) + len(lines)
    assert split_member_uri(member_uri(os.fsdecode(shard), os.fsdecode(b"0002_caf\xe9.jpg")))[1].endswith("\udce9.jpg")
