"""The base install in a fresh virtual environment: what ``--setup_file ./setup.py`` gives a
Dataflow or Flink worker. The sdist Beam would stage is built, pip installs it (no extras)
into a new venv under tmp_path, and the ``textfilter`` console script filters the samples and
the bad-input corpus there, without torch, with the same results as this environment.

Slow: minutes, nearly all of it pip (apache-beam and its dependencies, from the local package
indexes where they are, else PyPI). Marked ``install``; ``-m 'not install'`` leaves it out.
The venv (~0.6 GB) is removed at the end.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, SAMPLES
from tests.data.make_bad_corpus import CORPUS_FLAGS, make_corpus
from tests.pipeline_helpers import assert_conserved, read_outputs

pytestmark = pytest.mark.install

# Heavy packages that must not reach a base worker: PyTorch, its CUDA libraries and Triton,
# the OCR engine, training and export tools.
ABSENT = ("torch", "torchvision", "nvidia", "triton", "rapidocr", "matplotlib", "onnx", "onnxscript")
MAX_SITE_PACKAGES_MB = 800  # with pip's bytecode, as a worker installs it (requirements.txt's environment: 6.7 GB)


def _du_mb(path: str) -> float:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            if not os.path.islink(full):
                total += os.path.getsize(full)
    return total / 1e6


def _clean_env(venv: str) -> dict:
    """The environment of a shell that activated ``venv`` and is outside the repository."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PATH"] = os.path.join(venv, "bin") + os.pathsep + env.get("PATH", "")
    env["VIRTUAL_ENV"] = venv
    env["OMP_NUM_THREADS"] = "1"
    return env


@pytest.fixture(scope="module")
def base_venv(tmp_path_factory):
    root = tmp_path_factory.mktemp("base-install")
    try:
        yield _install_base(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)  # ~0.7 GB: not left for pytest's keep-the-last-three


def _install_base(root) -> dict:
    """The sdist ``--setup_file`` stages, pip-installed into a new venv under ``root`` as a
    worker installs it (bytecode compiled ahead, pip's default)."""
    dist = root / "dist"
    subprocess.run([sys.executable, "setup.py", "-q", "sdist", "-d", str(dist)], cwd=REPO, check=True,
                   capture_output=True)
    (sdist,) = glob.glob(str(dist / "*.tar.gz"))
    venv = str(root / "venv")
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, capture_output=True)
    python = os.path.join(venv, "bin", "python")
    start = time.perf_counter()
    proc = subprocess.run([python, "-m", "pip", "install", "--quiet", sdist], cwd=root,
                          env=_clean_env(venv), capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr[-3000:]
    (site,) = glob.glob(os.path.join(venv, "lib", "python*", "site-packages"))
    size = _du_mb(site)
    print(f"\nbase install: {seconds:.0f} s, site-packages {size:.0f} MB")
    return {"root": root, "venv": venv, "python": python, "site": site, "env": _clean_env(venv), "mb": size}


def _textfilter(base_venv, *args, cwd=None):
    return subprocess.run([os.path.join(base_venv["venv"], "bin", "textfilter"), *args], cwd=cwd or base_venv["root"],
                          env=base_venv["env"], capture_output=True, text=True, timeout=600)


def test_base_install_has_no_torch_and_is_small(base_venv):
    site = base_venv["site"]
    present = [name for name in ABSENT if os.path.exists(os.path.join(site, name))]
    assert not present, f"the base install pulled in {present}"
    probe = "import importlib.util as u; print([m for m in %r if u.find_spec(m)])" % (ABSENT,)
    out = subprocess.run([base_venv["python"], "-c", probe], env=base_venv["env"], cwd=base_venv["root"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert base_venv["mb"] <= MAX_SITE_PACKAGES_MB


def test_base_install_filters_like_the_full_environment(base_venv, tmp_path):
    corpus = str(tmp_path / "bad")
    expected = make_corpus(corpus)
    listing = tmp_path / "uris.txt"  # a folder input skips sub-folders: name the one in the corpus
    listing.write_text(os.path.join(corpus, "a directory.jpg") + "\n", encoding="utf-8")
    args = ["--input", SAMPLES, "--input", corpus, "--input_list", str(listing), *CORPUS_FLAGS]
    proc = _textfilter(base_venv, *args, "--output", str(tmp_path / "base-out"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "textfilter:" in proc.stdout
    base = read_outputs(str(tmp_path / "base-out"))
    samples = [os.path.join(SAMPLES, n) for n in os.listdir(SAMPLES)]
    assert_conserved(base, samples + [os.path.join(corpus, n) for n in expected])
    assert not [r for r in base["failed"] if r["uri"] in samples], "a sample failed"

    from pipeline.run import run  # this environment: every extra installed

    run([*args, "--output", str(tmp_path / "full-out")])
    full = read_outputs(str(tmp_path / "full-out"))

    def decisions(outputs):
        return {r["uri"]: (route, r.get("score"), r.get("regions_5x5"), r.get("regions_3x3"), r.get("stage"))
                for route, records in outputs.items() for r in records}

    assert decisions(base) == decisions(full)


@pytest.mark.parametrize("flags, extra", [(["--model_format", "torch"], "torch"), (["--ocr", "rapidocr"], "ocr"),
                                          (["--runner", "DataflowRunner"], "dataflow")])
def test_a_flag_that_needs_a_missing_extra_says_which(base_venv, flags, extra, tmp_path):
    proc = _textfilter(base_venv, "--input", SAMPLES, "--output", str(tmp_path / "out"), *flags)
    assert proc.returncode == 2
    assert f"textfilter[{extra}]" in proc.stderr and flags[0] in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not os.path.exists(tmp_path / "out")  # refused before the pipeline started


def test_no_input_outside_a_checkout_is_a_usage_error(base_venv):
    proc = _textfilter(base_venv)  # the default input, samples/, is not in the package
    assert proc.returncode == 2 and "no --input" in proc.stderr and "Traceback" not in proc.stderr
