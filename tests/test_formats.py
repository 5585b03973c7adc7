"""Crawl input formats: JSONL / CSV / Parquet manifests, WebDataset tar shards, http(s)."""

from __future__ import annotations

import csv
import json
import os
import tarfile

import pytest

from pipeline.io import ReadConfig, read_bytes
from pipeline.items import InputItem
from pipeline.run import run
from pipeline.source_fields import carried_fields, crawl_failure, pick, sample_fields
from pipeline.sources import detect_format, expand_braces
from pipeline.tar import member_uri, sample_key, split_member_uri
from tests.http_server import HttpServer, Route
from tests.images import image_bytes
from tests.pipeline_helpers import assert_conserved, make_shard, read_outputs

RUNNER = ["--runner=FnApiRunner"]


def test_detect_format_and_braces():
    assert detect_format("crawl/part-0.parquet") == "parquet"
    assert detect_format("gs://b/list.jsonl") == "jsonl" and detect_format("x.json", is_list=True) == "jsonl"
    assert detect_format("x.csv") == "csv" and detect_format("shard-{000..009}.tar") == "tar"
    assert detect_format("imgs/*.jpg") == "glob" and detect_format("uris.txt", is_list=True) == "list"
    assert detect_format("uris.txt", "csv") == "csv"
    assert expand_braces("s-{08..11}.tar") == ["s-08.tar", "s-09.tar", "s-10.tar", "s-11.tar"]
    assert expand_braces("{a,b}.tar") == ["a.tar", "b.tar"] and expand_braces("plain.tar") == ["plain.tar"]
    assert split_member_uri(member_uri("gs://b/s.tar", "k/001.jpg")) == ("gs://b/s.tar", "k/001.jpg")
    assert split_member_uri("https://x/a.jpg#frag") is None


def image_files(folder, n: int) -> list[str]:
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i in range(n):
        path = os.path.join(folder, f"{i:03d}.png")
        with open(path, "wb") as f:
            f.write(image_bytes("PNG", (60 + i, 50)))
        paths.append(path)
    return paths


def write_manifest(path, fmt: str, rows: list[dict]) -> None:
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif fmt == "csv":
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)


@pytest.mark.parametrize("fmt, pattern", [("jsonl", "crawl-{0..1}.jsonl"), ("csv", "crawl-*.csv"),
                                          ("parquet", "crawl-*.parquet")])
def test_manifests_with_url_column(fmt, pattern, student_checkpoint, tmp_path):
    images = image_files(tmp_path / "imgs", 4)
    uris = images[:3] + [str(tmp_path / "missing.png")]
    rows = [{"key": f"{i:04d}", "link": u, "caption": f"c{i}", "status": "success", "error_message": ""}
            for i, u in enumerate(uris)]
    # img2dataset could not download this one: recorded as failed with its reason, never fetched
    rows.append({"key": "0004", "link": images[3], "caption": "c4", "status": "failed_to_download",
                 "error_message": "HTTP Error 404: Not Found"})
    write_manifest(tmp_path / f"crawl-0.{fmt}", fmt, rows[:2])
    write_manifest(tmp_path / f"crawl-1.{fmt}", fmt, rows[2:])
    broken = []
    if fmt == "jsonl":
        with open(tmp_path / "crawl-1.jsonl", "a") as f:
            f.write('{"key": "no link"}\n')
    else:  # a later file of the glob that cannot be read: a failed record, the run goes on
        (tmp_path / f"crawl-2.{fmt}").write_bytes(b"key,url\n1,x.jpg\n" if fmt == "csv" else b"PAR1 not parquet")
        broken = [str(tmp_path / f"crawl-2.{fmt}")]
    out = str(tmp_path / "out")
    run([*RUNNER, "--input", str(tmp_path / pattern), "--url_field", "link", "--keep_fields", "caption",
         "--output", out, "--model_path", student_checkpoint])
    outputs = read_outputs(out)
    assert_conserved(outputs, uris + images[3:] + broken)
    records = {r["uri"]: r for route in outputs.values() for r in route}
    for i, uri in enumerate(uris + images[3:]):  # every record leads back to its row
        assert (records[uri]["url"], records[uri]["key"], records[uri]["caption"]) == (uri, f"{i:04d}", f"c{i}")
    failed = {r["uri"]: r for r in outputs["failed"]}
    assert sorted(failed) == sorted([str(tmp_path / "missing.png"), images[3]] + broken)
    assert all(failed[u]["error"].startswith(f"cannot read the {fmt} manifest") for u in broken)
    crawled = failed[images[3]]
    assert crawled["error_type"] == "CrawlFailed" and crawled["stage"] == "read"
    assert crawled["error"] == "crawler status failed_to_download: HTTP Error 404: Not Found"


