"""Export of the student (ONNX, TorchScript) and the pipeline's ONNX path."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from model.heads import adaptive_bins, adaptive_pool, sliced_adaptive_pool
from model.preprocessing import decode_image
from tests.conftest import REPO, SAMPLES

RUNNER = ["--runner=FnApiRunner"]


def sample_images() -> list[np.ndarray]:
    return [decode_image(open(os.path.join(SAMPLES, n), "rb").read()) for n in sorted(os.listdir(SAMPLES))]


def torch_probs(model, images) -> np.ndarray:
    from model.preprocessing import to_tensor

    with torch.inference_mode():
        return torch.sigmoid(model(to_tensor(images)).logits).numpy()


@pytest.fixture(scope="module")
def student(student_checkpoint):
    from model import load_checkpoint

    return load_checkpoint(student_checkpoint, expect="student")[0].eval()


@pytest.fixture(scope="module")
def onnx_path(student_checkpoint, tmp_path_factory) -> str:
    from model.export import export

    out = str(tmp_path_factory.mktemp("export") / "student.onnx")
    path, diff = export(student_checkpoint, "onnx", out, exporter="dynamo")
    assert diff is not None and diff < 1e-4
    return path


# --------------------------------------------------------------------------- pooling


@pytest.mark.parametrize("g", [5, 3])
def test_adaptive_bins_are_pytorchs(g):
    import math

    for n in range(1, 80):
        assert adaptive_bins(n, g) == [(math.floor(i * n / g), math.ceil((i + 1) * n / g)) for i in range(g)]


@pytest.mark.parametrize("g", [5, 3])
def test_sliced_adaptive_pool_equals_torch_on_many_sizes(g):
    gen = torch.Generator().manual_seed(0)
    heights = (1, 2, 3, 4, 5, 6, 7, 9, 11, 13, 16, 17, 22, 31, 64)
    sizes = [(h, w) for h in heights for w in (1, 2, 3, 5, 8, 12, 22, 23, 128)]
    for h, w in sizes:
        x = torch.randn(2, 4, h, w, generator=gen)
        # max: bit-identical (a max does not depend on the order it is taken in)
        assert torch.equal(sliced_adaptive_pool(x, g, "max"), torch.nn.functional.adaptive_max_pool2d(x, g)), (h, w)
        # avg: the same bins; the sum is taken in another order, so only float rounding differs
        avg = sliced_adaptive_pool(x, g, "avg")
        assert torch.allclose(avg, torch.nn.functional.adaptive_avg_pool2d(x, g), rtol=0, atol=1e-6), (h, w)
    x = torch.randn(1, 2, 8, 8, generator=gen).to(memory_format=torch.channels_last)
    assert torch.equal(sliced_adaptive_pool(x, g, "max"), torch.nn.functional.adaptive_max_pool2d(x, g))


def test_adaptive_pool_uses_torchs_kernel_outside_export():
    x = torch.randn(1, 3, 13, 22)
    assert torch.equal(adaptive_pool(x, 5, "max"), torch.nn.functional.adaptive_max_pool2d(x, 5))
    assert torch.equal(adaptive_pool(x, 3, "avg"), torch.nn.functional.adaptive_avg_pool2d(x, 3))
    with pytest.raises(ValueError, match="unknown pooling"):
        adaptive_pool(x, 3, "median")


# --------------------------------------------------------------------------- ONNX


def test_onnx_matches_pytorch_on_sample_images_of_different_shapes(student, onnx_path):
    from model.export import exported_probs

    images = sample_images()
    shapes = {im.shape for im in images}
    assert len(shapes) >= 3, shapes  # landscape, portrait and square samples
    for image in images:
        onnx_p = exported_probs(onnx_path, "onnx", [image])
        assert onnx_p.shape == (1, 34)
        np.testing.assert_allclose(onnx_p, torch_probs(student, [image]), rtol=0, atol=1e-4)
    same = [im for im in images if im.shape == images[0].shape][:1] * 3  # dynamic batch
    np.testing.assert_allclose(exported_probs(onnx_path, "onnx", same), torch_probs(student, same), rtol=0, atol=1e-4)


@pytest.mark.parametrize("layout", ["WIDE_CONTEXT_LAYOUT", "SEPARABLE_LAYOUT"])
def test_other_layouts_export_to_onnx_with_the_same_probabilities(tmp_path, layout):
    import model.student
    from model import build_model, save_checkpoint
    from model.export import export, exported_probs

    torch.manual_seed(0)
    student = build_model("student", **getattr(model.student, layout)).eval()
    save_checkpoint(tmp_path / "s.pt", student, {"threshold": 0.5})
    path, diff = export(str(tmp_path / "s.pt"), "onnx", str(tmp_path / "s.onnx"), exporter="dynamo")
    assert diff is not None and diff < 1e-4
    images = sample_images()[:3]
    for image in images:  # each of its own shape (the context layout's image mean is taken over the dynamic size)
        np.testing.assert_allclose(exported_probs(path, "onnx", [image]), torch_probs(student, [image]), rtol=0, atol=1e-4)


def test_onnx_file_carries_the_checkpoint_meta(onnx_path, student_checkpoint):
    import onnx

    from model.onnx_format import KEY_CONFIG, KEY_META, KEY_MODEL, read_onnx_meta
    from pipeline.run import stored_decision, stored_threshold

    data = open(onnx_path, "rb").read()
    assert read_onnx_meta(data) == {"threshold": 0.5}
    props = {p.key: p.value for p in onnx.load(onnx_path).metadata_props}
    assert props[KEY_MODEL] == "student" and json.loads(props[KEY_META]) == {"threshold": 0.5}
    assert json.loads(props[KEY_CONFIG])["channels"] == [16, 32, 32, 48, 48, 64]
    assert stored_threshold(onnx_path, model_format="onnx") == 0.5
    assert stored_decision(onnx_path, model_format="onnx") == (0.5, "max")  # no rule stored: the paper's
    with pytest.raises(ValueError, match="not a readable ONNX model"):
        stored_threshold(student_checkpoint, model_format="onnx")


def test_onnx_inputs_and_outputs_are_dynamic(onnx_path):
    import onnx

    model = onnx.load(onnx_path)
    dims = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in list(model.graph.input) + list(model.graph.output)}
    # uint8 (N, H, W, 3): N, H and W dynamic, normalisation inside the graph
    assert dims["images"][3] == 3 and all(isinstance(d, str) for d in dims["images"][:3])
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert dims["probs"][1] == 34 and dims["logits"][1] == 34


def test_legacy_exporter_gives_the_same_probabilities(student, student_checkpoint, tmp_path):
    from model.export import exported_probs, export_onnx

    out = export_onnx(student, {"threshold": 0.25}, str(tmp_path / "legacy.onnx"), exporter="legacy")
    images = sample_images()[:3]
    for image in images:
        np.testing.assert_allclose(exported_probs(out, "onnx", [image]), torch_probs(student, [image]), rtol=0,
                                   atol=1e-4)


def test_torchscript_export_and_cli(student, student_checkpoint, tmp_path, capsys):
    from model.export import exported_probs, load_torchscript, main

    out = str(tmp_path / "student.ts.pt")
    assert main(["--format", "torchscript", "--checkpoint", student_checkpoint, "--out", out]) == 0
    assert "wrote" in capsys.readouterr().out
    _, meta = load_torchscript(out)
    assert meta == {"threshold": 0.5}
    for image in sample_images()[:4]:
        np.testing.assert_allclose(exported_probs(out, "torchscript", [image]), torch_probs(student, [image]), rtol=0,
                                   atol=1e-5)
    assert main(["--checkpoint", str(tmp_path / "missing.pt")]) == 2
    assert "not found" in capsys.readouterr().err


# --------------------------------------------------------------------------- handler and pipeline


def test_onnx_handler_groups_by_shape_like_the_torch_handler(student_checkpoint, onnx_path):
    from pipeline.handler import StudentModelHandler, StudentOnnxModelHandler

    images = sample_images()
    torch_handler = StudentModelHandler(student_checkpoint)
    onnx_handler = StudentOnnxModelHandler(onnx_path, num_threads=1)
    session = onnx_handler.load_model()
    assert session.get_session_options().intra_op_num_threads == 1
    expected = [r.inference for r in torch_handler.run_inference(images, torch_handler.load_model())]
    got = onnx_handler.run_inference(images, session)
    assert [r.example is im for r, im in zip(got, images)] == [True] * len(images)
    for r, e in zip(got, expected):
        assert r.inference.shape == (34,)
        np.testing.assert_allclose(r.inference, e, rtol=0, atol=1e-4)


def test_onnx_worker_path_imports_no_torch(onnx_path):
    """What a worker imports for --model_format onnx: the transforms, the handler, onnxruntime."""
    code = f"""
