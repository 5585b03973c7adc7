"""End-to-end pipeline tests on real image files (FnApiRunner)."""

from __future__ import annotations

import json
import os
import re

import pytest

from pipeline.run import run
from tests.conftest import SAMPLES
from tests.pipeline_helpers import assert_conserved, read_outputs

RUNNER = ["--runner=FnApiRunner"]


def test_mixed_folder_every_uri_in_exactly_one_output(mixed_folder, student_checkpoint, tmp_path):
    out = str(tmp_path / "out")
    summary = run([*RUNNER, "--input", mixed_folder["dir"], "--output", out, "--model_path", student_checkpoint])
    outputs = read_outputs(out)
    assert_conserved(outputs, mixed_folder["good"] + mixed_folder["bad"])
    failed = {r["uri"]: r for r in outputs["failed"]}
    assert sorted(failed) == sorted(mixed_folder["bad"])
    assert all(r["stage"] == "decode" and r["error"] for r in failed.values())
    assert "empty" in failed[os.path.join(mixed_folder["dir"], "empty.jpg")]["error"]
    assert "HTML" in failed[os.path.join(mixed_folder["dir"], "page.jpg")]["error"]
    decided = outputs["text"] + outputs["non_text"]
    for r in decided:
        assert 0.0 <= r["score"] <= 1.0
        assert len(r["regions_5x5"]) == 5 and len(r["regions_3x3"]) == 3
        assert r["score"] == pytest.approx(max(max(map(max, r["regions_5x5"])), max(map(max, r["regions_3x3"]))), abs=1e-4)
    assert summary["images"] == len(mixed_folder["good"]) + len(mixed_folder["bad"])
    assert summary["failed"] == len(mixed_folder["bad"])
    assert json.load(open(os.path.join(out, "summary.json")))["images"] == summary["images"]


@pytest.mark.parametrize("threshold,route", [(0.0, "text"), (1.0, "non_text")])
def test_threshold_routes_everything_one_way(threshold, route, student_checkpoint, tmp_path):
    out = str(tmp_path / "out")
    run([*RUNNER, "--output", out, "--model_path", student_checkpoint, "--threshold", str(threshold)])
    outputs = read_outputs(out)
    n = len(os.listdir(SAMPLES))
    assert len(outputs[route]) == n
    assert all(r["label"] == route for r in outputs[route])


def test_scores_do_not_depend_on_batching(student_checkpoint, tmp_path):
    scores = []
    for batch in ("1", "32"):
        out = str(tmp_path / f"out{batch}")
        run([*RUNNER, "--output", out, "--model_path", student_checkpoint, "--batch_size", batch])
        outputs = read_outputs(out)
        scores.append({r["uri"]: r["score"] for r in outputs["text"] + outputs["non_text"]})
    assert scores[0].keys() == scores[1].keys()
    for uri in scores[0]:
        assert scores[0][uri] == pytest.approx(scores[1][uri], abs=1e-5)


def test_input_list_and_missing_files(student_checkpoint, tmp_path):
    names = sorted(os.listdir(SAMPLES))[:3]
    uris = [os.path.join(SAMPLES, n) for n in names] + [str(tmp_path / "gone.jpg"), str(tmp_path)]
    listing = tmp_path / "uris.txt"
    listing.write_text("# crawl list\n" + "\n".join(uris) + "\n\n")
    out = str(tmp_path / "out")
    run([*RUNNER, "--input_list", str(listing), "--output", out, "--model_path", student_checkpoint])
    outputs = read_outputs(out)
    assert_conserved(outputs, uris)
    failed = {r["uri"]: r for r in outputs["failed"]}
    assert failed[str(tmp_path / "gone.jpg")]["stage"] == "read"
    assert "not found" in failed[str(tmp_path / "gone.jpg")]["error"]
    assert "directory" in failed[str(tmp_path)]["error"]


def test_ocr_inbox_copies_text_images_under_safe_names(student_checkpoint, tmp_path):
    out, inbox = str(tmp_path / "out"), str(tmp_path / "inbox")
    run([*RUNNER, "--output", out, "--model_path", student_checkpoint, "--threshold", "0", "--ocr_inbox", inbox])
    text = read_outputs(out)["text"]
    assert len(text) == len(os.listdir(SAMPLES))
    copied = sorted(os.listdir(inbox))
    assert len(copied) == len(text)
    for r in text:
        assert os.path.dirname(r["ocr_inbox_uri"]) == inbox
        with open(r["uri"], "rb") as a, open(r["ocr_inbox_uri"], "rb") as b:
            assert a.read() == b.read()


def test_rerun_into_same_output_replaces_old_shards(student_checkpoint, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "text-00003-of-00007.jsonl").write_text('{"uri": "stale"}\n')
    run([*RUNNER, "--output", str(out), "--model_path", student_checkpoint, "--threshold", "0"])
    run([*RUNNER, "--output", str(out), "--model_path", student_checkpoint, "--threshold", "0"])
    files = sorted(os.listdir(out))
    assert files == ["failed-00000-of-00001.jsonl", "non_text-00000-of-00001.jsonl", "summary.json",
                     "text-00000-of-00001.jsonl"]
    assert len(read_outputs(str(out))["text"]) == len(os.listdir(SAMPLES))