def test_keep_fields_cannot_name_a_record_field(student_checkpoint, tmp_path):
    with pytest.raises(ValueError, match="--keep_fields: cannot name score"):  # exit status 2 from the command
        run([*RUNNER, "--input", str(tmp_path), "--keep_fields", "key,score", "--output", str(tmp_path / "out"),
             "--model_path", student_checkpoint])


def test_source_fields_of_rows_and_samples():
    assert sample_key("a/0001.jpg") == sample_key("a/0001.seg.png") == "a/0001" and sample_key("x") == "x"
    names = carried_fields(["caption", "key"])
    assert names == ("url", "key", "caption")
    meta = json.dumps({"url": "http://h/x.jpg", "key": "007", "status": "success", "width": 3}).encode()
    assert sample_fields("s/007", {".json": meta, ".txt": b"a cat"}, names) == {
        "url": "http://h/x.jpg", "key": "007", "caption": "a cat"}
    assert sample_fields("s/007", {".json": b"[1, 2]"}, names) == {"key": "s/007"}  # not an object: ignored
    assert sample_fields("s/007", {}, carried_fields()) == {"key": "s/007"}
    assert pick({"a": b"caf\xe9", "b": float("nan"), "c": None, "d": [1, {"e": 2}]}, "abcd") == {
        "a": "caf\\xe9", "b": None, "d": [1, {"e": 2}]}
    assert crawl_failure({"status": "success"}) is None and crawl_failure({"status": 200}) is None
    assert crawl_failure({"status": "failed_to_resize", "error_message": None}) == "crawler status failed_to_resize"