import json, os, sys, psutil
import pipeline.run, pipeline.transforms, pipeline.sinks, pipeline.report
from pipeline.handler import model_handler
from model.preprocessing import decode_image
handler = model_handler("onnx", {onnx_path!r}, num_threads=1)
session = handler.load_model()
image = decode_image(open(os.path.join({SAMPLES!r}, sorted(os.listdir({SAMPLES!r}))[0]), "rb").read())
out = handler.run_inference([image], session)
print(json.dumps({{"torch": "torch" in sys.modules, "shape": list(out[0].inference.shape),
                  "rss_mib": psutil.Process().memory_info().rss / 2**20}}))
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["torch"] is False, "the ONNX path imported torch"
    assert result["shape"] == [34]


def test_pipeline_onnx_gives_the_routes_and_scores_of_torch(student_checkpoint, onnx_path, tmp_path):
    from pipeline.run import run
    from tests.pipeline_helpers import read_outputs

    out_torch = str(tmp_path / "torch")
    run([*RUNNER, "--output", out_torch, "--model_path", student_checkpoint])
    torch_scores = {r["uri"]: r["score"] for route in ("text", "non_text") for r in read_outputs(out_torch)[route]}
    # A threshold in the middle of the widest gap between scores, so that both routes are used
    ranked = sorted(torch_scores.values())
    gap, i = max((b - a, i) for i, (a, b) in enumerate(zip(ranked, ranked[1:])))
    assert gap > 1e-5
    threshold = (ranked[i] + ranked[i + 1]) / 2
    runs = {}
    for name, args in (("torch", ["--model_path", student_checkpoint]),
                       ("onnx", ["--model_format", "onnx", "--model_path", onnx_path])):
        out = str(tmp_path / f"{name}-t")
        summary = run([*RUNNER, "--output", out, "--threshold", repr(threshold), *args])
        runs[name] = (summary, read_outputs(out))
    (s_t, o_t), (s_o, o_o) = runs["torch"], runs["onnx"]
    assert o_t["text"] and o_t["non_text"] and not o_t["failed"] and not o_o["failed"]
    for route in ("text", "non_text"):
        assert sorted(r["uri"] for r in o_o[route]) == sorted(r["uri"] for r in o_t[route])
    onnx_scores = {r["uri"]: r for r in o_o["text"] + o_o["non_text"]}
    for r in o_t["text"] + o_t["non_text"]:
        o = onnx_scores[r["uri"]]
        assert o["score"] == pytest.approx(r["score"], abs=1e-4)
        np.testing.assert_allclose(o["regions_5x5"], r["regions_5x5"], atol=2e-4)
    assert s_o["text"] == s_t["text"] and s_o["non_text"] == s_t["non_text"]


