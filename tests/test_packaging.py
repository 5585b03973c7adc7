"""The package Dataflow/Flink workers install, and the default run a newcomer types."""

from __future__ import annotations

import os
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
    for path in ("pipeline/run.py", "model/student.py", "requirements.txt"):
        assert any(n.endswith(path) for n in names), path
    if os.path.exists(SHIPPED):
        assert any(n.endswith("model/weights/student.pt") for n in names)
    assert "torch==2.14.1" in pins and "apache-beam[gcp]==2.77.0" in pins
    assert "pytest" not in pins


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
