"""A person's label over the screening rule: the audit file, relabel, and what rescreen and build do with it."""

from __future__ import annotations

import json

import pytest

from tests.test_collections import collection, entry, write_labels  # noqa: F401 - the fixture
from training.collections.__main__ import main as collections_main
from training.collections.audit import AuditRow, apply_audit, read_audit
from training.collections.build import build_pool
from training.collections.labels import read_labels
from training.collections.screen import rescreen_entry
from training.data import load_records

ARTIFACT = [0.0, 0.0, 190.0, 0.0, 190.0, 120.0, 0.0, 120.0]  # "66" over a face's eyes


def text_entry(path="faces/a.jpg", texts=("66",)):
    return {"path": path, "sha256": "0" * 64, "label": 1, "boxes": [ARTIFACT], "ignore": [], "texts": list(texts),
            "size": [200, 200], "source": "faces"}


def write(tmp_path, name, entries):
    labels = tmp_path / "labels"
    labels.mkdir(exist_ok=True)
    (labels / f"{name}.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries), encoding="utf-8")
    return labels


def test_read_audit_skips_comments_and_keeps_extra_columns_out(tmp_path):
    f = tmp_path / "audit.tsv"
    f.write_text("# a comment\n\nfaces\tfaces/a.jpg\t0\tno legible text\timages/faces/a.jpg\t66\t7\n"
                 "faces\tfaces/b.jpg\t-1\tdoubtful\n", encoding="utf-8")
    assert read_audit(f) == [AuditRow("faces", "faces/a.jpg", 0, "no legible text"),
                             AuditRow("faces", "faces/b.jpg", -1, "doubtful")]


@pytest.mark.parametrize("line", ["faces\tfaces/a.jpg\t2\tnote", "faces\tfaces/a.jpg\tzero\tnote",
                                  "faces\tfaces/a.jpg\t0", "\tfaces/a.jpg\t0\tnote"])
def test_a_malformed_audit_line_is_a_clear_error_naming_its_line(tmp_path, line):
    f = tmp_path / "audit.tsv"
    f.write_text("# header\n" + line + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"audit.tsv:2: expected collection"):
        read_audit(f)


def test_relabel_writes_the_verdict_keeps_what_screening_said_and_reports_unknown_images(tmp_path):
    other = text_entry("faces/b.jpg", ["SHUTTERSTOCK"])
    labels = write(tmp_path, "faces", [text_entry(), other])
    rows = [AuditRow("faces", "faces/a.jpg", 0, "no legible text"), AuditRow("faces", "faces/zzz.jpg", 0, "x"),
            AuditRow("nowhere", "n.jpg", 0, "x")]
    result = apply_audit(rows, labels)
    assert result == {"changed": {"faces": 1, "nowhere": 0}, "not_found": ["faces/faces/zzz.jpg", "nowhere/n.jpg"]}
    entries = read_labels(labels / "faces.jsonl")
    a = entries["faces/a.jpg"]
    assert a["label"] == 0 and a["boxes"] == a["ignore"] == a["texts"] == [] and a["audit"] == "no legible text"
    assert a["screened"] == {"label": 1, "boxes": [ARTIFACT], "ignore": [], "texts": ["66"]}
    assert entries["faces/b.jpg"] == other  # untouched, order kept
    assert list(entries) == ["faces/a.jpg", "faces/b.jpg"]
    before = (labels / "faces.jsonl").read_bytes()
    assert apply_audit(rows[:1], labels)["changed"] == {"faces": 0}  # idempotent
    assert (labels / "faces.jsonl").read_bytes() == before


def test_a_text_verdict_keeps_the_boxes_and_rescreen_never_undoes_an_audit():
    row = AuditRow("faces", "faces/a.jpg", 1, "faint watermark, checked")
    unread = {**text_entry(), "label": -1, "boxes": [], "ignore": [ARTIFACT], "texts": []}
    from training.collections.audit import audited_entry

    made_text = audited_entry(unread, row)
    assert made_text["label"] == 1 and made_text["ignore"] == [ARTIFACT]
    made_non_text = audited_entry(text_entry(), AuditRow("faces", "faces/a.jpg", 0, "no text"))
    for audited in (made_text, made_non_text):
        assert rescreen_entry(audited, "non_text") == audited
    assert rescreen_entry(text_entry(), "non_text")["label"] == 1  # the rule alone keeps a 2-character read over 57 % of the image


def test_relabel_command_then_build_gives_the_pool_the_audited_label(collection, tmp_path, capsys):  # noqa: F811
    f = collection.files
    box = [100.0, 60.0, 400.0, 60.0, 400.0, 120.0, 100.0, 120.0]
    write_labels(collection, [entry("imgs/small.png", f["imgs/small.png"], 1, [box])])
    audit = tmp_path / "audit.tsv"
    audit.write_text("tiny\timgs/small.png\t0\tno legible text\n", encoding="utf-8")
    assert collections_main(["relabel", "--labels", str(collection.labels), "--audit", str(audit),
                             "--manifests", str(tmp_path / "no-manifests")]) == 0
    assert json.loads(capsys.readouterr().out)["changed"] == {"tiny": 1}
    build_pool([collection.manifest], collection.pool, collection.mirror, collection.labels)
    (record,) = load_records(collection.pool)
    assert record.path == "images/tiny/imgs/small.jpg" and record.label == 0 and record.boxes == []


def test_relabel_command_with_a_missing_or_malformed_audit_file_is_a_usage_error(tmp_path, capsys):
    bad = tmp_path / "bad.tsv"
    bad.write_text("faces\tfaces/a.jpg\tzero\tnote\n", encoding="utf-8")
    for audit in (tmp_path / "missing.tsv", bad):
        with pytest.raises(SystemExit) as stop:
            collections_main(["relabel", "--labels", str(tmp_path / "labels"), "--audit", str(audit),
                              "--manifests", str(tmp_path / "no-manifests")])
        assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "missing.tsv" in err and "bad.tsv:1: expected collection" in err