def test_onnx_threshold_comes_from_the_file_and_bad_format_is_refused(onnx_path, student_checkpoint):
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipeline.run import config_from_options

    config = config_from_options(PipelineOptions(["--model_format", "onnx", "--model_path", onnx_path]))
    assert config.threshold == 0.5 and config.model_format == "onnx"
    with pytest.raises(SystemExit):
        config_from_options(PipelineOptions(["--model_format", "tflite", "--model_path", onnx_path]))


def test_auto_model_format_follows_the_path(tmp_path, monkeypatch):
    import pipeline.handler as handler

    assert handler.resolve_model_format("auto", "gs://b/student.onnx") == "onnx"
    assert handler.resolve_model_format("auto", "https://h/student.ONNX?sig=x") == "onnx"
    assert handler.resolve_model_format("auto", "/w/student.pt") == "torch"
    assert handler.resolve_model_format("torch", "/w/student.onnx") == "torch"
    shipped_onnx = tmp_path / "student.onnx"
    monkeypatch.setattr(handler, "default_model_path",
                        lambda fmt="torch": str(shipped_onnx) if fmt == "onnx" else str(tmp_path / "student.pt"))
    assert handler.resolve_model_format("auto") == "torch"
    shipped_onnx.write_bytes(b"x")
    assert handler.resolve_model_format("auto") == "onnx"