def test_multiple_shards(student_checkpoint, tmp_path):
    out = str(tmp_path / "out")
    run([*RUNNER, "--output", out, "--model_path", student_checkpoint, "--threshold", "0", "--records_per_shard", "5"])
    shards = sorted(f for f in os.listdir(out) if f.startswith("text-"))
    assert shards[0].endswith("-of-00003.jsonl")
    assert len(read_outputs(out)["text"]) == len(os.listdir(SAMPLES))


def test_multi_processing_direct_running_mode(mixed_folder, student_checkpoint, tmp_path, capsys):
    out = str(tmp_path / "out")
    run([*RUNNER, "--direct_running_mode=multi_processing", "--direct_num_workers=2",
         "--input", mixed_folder["dir"], "--output", out, "--model_path", student_checkpoint,
         "--progress_interval", "0.2"])
    inputs = mixed_folder["good"] + mixed_folder["bad"]
    assert_conserved(read_outputs(out), inputs)
    # progress from the worker processes reaches the driver while the run lasts
    decided = [int(m[1]) for m in re.finditer(r"^textfilter: (\d+) images decided", capsys.readouterr().err, re.M)]
    assert decided and max(decided) > 0 and decided == sorted(decided) and decided[-1] <= len(inputs)


def _grid_maxima(record) -> tuple[float, float]:
    return max(map(max, record["regions_5x5"])), max(map(max, record["regions_3x3"]))


def test_score_rule_stored_with_the_weights_decides(student_checkpoint, tmp_path):
    from model import load_checkpoint, save_checkpoint

    model, _ = load_checkpoint(student_checkpoint)
    both = str(tmp_path / "both.pt")
    save_checkpoint(both, model, {"threshold": 0.4, "score_rule": "both_grids"})
    out = str(tmp_path / "out")
    summary = run([*RUNNER, "--output", out, "--model_path", both])
    assert summary["score_rule"] == "both_grids" and summary["threshold"] == 0.4
    decided = [r for route in ("text", "non_text") for r in read_outputs(out)[route]]
    assert len(decided) == len(os.listdir(SAMPLES))
    for r in decided:
        five, three = _grid_maxima(r)
        assert r["score"] == pytest.approx((five * three) ** 0.5, abs=1e-3)  # grids are written rounded
        assert (r["label"] == "text") == (r["score"] >= 0.4)
    # --score_rule overrides the stored rule
    out_max = str(tmp_path / "out_max")
    assert run([*RUNNER, "--output", out_max, "--model_path", both, "--score_rule", "max"])["score_rule"] == "max"
    for route in ("text", "non_text"):
        for r in read_outputs(out_max)[route]:
            assert r["score"] == pytest.approx(max(_grid_maxima(r)), abs=1e-4)


def test_unknown_stored_score_rule_is_refused_before_the_run(student_checkpoint, tmp_path):
    from model import load_checkpoint, save_checkpoint

    model, _ = load_checkpoint(student_checkpoint)
    odd = str(tmp_path / "odd.pt")
    save_checkpoint(odd, model, {"threshold": 0.5, "score_rule": "mean"})
    with pytest.raises(ValueError, match="unknown score rule 'mean'"):
        run([*RUNNER, "--output", str(tmp_path / "out"), "--model_path", odd])
    assert not os.path.exists(tmp_path / "out")


def test_input_shape_stored_with_the_weights_is_the_one_the_pipeline_feeds(tmp_path):
    """Weights trained at a fixed 256x341 (meta["preprocess"]) are run on 256x341 / 341x256
    images by the pipeline, not at its default aspect-kept shapes."""
    import numpy as np
    import torch

    from model import build_model, save_checkpoint
    from model.preprocessing import DEFAULT_PREPROCESS, PreprocessConfig, decode_image, shape_meta, to_tensor
    from model.student import REFERENCE_LAYOUT

    torch.manual_seed(0)
    model = build_model("student", **REFERENCE_LAYOUT).eval()
    fixed = PreprocessConfig(fixed_long_edge=341)
    path = str(tmp_path / "fixed.pt")
    save_checkpoint(path, model, {"threshold": 0.5, "preprocess": shape_meta(fixed)})
    out = str(tmp_path / "out")
    run([*RUNNER, "--output", out, "--model_path", path, "--model_format", "torch"])
    decided = [r for route in ("text", "non_text") for r in read_outputs(out)[route]]
    assert len(decided) == len(os.listdir(SAMPLES))

    def regions(uri, cfg):
        with open(uri, "rb") as f:
            image = decode_image(f.read(), cfg)
        with torch.inference_mode():
            return torch.sigmoid(model(to_tensor(image)).logits)[0, :25].numpy().reshape(5, 5), image.shape

    differs = 0
    for r in decided:
        want, shape = regions(r["uri"], fixed)
        assert shape in ((256, 341, 3), (341, 256, 3))
        assert np.allclose(r["regions_5x5"], want, atol=1e-4), r["uri"]  # written rounded to 4 places
        differs += not np.allclose(regions(r["uri"], DEFAULT_PREPROCESS)[0], want, atol=1e-4)
    assert differs  # the default shapes would have scored differently: the test can tell
