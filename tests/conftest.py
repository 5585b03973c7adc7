"""Shared fixtures: a small student checkpoint and folders of real image files."""

from __future__ import annotations

import os
import shutil

import pytest
import torch

from tests.faulty_fs import PROTOCOL as FAULTY_PROTOCOL, FaultyFileSystem
from tests.images import image_bytes
from tests.training_helpers import TINY, make_tiny_dataset

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = os.path.join(REPO, "samples")
SHARED_DATA = os.path.join(os.path.dirname(REPO), "shared", "data")


def pytest_configure(config):
    config.addinivalue_line("markers", "install: pip-installs the package into a fresh virtual environment (minutes)")


@pytest.fixture(scope="session")
def student_checkpoint(tmp_path_factory) -> str:
    """A randomly initialised student with a stored threshold (pipeline tests must not
    depend on what the shipped weights decide)."""
    from model import build_model, save_checkpoint

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "student.pt"
    save_checkpoint(path, build_model("student"), {"threshold": 0.5})
    return str(path)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> str:
    """A tiny generated training set (``tests.training_helpers.make_tiny_dataset``)."""
    return make_tiny_dataset(tmp_path_factory.mktemp("tinydata"))


@pytest.fixture(scope="session")
def tiny_teacher(tiny_root, tmp_path_factory) -> str:
    """A narrow VGG teacher trained for one pass on ``tiny_root`` (for the distillation tests)."""
    from training import train_teacher

    out = tmp_path_factory.mktemp("teacher")
    path = str(out / "teacher.pt")
    train_teacher.main(["--root", tiny_root, *TINY, "--epochs", "1", "--model_config", "width=0.125",
                        "--out_dir", str(out / "run"), "--out", path])
    return path


@pytest.fixture
def mixed_folder(tmp_path) -> dict:
    """A folder of real image files of several formats plus broken ones.
    Returns {"dir": path, "good": [paths], "bad": [paths]}."""
    d = tmp_path / "mixed"
    d.mkdir()
    good = []
    for name in sorted(os.listdir(SAMPLES))[:4]:
        shutil.copy(os.path.join(SAMPLES, name), d / name)
        good.append(str(d / name))
    files = {
        "photo.png": image_bytes("PNG", (300, 200)),
        "photo.webp": image_bytes("WEBP", (200, 300)),
        "anim.gif": image_bytes("GIF", (120, 90), mode="P"),
        "gray.jpg": image_bytes("JPEG", (400, 256), mode="L"),
        "no_extension": image_bytes("JPEG", (256, 256)),
    }
    for name, data in files.items():
        (d / name).write_bytes(data)
        good.append(str(d / name))
    bad = {
        "empty.jpg": b"",
        "notes.jpg": b"this is a text file, not an image\n",
        "page.jpg": b"<!DOCTYPE html><html><body>404 Not Found</body></html>",
        "truncated.jpg": image_bytes("JPEG", (300, 300))[:200],
    }
    for name, data in bad.items():
        (d / name).write_bytes(data)
    return {"dir": str(d), "good": good, "bad": [str(d / n) for n in bad]}


@pytest.fixture
def faulty_fs():
    """The fault-injecting filesystem of tests/faulty_fs.py, registered as ``faulty://``
    and empty; hung reads are let go at the end."""
    import fsspec

    fsspec.register_implementation(FAULTY_PROTOCOL, FaultyFileSystem, clobber=True)
    FaultyFileSystem.reset()
    yield FaultyFileSystem
    FaultyFileSystem.reset()