SHIPPED_PT = os.path.join(REPO, "model", "weights", "student.pt")
SHIPPED_ONNX = os.path.join(REPO, "model", "weights", "student.onnx")


@pytest.mark.skipif(not os.path.exists(SHIPPED_PT), reason="no shipped student weights")
def test_shipped_student_keeps_the_product_contract():
    """What issue 17 asks of any student that ships: <= 110k parameters, a threshold chosen by the
    fixed rule and stored with the weights, and the 256x341 shape it was trained at."""
    from model import load_checkpoint

    model, meta = load_checkpoint(SHIPPED_PT, expect="student")
    assert sum(p.numel() for p in model.parameters()) <= 110_000
    assert 0 < meta["threshold"] < 1 and meta["score_rule"] == "max" and meta["target_recall"] == 0.96
    assert meta["preprocess"]["short_edge"] == 256 and meta["preprocess"]["fixed_long_edge"] == 341


@pytest.mark.skipif(not os.path.exists(SHIPPED_ONNX), reason="no shipped ONNX export")
def test_shipped_onnx_is_an_export_of_the_shipped_checkpoint():
    """The default run uses the ONNX file: it must stay in sync with student.pt
    (re-export with `python -m model.export --format onnx` after training)."""
    from model import load_checkpoint
    from model.export import exported_probs, torch_probs
    from model.onnx_format import read_onnx_meta
    from model.preprocessing import preprocess_from_meta

    model, meta = load_checkpoint(SHIPPED_PT, expect="student")
    with open(SHIPPED_ONNX, "rb") as f:
        assert read_onnx_meta(f.read()) == json.loads(json.dumps(meta))
    preprocess = preprocess_from_meta(meta)  # the input shape the weights were trained on
    images = [decode_image(open(os.path.join(SAMPLES, n), "rb").read(), preprocess)
              for n in sorted(os.listdir(SAMPLES))[:4]]
    for image in images:
        diff = np.abs(exported_probs(SHIPPED_ONNX, "onnx", [image]) - torch_probs(model.eval(), [image])).max()
        assert diff <= 1e-4


def test_an_onnx_file_of_another_format_is_refused_clearly(onnx_path, tmp_path):
    import onnx

    from model.onnx_format import KEY_FORMAT, read_onnx_meta

    proto = onnx.load(onnx_path)
    for prop in proto.metadata_props:
        if prop.key == KEY_FORMAT:
            prop.value = "textfilter-onnx/1"
    old = tmp_path / "old.onnx"
    onnx.save(proto, str(old))
    with pytest.raises(ValueError, match="re-export"):
        read_onnx_meta(old.read_bytes())
