"""Tests of training.collections: manifests, the screening rule, resumable screening and the
pool builder, on a tiny git repository of real image files made here."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from tests.images import encode, gradient
from training.collections import screen as screen_mod
from training.collections.build import build_pool
from training.collections.labels import LabelsWriter, read_labels
from training.collections.manifest import EVAL_ONLY_SPLIT, Manifest, load_manifests, split_of, with_bases
from training.collections.screen import screen_entry, screen_rule, sha256
from training.collections.summary import summary
from training.data import load_records

BOX = [[10, 20], [110, 20], [110, 50], [10, 50]]


def git(*args, cwd):
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


def make_mirror(tmp_path: Path, files: dict[str, bytes], name: str = "tiny") -> tuple[Path, Path, str]:
    """A bare mirror ``owner+<name>/repo`` of a one-commit repository holding ``files``:
    (mirror directory, bare repository, commit)."""
    src = tmp_path / f"src-{name}"
    for path, data in files.items():
        (src / path).parent.mkdir(parents=True, exist_ok=True)
        (src / path).write_bytes(data)
    git("init", "-q", cwd=src)
    git("add", ".", cwd=src)
    git("commit", "-q", "-m", "images", cwd=src)
    commit = git("rev-parse", "HEAD", cwd=src)
    mirror = tmp_path / "mirror"
    repo = mirror / f"owner+{name}" / "repo"
    git("clone", "-q", "--bare", "--no-local", str(src), str(repo), cwd=tmp_path)
    return mirror, repo, commit


@pytest.fixture
def collection(tmp_path):
    """A bare mirror ``owner+tiny/repo`` of a repository of real images (one corrupt, one
    duplicate, one excluded, one whose blob the snapshot lacks) and its manifest."""
    files = {
        "imgs/big.jpg": encode(Image.fromarray(gradient(800, 600)), "JPEG", quality=95),
        "imgs/small.png": encode(Image.fromarray(gradient(300, 200)[:, ::-1].copy()), "PNG"),
        "imgs/gone.png": encode(Image.new("RGB", (64, 64), (9, 9, 9)), "PNG"),
        "imgs/corrupt.jpg": b"\xff\xd8\xff\xe0 this is not really a JPEG",
        "imgs/copy_of_big.jpg": None,  # same bytes as big.jpg
        "imgs/skip/other.jpg": encode(Image.new("RGB", (50, 40), (1, 2, 3)), "JPEG"),
        "README.md": b"not an image\n",
    }
    files["imgs/copy_of_big.jpg"] = files["imgs/big.jpg"]
    mirror, repo, commit = make_mirror(tmp_path, files)
    manifest = Manifest(name="tiny", kind="non_text", repository="owner/tiny", commit=commit,
                        include=("imgs/*",), exclude=("imgs/skip/*",))
    return SimpleNamespace(mirror=mirror, repo=repo, files=files, manifest=manifest, labels=tmp_path / "labels",
                           pool=tmp_path / "pool")


def drop_blob(repo: Path, data: bytes) -> None:
    """Make the bare repository lack the blob of ``data`` (as a snapshot lacks files of 4 MiB
    and more): unpack its pack, then delete that loose object."""
    blob = subprocess.run(["git", "hash-object", "--stdin"], input=data, capture_output=True, check=True).stdout.decode().strip()
    for pack in (repo / "objects" / "pack").glob("*.pack"):
        moved = pack.with_suffix(".tmp")
        pack.rename(moved)
        pack.with_suffix(".idx").unlink()
        subprocess.run(["git", f"--git-dir={repo}", "unpack-objects", "-q"], stdin=open(moved, "rb"), check=True)
        moved.unlink()
    (repo / "objects" / blob[:2] / blob[2:]).unlink()


def entry(path, data, label, boxes=(), ignore=()):
    return {"path": path, "sha256": sha256(data), "label": label, "boxes": list(boxes), "ignore": list(ignore),
            "texts": [], "source": "tiny"}


# --- manifests ---------------------------------------------------------------------------

def test_selection_excludes_keeps_duplicates_once_and_caps_deterministically(collection):
    from training.collections.gitsource import GitSource

    with GitSource(collection.repo, collection.manifest.commit) as source:
        files = source.files()
    chosen = collection.manifest.select(files.items())
    assert "imgs/skip/other.jpg" not in chosen and "README.md" not in chosen
    assert len({"imgs/big.jpg", "imgs/copy_of_big.jpg"} & set(chosen)) == 1
    assert len(chosen) == 4
    capped = Manifest(**{**collection.manifest.__dict__, "cap": 2}).select(reversed(list(files.items())))
    assert capped == chosen[:2]


def test_committed_manifests_load_and_are_distinct():
    manifests = load_manifests()
    assert len({m.name for m in manifests}) == len(manifests)
    assert sum(m.kind == "non_text" for m in manifests) >= 8 and sum(m.kind == "text" for m in manifests) >= 3
    assert all(len(m.commit) == 40 and m.licence for m in manifests)


def rest_of(base: Manifest, **changes) -> Manifest:
    """The unlabelled remainder of ``base`` (same paths), resolved; ``changes`` to its fields."""
    fields = {"name": base.name + "-rest", "kind": "unlabelled", "repository": base.repository,
              "commit": base.commit, "include": base.include, "exclude": base.exclude, "rest_of": base.name}
    return with_bases([base, Manifest(**{**fields, **changes})])[1]


def test_rest_of_selects_what_the_labelled_collection_leaves_and_never_its_contents(collection):
    from training.collections.gitsource import GitSource

    with GitSource(collection.repo, collection.manifest.commit) as source:
        files = source.files()
    everything = collection.manifest.select(files.items())  # 4 paths, big.jpg / copy_of_big.jpg once
    base = Manifest(**{**collection.manifest.__dict__, "cap": 2})
    rest = rest_of(base)
    chosen, taken = rest.select(files.items()), base.select(files.items())
    assert rest.base is base and taken == everything[:2]
    assert chosen == everything[2:]  # the same sample order, what the cap left
    assert not {files[p] for p in chosen} & {files[p] for p in taken}  # no copy of a labelled image
    twin = {"imgs/big.jpg", "imgs/copy_of_big.jpg"}
    assert len(twin & set(chosen + taken)) == 1
    assert rest_of(base, cap=1).select(reversed(list(files.items()))) == chosen[:1]
    assert "imgs/skip/other.jpg" in rest_of(base, exclude=()).select(files.items())  # its own patterns
    assert rest_of(Manifest(**{**base.__dict__, "cap": None})).select(files.items()) == []


def test_bad_rest_of_is_a_clear_error(collection, tmp_path):
    base = collection.manifest
    with pytest.raises(ValueError, match="names no manifest"):
        with_bases([Manifest(name="nope-rest", kind="unlabelled", repository=base.repository, commit=base.commit,
                             include=("*",), rest_of="nope")])
    with pytest.raises(ValueError, match="not " + base.repository + "@" + "1" * 40):
        rest_of(base, commit="1" * 40)
    with pytest.raises(ValueError, match="must be named 'tiny-rest'"):
        rest_of(base, name="tiny-more")
    with pytest.raises(ValueError, match="rest_of is for kind unlabelled"):
        rest_of(base, kind="non_text")
    with pytest.raises(ValueError, match="not a labelled collection"):
        rest_of(Manifest(**{**base.__dict__, "kind": "unlabelled"}))
    with pytest.raises(ValueError, match="not resolved"):
        Manifest(**{**rest_of(base).__dict__, "base": None}).select([("imgs/a.jpg", "0")])
    # from manifest files: resolved by load_manifests, a bad one fails the load
    for m in (base, rest_of(base)):
        d = {k: v for k, v in m.__dict__.items() if k != "base"}
        (tmp_path / f"{m.name}.json").write_text(json.dumps({**d, "include": list(m.include),
                                                             "exclude": list(m.exclude)}), encoding="utf-8")
    loaded = load_manifests(tmp_path, names=["tiny-rest"])
    assert [m.name for m in loaded] == ["tiny-rest"] and loaded[0].base == base
    (tmp_path / "tiny.json").unlink()
    with pytest.raises(ValueError, match="rest_of 'tiny' names no manifest"):
        load_manifests(tmp_path)


def test_committed_rest_manifests_are_unlabelled_remainders():
    rests = [m for m in load_manifests() if m.rest_of]
    assert len(rests) >= 7 and all(m.kind == "unlabelled" and m.base.kind != "unlabelled" for m in rests)
    aid = next(m for m in rests if m.rest_of == "aid-aerial")
    assert set(aid.exclude) >= {f"AID/{c}/*" for c in ("Airport", "Center", "Church", "School", "Stadium")}


def test_dropped_collections_are_left_out_unless_named(tmp_path):
    for name, dropped in (("kept", ""), ("gone", "watermarks")):
        (tmp_path / f"{name}.json").write_text(json.dumps(
            {"name": name, "kind": "non_text", "repository": "o/r", "commit": "0" * 40, "include": ["*"],
             "dropped": dropped}), encoding="utf-8")
    assert [m.name for m in load_manifests(tmp_path)] == ["kept"]
    assert [m.name for m in load_manifests(tmp_path, names=["gone"])] == ["gone"]
    assert load_manifests(tmp_path, names=["gone"])[0].dropped == "watermarks"
    assert "houses-indoor" not in {m.name for m in load_manifests()}  # listing watermarks (see its manifest)


def test_eval_only_collections_are_listed_apart_and_never_pooled_with_training_ones(collection, tmp_path):
    d = tmp_path / "manifests"
    d.mkdir()
    for name, eval_only in (("trained", False), ("judged", True)):
        (d / f"{name}.json").write_text(json.dumps(
            {"name": name, "kind": "non_text", "repository": "o/r", "commit": "0" * 40, "include": ["*"],
             "eval_only": eval_only}), encoding="utf-8")
    assert [m.name for m in load_manifests(d)] == ["trained"]
    assert [m.name for m in load_manifests(d, eval_only=True)] == ["judged"]
    with pytest.raises(ValueError, match="cannot share a pool"):
        build_pool(load_manifests(d, names=["trained", "judged"]), tmp_path / "pool", collection.mirror,
                   collection.labels)
    with pytest.raises(ValueError, match="cannot be eval_only"):
        Manifest(name="x-rest", kind="unlabelled", repository="o/r", commit="0" * 40, include=("*",),
                 rest_of="x", eval_only=True)
    committed = load_manifests(eval_only=True)
    assert {"weather", "face-masks", "clothing"} <= {m.name for m in committed}
    assert not {m.name for m in committed} & {m.name for m in load_manifests()}


def test_an_eval_pool_of_its_own_keeps_the_basis_pool_unchanged(tmp_path):
    d = tmp_path / "manifests"
    d.mkdir()
    for name, extra in (("judged", {}), ("more-text", {"eval_pool": "extra-text"}), ("trained", None)):
        (d / f"{name}.json").write_text(json.dumps(
            {"name": name, "kind": "non_text", "repository": "o/r", "commit": "0" * 40, "include": ["*"],
             "eval_only": extra is not None, **(extra or {})}), encoding="utf-8")
    assert [m.name for m in load_manifests(d, eval_only=True)] == ["judged"]  # build --eval_only: the basis's pool
    assert [m.name for m in load_manifests(d, eval_pool="extra-text")] == ["more-text"]
    with pytest.raises(ValueError, match="no evaluation pool 'nope'.*known: extra-text"):
        load_manifests(d, eval_pool="nope")
    assert [m.name for m in load_manifests(d)] == ["trained"]
    with pytest.raises(ValueError, match="is for eval_only collections"):
        Manifest(name="x", kind="non_text", repository="o/r", commit="0" * 40, include=("*",), eval_pool="extra-text")
    # the committed ones: session 35's extra text stays out of the basis's evaluation-only pool
    basis = {m.name for m in load_manifests(eval_only=True)}
    extra = {m.name for m in load_manifests(eval_pool="extra-text")}
    assert {"trashnet-print", "grocery-produce-more", "clothing-more"} <= extra and not basis & extra
    assert basis == {"clothing", "face-masks", "weather", "sr-benchmarks", "sr-benchmarks-swinir", "sr-benchmarks-set14"}


def test_an_eval_only_pool_is_scored_but_never_trained_on(collection):
    from training.config import DataConfig
    from training.data import select_records, select_unlabelled

    judged = Manifest(**{**collection.manifest.__dict__, "eval_only": True})
    f = collection.files
    write_labels(collection, [entry("imgs/small.png", f["imgs/small.png"], 0),
                              entry("imgs/gone.png", f["imgs/gone.png"], -1)])
    build_pool([judged], collection.pool, collection.mirror, collection.labels)
    records = load_records(collection.pool)
    assert [r.split for r in records] == [EVAL_ONLY_SPLIT]
    root = collection.pool  # any labelled root: the pool itself serves
    with pytest.raises(ValueError, match="evaluation-only collections"):
        select_records(DataConfig(root=str(root)), "train")
    with pytest.raises(ValueError, match="evaluation-only collections"):
        select_records(DataConfig(root=str(root), pools=(str(root),), holdout=("tiny",)), "train")
    with pytest.raises(ValueError, match="evaluation-only collections"):
        select_unlabelled(DataConfig(root=str(root), unlabelled_pools=(str(root),)))
    scored = select_records(DataConfig(root=str(root), eval_split=EVAL_ONLY_SPLIT), "eval")
    assert [r.source for r in scored] == ["tiny"]


def test_mirrors_whose_snapshot_keeps_repo_dot_git_are_found(collection, tmp_path):
    from training.collections.gitsource import git_dir_of

    nested = tmp_path / "nested" / "owner+tiny" / "repo"
    nested.mkdir(parents=True)
    collection.repo.rename(nested / ".git")
    assert git_dir_of(tmp_path / "nested", "owner/tiny") == nested / ".git"


def test_split_is_about_85_15_and_stable():
    splits = [split_of(f"images/x/{i}.jpg") for i in range(2000)]
    assert 0.12 < splits.count("dev") / len(splits) < 0.18
    assert split_of("images/x/1.jpg") == split_of("images/x/1.jpg")


# --- the screening rule ------------------------------------------------------------------

@pytest.mark.parametrize("texts, scores, kind, label", [
    ([], [], "non_text", 0),  # no box at all: non-text
    ([], [], "text", -1),  # a text collection where OCR reads nothing: unlabelled
    (["AB"], [0.9], "non_text", 1),  # legible text found in a "non-text" photo: text
    (["A"], [0.99], "non_text", -1),  # one character is not enough
    (["A B"], [0.99], "non_text", 1),  # two characters, spaces not counted
    (["HELLO"], [0.6], "non_text", -1),  # confidence must be above 0.6
    (["HELLO", "x"], [0.95, 0.2], "text", 1),
    (["HELLO"], [0.95], "unlabelled", -1),
])
def test_screen_rule(texts, scores, kind, label):
    boxes = [BOX] * len(texts)
    v = screen_rule(boxes, texts, scores, kind)
    assert v.label == label
    if label == 1:
        legible = [t for t, s in zip(texts, scores) if len(t.replace(" ", "")) >= 2 and s > 0.6]
        assert v.texts == legible and len(v.boxes) == len(legible) and len(v.ignore) == len(texts) - len(legible)
        assert v.boxes[0] == [10.0, 20.0, 110.0, 20.0, 110.0, 50.0, 10.0, 50.0]


def test_box_without_any_text_read_is_never_non_text():
    assert screen_rule([BOX], [], [], "non_text").label == -1
    assert screen_rule([BOX], [], [], "non_text", size=(120, 60)).label == -1  # a box of 42 % of the image


def test_an_unread_box_over_the_whole_image_is_a_detector_artifact():
    whole = [[0, 0], [99, 0], [99, 99], [0, 99]]
    assert screen_rule([whole], [""], [0.1], "non_text", size=(100, 100)).label == 0
    v = screen_rule([whole, BOX], ["", "x"], [0.1, 0.9], "non_text", size=(100, 100))
    assert v.label == -1 and len(v.ignore) == 1  # the other box still counts
    v = screen_rule([whole], ["STOP"], [0.9], "non_text", size=(100, 100))
    assert v.label == 1 and v.texts == ["STOP"]  # four characters read over the whole image: text
    for read in ("99", "Y A"):  # a couple of strokes read into a frame around the picture: an artifact
        assert screen_rule([whole], [read], [0.95], "non_text", size=(100, 100)).label == 0
    v = screen_rule([whole, BOX], ["11", "HELLO"], [0.9, 0.9], "non_text", size=(100, 100))
    assert v.label == 1 and v.texts == ["HELLO"] and not v.ignore  # the artifact is dropped, the word kept
    assert screen_rule([whole], [""], [0.1], "non_text").label == -1  # no size given: the plain rule


def test_rescreen_applies_the_rule_to_stored_entries():
    from training.collections.screen import rescreen_entry

    stored = {"path": "a", "sha256": "0", "label": -1, "boxes": [], "ignore": [[0, 0, 99, 0, 99, 99, 0, 99]],
              "texts": [], "size": [100, 100], "source": "x"}
    assert rescreen_entry(stored, "non_text")["label"] == 0 and rescreen_entry(stored, "non_text")["ignore"] == []
    assert rescreen_entry(stored, "text")["label"] == -1
    text = {**stored, "label": 1, "boxes": [flat(BOX)], "texts": ["HI"], "ignore": [flat(BOX)]}
    assert rescreen_entry(text, "non_text") == {**text, "ignore": [flat(BOX)]}
    failed = {"path": "b", "error": "missing from the snapshot"}
    assert rescreen_entry(failed, "non_text") is failed


def flat(box):
    return [float(v) for p in box for v in p]


# --- screening (a stand-in engine: OCR itself is tested in test_ocr.py) --------------------

class FakeEngine:
    """Finds "HI" in images brighter than mid-grey on average, nothing elsewhere."""

    def __init__(self):
        self.calls = 0

    def __call__(self, bgr, **kw):
        self.calls += 1
        if bgr.mean() > 127:
            return SimpleNamespace(txts=("HI",), boxes=np.array([BOX], dtype=float), scores=(0.9,))
        return SimpleNamespace(txts=None, boxes=None, scores=None)


def test_screening_is_resumable_and_records_bad_files(collection, monkeypatch):
    drop_blob(collection.repo, collection.files["imgs/gone.png"])
    engine = FakeEngine()
    monkeypatch.setattr("pipeline.ocr.make_engine", lambda *a, **k: engine)
    first = screen_mod.screen_collections([collection.manifest], collection.mirror, collection.labels, chunk=1, limit=2)
    assert first == {"tiny": 2}
    second = screen_mod.screen_collections([collection.manifest], collection.mirror, collection.labels)
    assert second == {"tiny": 2}
    lines = (collection.labels / "tiny.jsonl").read_text().splitlines()
    entries = read_labels(collection.labels / "tiny.jsonl")
    assert len(lines) == len(entries) == 4  # each file once, across both runs
    assert entries["imgs/gone.png"]["error"] == "missing from the snapshot"
    assert entries["imgs/corrupt.jpg"]["error"].startswith("cannot decode")
    assert engine.calls == 2  # only the two decodable images went to OCR
    assert screen_mod.screen_collections([collection.manifest], collection.mirror, collection.labels) == {"tiny": 0}
    counts = summary([collection.manifest], collection.labels)["tiny"]
    assert counts["screened"] == 4 and counts["failed"] == 2 and counts["text"] + counts["non_text"] == 2


def test_a_manifest_can_ask_for_a_larger_detection_size(collection, monkeypatch):
    from dataclasses import replace

    sides = []
    monkeypatch.setattr("pipeline.ocr.make_engine", lambda *a, det_min_side, **k: sides.append(det_min_side) or FakeEngine())
    small = replace(collection.manifest, det_min_side=640)
    assert screen_mod.screen_collections([small], collection.mirror, collection.labels, limit=1) == {"tiny": 1}
    assert screen_mod.screen_collections([collection.manifest], collection.mirror, collection.labels, limit=1,
                                         det_min_side=400) == {"tiny": 1}
    assert sides == [640, 400]  # the manifest's size wins; without one, the run's
    for bad in (-1, "640"):
        with pytest.raises(ValueError, match="det_min_side"):
            replace(collection.manifest, det_min_side=bad)


def test_unlabelled_collections_are_screened_without_ocr(collection, monkeypatch):
    def no_ocr(*a, **k):
        raise AssertionError("OCR must not run for an unlabelled collection")

    monkeypatch.setattr("pipeline.ocr.make_engine", no_ocr)
    monkeypatch.setattr("pipeline.ocr.ocr_image", no_ocr)
    drop_blob(collection.repo, collection.files["imgs/gone.png"])
    unlabelled = Manifest(**{**collection.manifest.__dict__, "kind": "unlabelled"})
    assert screen_mod.screen_collections([unlabelled], collection.mirror, collection.labels) == {"tiny": 4}
    entries = read_labels(collection.labels / "tiny.jsonl")
    assert entries["imgs/gone.png"]["error"] == "missing from the snapshot"
    assert entries["imgs/corrupt.jpg"]["error"].startswith("cannot decode")
    good = [e for e in entries.values() if "error" not in e]
    assert len(good) == 2 and {e["label"] for e in good} == {-1}
    for e in good:
        assert e["sha256"] == sha256(collection.files[e["path"]]) and e["boxes"] == e["ignore"] == []
    assert entries["imgs/small.png"]["size"] == [300, 200]


def test_screen_entry_reports_missing_and_corrupt_files_without_ocr(collection):
    m = collection.manifest
    assert screen_entry(None, m, "a.png", None)["error"] == "missing from the snapshot"
    bad = screen_entry(None, m, "b.jpg", b"junk")
    assert bad["error"].startswith("cannot decode") and bad["sha256"] == sha256(b"junk")


def test_labels_writer_survives_a_torn_last_line(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"path": "a", "label": 0}\n{"path": "b", "lab')
    with LabelsWriter(path) as w:
        w.write({"path": "c", "label": 1})
    assert set(read_labels(path)) == {"a", "c"}


# --- the builder --------------------------------------------------------------------------

def write_labels(collection, entries):
    collection.labels.mkdir(parents=True, exist_ok=True)
    with LabelsWriter(collection.labels / "tiny.jsonl") as w:
        for e in entries:
            w.write(e)


def test_build_writes_the_shared_format_and_reports_bad_files(collection):
    f = collection.files
    box = [100.0, 60.0, 400.0, 60.0, 400.0, 120.0, 100.0, 120.0]
    big = "imgs/big.jpg" if "imgs/big.jpg" in collection.manifest.select(
        [(p, sha256(d)) for p, d in f.items()]) else "imgs/copy_of_big.jpg"
    write_labels(collection, [
        entry(big, f["imgs/big.jpg"], 1, [box]),
        entry("imgs/small.png", f["imgs/small.png"], 0),
        entry("imgs/corrupt.jpg", f["imgs/corrupt.jpg"], 0),  # screened as if it were fine: decode fails now
        entry("imgs/gone.png", b"other bytes", -1),  # sha256 differs from the source
    ])
    report = build_pool([collection.manifest], collection.pool, collection.mirror, collection.labels)
    problems = {p["path"]: p["problem"] for p in report.problems}
    assert problems["imgs/corrupt.jpg"].startswith("cannot decode")
    assert problems["imgs/gone.png"] == "sha256 differs from the labels file"
    assert report.counts["tiny"] == {"text": 1, "non_text": 1, "skipped": 2}

    records = {r.path: r for r in load_records(collection.pool)}
    assert set(records) == {"images/tiny/" + Path(big).with_suffix(".jpg").as_posix(), "images/tiny/imgs/small.jpg"}
    text = records["images/tiny/" + Path(big).with_suffix(".jpg").as_posix()]
    assert text.label == 1 and text.source == "tiny" and text.split in ("train", "dev") and text.ignore == []
    with Image.open(collection.pool / text.path) as img:
        assert img.format == "JPEG" and img.size == (683, 512)  # 800x600 -> short edge 512
    scale = 512 / 600
    assert text.boxes[0] == pytest.approx([v * (683 / 800 if i % 2 == 0 else scale) for i, v in enumerate(box)], abs=0.06)
    with Image.open(collection.pool / "images/tiny/imgs/small.jpg") as img:
        assert img.size == (300, 200)  # never enlarged
    line = json.loads((collection.pool / "labels.jsonl").read_text().splitlines()[0])
    assert set(line) == {"path", "label", "boxes", "ignore", "source", "split"}

    # rebuild after the source of the missing blob is gone: reported, not fatal, the rest identical
    before = (collection.pool / "labels.jsonl").read_bytes()
    drop_blob(collection.repo, f["imgs/small.png"])
    report = build_pool([collection.manifest], collection.pool, collection.mirror, collection.labels)
    assert {p["path"]: p["problem"] for p in report.problems}["imgs/small.png"] == "missing from the mirror"
    kept = [line for line in before.splitlines(keepends=True) if b"small" not in line]
    assert len(kept) == 1 and (collection.pool / "labels.jsonl").read_bytes() == kept[0]


def test_build_trims_letterbox_bars_where_the_manifest_asks_and_moves_the_boxes(tmp_path):
    content = gradient(200, 120)  # no row or column of it is one flat colour at its edges
    boxed = np.full((224, 224, 3), 128, np.uint8)
    boxed[52:172, 12:212] = content  # a letterbox: grey bars above, below and at the sides
    files = {"boxed.png": encode(Image.fromarray(boxed), "PNG"),
             "flat.png": encode(Image.new("RGB", (64, 64), (128, 128, 128)), "PNG"),
             "plain.png": encode(Image.fromarray(content), "PNG")}
    mirror, _, commit = make_mirror(tmp_path, files, "boxed")
    box = [32.0, 82.0, 92.0, 82.0, 92.0, 102.0, 32.0, 102.0]  # in the source's pixels
    into_bar = [5.0, 40.0, 60.0, 40.0, 60.0, 70.0, 5.0, 70.0]  # reaches into the left and top bars
    labels = tmp_path / "labels"
    with LabelsWriter(labels / "boxed.jsonl") as w:
        w.write(entry("boxed.png", files["boxed.png"], 1, [box, into_bar]) | {"source": "boxed"})
        w.write(entry("flat.png", files["flat.png"], 0) | {"source": "boxed"})
        w.write(entry("plain.png", files["plain.png"], 0) | {"source": "boxed"})
    for trim, pool in ((True, tmp_path / "trimmed"), (False, tmp_path / "whole")):
        manifest = Manifest(name="boxed", kind="text", repository="owner/boxed", commit=commit, include=("*.png",),
                            trim_borders=trim)
        build_pool([manifest], pool, mirror, labels)
    records = {r.path: r for r in load_records(tmp_path / "trimmed")}
    with Image.open(tmp_path / "trimmed/images/boxed/boxed.jpg") as img:
        assert img.size == (200, 120)
        assert np.abs(np.asarray(img.convert("RGB"), int) - content).mean() < 2  # the content, without bars
    assert records["images/boxed/boxed.jpg"].boxes[0] == pytest.approx([20, 30, 80, 30, 80, 50, 20, 50], abs=0.06)
    assert records["images/boxed/boxed.jpg"].boxes[1] == pytest.approx([0, 0, 48, 0, 48, 18, 0, 18], abs=0.06)
    for name, size in (("flat", (64, 64)), ("plain", (200, 120))):  # a flat picture is kept whole; no bars, no cut
        with Image.open(tmp_path / f"trimmed/images/boxed/{name}.jpg") as img:
            assert img.size == size
    whole = {r.path: r for r in load_records(tmp_path / "whole")}
    with Image.open(tmp_path / "whole/images/boxed/boxed.jpg") as img:
        assert img.size == (224, 224)
    assert whole["images/boxed/boxed.jpg"].boxes == [pytest.approx(box, abs=0.06), pytest.approx(into_bar, abs=0.06)]


def test_trim_borders_must_be_true_or_false():
    with pytest.raises(ValueError, match="trim_borders"):
        Manifest(name="x", kind="text", repository="o/x", commit="c", include=("*",), trim_borders="yes")


def test_build_puts_unlabelled_images_apart_and_counts_unscreened(collection):
    f = collection.files
    write_labels(collection, [entry("imgs/small.png", f["imgs/small.png"], -1)])
    report = build_pool([collection.manifest], collection.pool, collection.mirror, collection.labels)
    assert report.counts["tiny"] == {"unlabelled": 1, "unscreened": 3}
    assert load_records(collection.pool) == []
    assert load_records(collection.pool, "unlabelled.jsonl")[0].label == -1


def test_build_puts_the_rest_of_a_collection_in_unlabelled_jsonl(collection, monkeypatch):
    monkeypatch.setattr("pipeline.ocr.make_engine", lambda *a, **k: FakeEngine())
    base = Manifest(**{**collection.manifest.__dict__, "cap": 2})
    rest = rest_of(base)
    screen_mod.screen_collections([base, rest], collection.mirror, collection.labels)
    report = build_pool([base, rest], collection.pool, collection.mirror, collection.labels)
    assert sum(report.counts["tiny-rest"].values()) == 2 and "text" not in report.counts["tiny-rest"]
    unlabelled = load_records(collection.pool, "unlabelled.jsonl")
    labelled = load_records(collection.pool)
    assert unlabelled and {r.source for r in unlabelled} == {"tiny-rest"} and {r.label for r in unlabelled} == {-1}
    assert all(r.path.startswith("images/tiny-rest/") and (collection.pool / r.path).is_file() for r in unlabelled)
    assert {r.source for r in labelled} <= {"tiny"}


def test_build_of_an_unfetched_collection_is_reported(collection, tmp_path):
    report = build_pool([collection.manifest], collection.pool, tmp_path / "no-mirror", collection.labels)
    assert "cannot list" in report.problems[0]["problem"]
    assert load_records(collection.pool) == []


def test_contact_sheets_sample_only_the_given_sources_and_label(tmp_path):
    from tests.training_helpers import make_tiny_dataset
    from training.collections.sheets import contact_sheets

    root = make_tiny_dataset(tmp_path / "pool")
    sheets = contact_sheets(root, tmp_path / "sheets", {"plain"}, label=0, n=5, per_sheet=4, columns=2, tile=64)
    assert [p.name for p in sheets] == ["sheet_00.png", "sheet_01.png"]
    with Image.open(sheets[0]) as img:
        assert img.size == (128, 128)
    index = (tmp_path / "sheets" / "index.txt").read_text().splitlines()
    assert len(index) == 5 and all("\tplain\t" in line for line in index)
    again = contact_sheets(root, tmp_path / "again", {"plain"}, label=0, n=5, per_sheet=4, columns=2, tile=64)
    assert (tmp_path / "again" / "index.txt").read_text().splitlines() == index and len(again) == 2
