"""The package Dataflow/Flink workers install, and the default run a newcomer types."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile

import pytest

from tests.conftest import REPO, SAMPLES
from tests.pipeline_helpers import assert_conserved, read_outputs

SHIPPED = os.path.join(REPO, "model", "weights", "student.pt")


def test_sdist_builds_with_code_weights_and_pins(tmp_path):
    subprocess.run([sys.executable, "setup.py", "-q", "sdist", "-d", str(tmp_path)], cwd=REPO, check=True,
                   capture_output=True)
    (archive,) = [p for p in os.listdir(tmp_path) if p.endswith(".tar.gz")]
    with tarfile.open(tmp_path / archive) as tar:
        names = tar.getnames()
        requires = next(n for n in names if n.endswith("textfilter.egg-info/requires.txt"))
        pins = tar.extractfile(requires).read().decode()
        entry_points = tar.extractfile(next(n for n in names if n.endswith("textfilter.egg-info/entry_points.txt")))
        scripts = entry_points.read().decode()
    for path in ("pipeline/run.py", "model/student.py", "requirements.txt", "requirements/base.txt"):
        assert any(n.endswith(path) for n in names), path
    if os.path.exists(SHIPPED):
        assert any(n.endswith("model/weights/student.pt") for n in names)
    base, *extras = pins.split("\n[")
    sections = {e.split("]", 1)[0]: e.split("]", 1)[1] for e in extras}
    assert "apache-beam==2.77.0" in base and "onnxruntime==1.32.0" in base
    assert "[gcp]" not in base and "apache-beam[gcp]==2.77.0" in sections["dataflow"]  # the launcher's, not workers'
    for heavy in ("torch", "rapidocr", "matplotlib", "onnx=", "pytest"):
        assert heavy not in base, heavy
    assert "torch==2.14.1" in sections["torch"] and "torchvision==0.29.1" in sections["torch"]
    assert "rapidocr==3.10.0" in sections["ocr"] and "torch==2.14.1" in sections["train"]
    assert "pytest" in sections["dev"] and "pytest" in sections["all"] and "torch==2.14.1" in sections["all"]
    assert "textfilter = pipeline.run:main" in scripts


def test_requirements_txt_installs_the_base_and_every_extra():
    """``make`` installs requirements.txt; setup.py reads the same requirements/*.txt files."""
    with open(os.path.join(REPO, "requirements.txt")) as f:
        includes = sorted(line.split()[1] for line in f if line.startswith("-r"))
    assert includes == sorted(f"requirements/{name}.txt" for name in ("base", "dataflow", "torch", "ocr", "train", "dev"))


@pytest.mark.skipif(not os.path.exists(SHIPPED), reason="no shipped student weights yet")
def test_default_run_with_no_arguments(tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.run([sys.executable, "-m", "pipeline.run"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "textfilter:" in proc.stdout and "img/s" in proc.stdout
    outputs = read_outputs(str(tmp_path / "textfilter-out"))
    assert_conserved(outputs, [os.path.join(SAMPLES, n) for n in os.listdir(SAMPLES)])
    assert not outputs["failed"]


def test_bad_arguments_give_clear_errors(tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.run([sys.executable, "-m", "pipeline.run", "--model_path", str(tmp_path / "none.pt")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "error" in proc.stderr and "none.pt" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_worker_image_recipe_builds_the_package_from_what_it_copies(tmp_path):
    """The Dockerfile (Dataflow custom container) cannot be built here: check that what it
    copies, past .dockerignore, is enough to build the package with its weights, and that its
    Beam image is the version the package pins."""
    with open(os.path.join(REPO, "Dockerfile")) as f:
        lines = [line.strip() for line in f]
    with open(os.path.join(REPO, ".dockerignore")) as f:
        allowed = {line[1:].strip().rstrip("/") for line in f if line.startswith("!")}
    with open(os.path.join(REPO, "requirements", "base.txt")) as f:
        beam_pin = next(line.split("==")[1].strip() for line in f if line.startswith("apache-beam"))
    assert f"ARG BEAM_VERSION={beam_pin}" in lines
    assert "FROM apache/beam_python3.11_sdk:${BEAM_VERSION}" in lines
    context = tmp_path / "context"
    sources = [src for line in lines if line.startswith("COPY ") for src in line.split()[1:-1]]
    assert sources
    for src in sources:
        assert src.rstrip("/") in allowed, f"{src} is copied but .dockerignore leaves it out"
        if src.endswith("/"):
            shutil.copytree(os.path.join(REPO, src), context / src,
                            ignore=shutil.ignore_patterns("__pycache__", "teacher.pt"))
        else:
            context.mkdir(exist_ok=True)
            shutil.copy(os.path.join(REPO, src), context / src)
    subprocess.run([sys.executable, "setup.py", "-q", "sdist", "-d", str(tmp_path / "dist")], cwd=context, check=True,
                   capture_output=True)
    (archive,) = os.listdir(tmp_path / "dist")
    with tarfile.open(tmp_path / "dist" / archive) as tar:
        names = tar.getnames()
    for path in ("pipeline/run.py", "model/onnx_format.py", "requirements/base.txt", "model/weights/student.onnx"):
        assert any(n.endswith(path) for n in names), path
    assert not any(n.endswith("teacher.pt") for n in names)