def test_webdataset_shards(student_checkpoint, tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    expected = []
    for s in range(2):
        samples = {}
        for k in range(3):
            key = f"s{s}/{k:04d}"
            # img2dataset's order (members sorted by suffix): the image before its .json and .txt
            samples[f"{key}.jpg"] = image_bytes("JPEG", (70 + k, 60))
            samples[f"{key}.json"] = json.dumps({"url": f"https://h/{s}/{k}.jpg", "key": f"{s}{k:04d}",
                                                 "status": "success", "width": 70 + k}).encode()
            samples[f"{key}.txt"] = f"caption {s} {k}".encode()
            expected.append(member_uri(str(shards / f"shard-{s:03d}.tar"), f"{key}.jpg"))
        samples["s9/bad.json"] = b'{"url": "https://user:secret@h/bad.png"}'  # before its image
        samples["s9/bad.png"] = b"not an image"
        expected.append(member_uri(str(shards / f"shard-{s:03d}.tar"), "s9/bad.png"))
        samples["s9/plain.png"] = image_bytes("PNG", (64, 64))  # no sidecar: its sample key only
        expected.append(member_uri(str(shards / f"shard-{s:03d}.tar"), "s9/plain.png"))
        make_shard(shards / f"shard-{s:03d}.tar", samples)
    (shards / "shard-002.tar").write_bytes(b"\0garbage, not a tar" * 50)
    expected.append(str(shards / "shard-002.tar"))
    out = str(tmp_path / "out")
    run([*RUNNER, "--input", str(shards / "shard-{000..002}.tar"), "--output", out, "--model_path", student_checkpoint,
         "--threshold", "0", "--keep_fields", "caption,width"])
    outputs = read_outputs(out)
    assert_conserved(outputs, expected)
    failed = {r["uri"]: r for r in outputs["failed"]}
    assert failed[str(shards / "shard-002.tar")]["stage"] == "read"
    assert all(failed[u]["stage"] == "decode" for u in failed if u.endswith("bad.png"))
    assert all(failed[u]["url"] == "https://***@h/bad.png" for u in failed if u.endswith("bad.png"))
    text = {r["uri"].rsplit("#", 1)[1]: r for r in outputs["text"]}  # threshold 0: every image is text
    assert {(r["url"], r["key"], r["caption"], r["width"]) for name, r in text.items() if name.endswith(".jpg")} == {
        (f"https://h/{s}/{k}.jpg", f"{s}{k:04d}", f"caption {s} {k}", 70 + k) for s in range(2) for k in range(3)}
    assert {tuple(sorted(r)) for name, r in text.items() if name == "s9/plain.png"} == {
        ("key", "label", "regions_3x3", "regions_5x5", "score", "threshold", "uri")}
    assert text["s9/plain.png"]["key"] == "s9/plain"
    # a member URI reads that member on its own (the OCR stage, the OCR inbox, the report)
    member = outputs["text"][0]["uri"]
    shard, name = split_member_uri(member)
    with tarfile.open(shard) as tar:
        assert read_bytes(member, ReadConfig()) == tar.extractfile(name).read()


def test_records_failing_after_the_decision_keep_their_source_fields(tmp_path):
    from pipeline.sinks import CopyToOcrInboxFn
    from pipeline.transforms import inference_failures, keyed, unkeyed

    fields = {"url": "https://user:pw@h/a.jpg?token=t", "key": "007", "caption": "c"}
    decided = {"uri": str(tmp_path / "gone.jpg"), "label": "text", "score": 0.9, "threshold": 0.5, **fields}
    (out,) = CopyToOcrInboxFn(str(tmp_path / "inbox")).process(decided)  # the image is gone: a dead letter
    assert out.tag == "failed" and "score" not in out.value
    assert (out.value["url"], out.value["key"], out.value["caption"]) == ("https://***@h/a.jpg?token=REDACTED", "007", "c")
    item = InputItem("s.tar#007.jpg", fields=fields)
    assert unkeyed(keyed(item)) == ("s.tar#007.jpg", fields) and unkeyed("a.jpg") == ("a.jpg", None)
    (failed,) = inference_failures(([(keyed(item), None)], RuntimeError("boom")))
    assert failed["uri"] == "s.tar#007.jpg" and failed["key"] == "007" and failed["stage"] == "inference"


def test_shard_samples_group_sidecars_with_images_in_bounded_memory(tmp_path):
    from pipeline.tar import MAX_SAMPLE_IMAGES, iter_samples

    png = image_bytes("PNG", (8, 8))
    same_key = {f"photos/IMG.{i:03d}.png": png for i in range(2 * MAX_SAMPLE_IMAGES + 1)}  # one key: "photos/IMG"
    make_shard(tmp_path / "s.tar", {"a/0.json": b"{}", "a/0.png": png, "a/0.txt": b"c", "b/0.cls": b"1", **same_key})
    samples = list(iter_samples(str(tmp_path / "s.tar"), max_bytes=None))
    assert [(s.key, len(s.images), sorted(s.sidecars)) for s in samples] == [
        ("a/0", 1, [".json", ".txt"]), ("photos/IMG", 8, []), ("photos/IMG", 8, []), ("photos/IMG", 1, [])]


def test_webdataset_glob_and_state(student_checkpoint, tmp_path):
    make_shard(tmp_path / "a.tar", {"0.png": image_bytes("PNG", (64, 64)), "1.png": image_bytes("PNG", (65, 64))})
    args = [*RUNNER, "--input", str(tmp_path / "*.tar"), "--model_path", student_checkpoint, "--state",
            str(tmp_path / "state")]
    run([*args, "--output", str(tmp_path / "out1")])
    assert len(read_outputs(str(tmp_path / "out1"))["non_text"] + read_outputs(str(tmp_path / "out1"))["text"]) == 2
    summary = run([*args, "--output", str(tmp_path / "out2")])
    assert summary["skipped"] == 2 and summary["images"] == 0


def test_http_inputs_with_failing_and_slow_urls(student_checkpoint, tmp_path):
    data = image_bytes("JPEG", (120, 90))
    routes = {
        "/ok.jpg": Route(body=data),
        "/flaky.jpg": Route(body=data, fail_first=2, fail_status=503),
        "/broken.jpg": Route(status=500),
        "/slow.jpg": Route(body=data, delay_s=3.0),
        "/slowish.jpg": Route(body=data, delay_s=0.3),
    }
    with HttpServer(routes) as server:
        urls = [server.url(p) for p in routes] + [server.url("/gone.jpg")]
        manifest = tmp_path / "crawl.jsonl"
        manifest.write_text("".join(json.dumps({"url": u}) + "\n" for u in urls))
        out = str(tmp_path / "out")
        run([*RUNNER, "--input_list", str(manifest), "--output", out, "--model_path", student_checkpoint,
             "--read_timeout", "1.5", "--read_retries", "1"])
    outputs = read_outputs(out)
    assert_conserved(outputs, urls)
    failed = {r["uri"].rsplit("/", 1)[-1]: r for r in outputs["failed"]}
    assert sorted(failed) == ["broken.jpg", "gone.jpg", "slow.jpg"]
    assert "timed out" in failed["slow.jpg"]["error"]
    assert "not found" in failed["gone.jpg"]["error"]


def test_manifest_without_url_column_fails_before_the_run(student_checkpoint, tmp_path):
    manifest = tmp_path / "crawl.csv"
    manifest.write_text("key,link\n0,a.jpg\n")
    with pytest.raises(ValueError, match="no column 'url'"):
        run([*RUNNER, "--input", str(manifest), "--output", str(tmp_path / "out"), "--model_path", student_checkpoint])
    with pytest.raises(FileNotFoundError):
        run([*RUNNER, "--input_list", str(tmp_path / "gone.jsonl"), "--output", str(tmp_path / "out"),
             "--model_path", student_checkpoint])


def test_webdataset_shard_over_http(student_checkpoint, tmp_path):
    shard = tmp_path / "shard.tar"
    make_shard(shard, {"a/0.jpg": image_bytes("JPEG", (90, 70)), "a/0.cls": b"1", "a/1.png": image_bytes("PNG", (70, 90))})
    with HttpServer({"/wds/shard-000.tar": Route(body=shard.read_bytes())}) as server:
        url = server.url("/wds/shard-000.tar")
        out = str(tmp_path / "out")
        run([*RUNNER, "--input", url, "--output", out, "--model_path", student_checkpoint, "--threshold", "0",
             "--ocr_inbox", str(tmp_path / "inbox")])
    outputs = read_outputs(out)
    assert_conserved(outputs, [member_uri(url, "a/0.jpg"), member_uri(url, "a/1.png")])
    assert len(os.listdir(tmp_path / "inbox")) == 2  # member URIs are read on their own too


def test_state_skips_unchanged_shards_unread_and_rereads_incomplete_ones(student_checkpoint, tmp_path):
    from pipeline.state import StateStore

    good, bad = tmp_path / "shards" / "good.tar", tmp_path / "shards" / "bad.tar"
    good.parent.mkdir()
    make_shard(good, {"0.png": image_bytes("PNG", (64, 64)), "1.png": image_bytes("PNG", (65, 64))})
    make_shard(bad, {"0.png": image_bytes("PNG", (66, 64)), "broken.png": b"not an image"})
    args = [*RUNNER, "--input", str(tmp_path / "shards" / "*.tar"), "--model_path", student_checkpoint,
            "--state", str(tmp_path / "state")]
    first = run([*args, "--output", str(tmp_path / "out1")])
    assert first["images"] == 4 and first["failed"] == 1
    entries = StateStore(str(tmp_path / "state")).entries()
    assert [e["uri"] for e in entries if e["label"] == "shard"] == [str(good)]  # bad.tar had a failure

    stat = os.stat(good)  # same size and mtime, other bytes: an unchanged shard is not even opened
    good.write_bytes(b"x" * stat.st_size)
    os.utime(good, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    second = run([*args, "--output", str(tmp_path / "out2")])
    outputs = read_outputs(str(tmp_path / "out2"))
    assert second["skipped"] == 2
    assert sorted(r["uri"] for route in outputs.values() for r in route) == sorted(
        [member_uri(str(bad), "0.png"), member_uri(str(bad), "broken.png")])
    uris = [e["uri"] for e in StateStore(str(tmp_path / "state")).entries()]
    assert len(uris) == len(set(uris)) == 4  # good.tar, its 2 members, bad.tar's decided member
