"""A flag that needs a package extra which is not installed: one clear line naming the extra,
on the launcher and on a worker. "Not installed" is simulated by ``sys.modules[name] = None``
(what ``importlib`` reads as absent); tests/test_install.py checks a real base install."""

from __future__ import annotations

import os

import pytest

from pipeline.extras import MissingExtra, check_options, require
from pipeline.handler import StudentModelHandler
from pipeline.ocr import make_engine
from pipeline.run import main
from tests.conftest import SAMPLES


@pytest.fixture
def without(monkeypatch):
    def hide(*modules):
        for name in modules:
            monkeypatch.setitem(__import__("sys").modules, name, None)

    return hide


def test_installed_extras_pass():
    check_options("onnx", "none")
    check_options("torch", "rapidocr")  # this environment has every extra


@pytest.mark.parametrize("model_format, ocr, hidden, extra", [
    ("torch", "none", "torch", "torch"),
    ("onnx", "rapidocr", "rapidocr", "ocr"),
])
def test_missing_extra_names_the_flag_and_the_extra(without, model_format, ocr, hidden, extra):
    without(hidden)
    with pytest.raises(MissingExtra) as e:
        check_options(model_format, ocr)
    assert isinstance(e.value, ValueError) and isinstance(e.value, ImportError) and e.value.name == hidden
    assert f"textfilter[{extra}]" in str(e.value) and f"requirements/{extra}.txt" in str(e.value)


@pytest.mark.parametrize("runner", ["DataflowRunner", "dataflow"])
def test_dataflow_runner_needs_the_dataflow_extra(without, runner):
    check_options("onnx", "none", runner)  # installed here
    without("apitools")
    with pytest.raises(MissingExtra, match=r"--runner .*textfilter\[dataflow\]"):
        check_options("onnx", "none", runner)
    check_options("onnx", "none", "FnApiRunner")  # other runners do not need it


def test_onnx_without_torch_is_fine(without):
    without("torch", "rapidocr")
    check_options("onnx", "none")


@pytest.mark.parametrize("flags, hidden", [(["--model_format", "torch"], "torch"), (["--ocr", "rapidocr"], "rapidocr")])
def test_cli_refuses_before_running(without, capsys, tmp_path, flags, hidden):
    without(hidden)
    out = tmp_path / "out"
    assert main(["--input", SAMPLES, "--output", str(out), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("textfilter: error: " + " ".join(flags)) and "Traceback" not in err
    assert not os.path.exists(out)


def test_auto_format_of_a_checkpoint_needs_torch(without, capsys, tmp_path):
    without("torch")
    assert main(["--input", SAMPLES, "--output", str(tmp_path / "out"), "--model_path", str(tmp_path / "s.pt")]) == 2
    assert "textfilter[torch]" in capsys.readouterr().err


def test_worker_without_the_extra_fails_with_the_same_message(without):
    """A worker given less than the launcher (no --requirements_file for the extra)."""
    without("torch", "rapidocr")
    with pytest.raises(MissingExtra, match=r"textfilter\[torch\]"):
        StudentModelHandler("unused.pt").load_model()
    with pytest.raises(MissingExtra, match=r"textfilter\[ocr\]"):
        make_engine()
    with pytest.raises(MissingExtra):
        require("ocr", "--ocr rapidocr")
