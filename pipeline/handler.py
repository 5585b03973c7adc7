"""A RunInference model handler for the student.

Beam's stock ``PytorchModelHandlerTensor`` stacks a batch with ``torch.stack``, which
fails for images of different sizes. This handler takes keyed-or-not ``uint8`` arrays
(H, W, 3), groups a batch by shape, runs one forward pass per shape group, and returns
per-image region probabilities. The model is loaded once per worker process by
``load_model`` (never per element) and torch's thread count is set there.

``StudentOnnxModelHandler`` does the same with an ONNX export of the student
(``python -m model.export``) on onnxruntime. This module imports torch only inside
``StudentModelHandler.load_model``/``predict``: the ONNX path never imports it itself.
"""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Any, Iterable, Optional, Sequence

import numpy as np
from apache_beam.ml.inference import base as _inference_base
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from model.onnx_format import check_format, make_session, onnx_probs
from pipeline.extras import require
from pipeline.uris import filesystem

MODEL_FORMATS = ("torch", "onnx")

# Small batches stay in the CPU cache: the ONNX student costs ~1.6 ms/img at batch 8 and
# ~2.3 ms/img at batch 32 on one core (torch: 1.9 at batch 1, 2.6 at batch 16).
DEFAULT_BATCH_SIZE = 8

# Beam 2.77 imports ``resource`` in the same try-block as its optional ModelManager (which
# needs scipy and torch, see pipeline/__init__.py), so without them RunInference logs
# "Resource module is not available" for every batch and reports no memory metrics.
# ``resource`` exists on every POSIX platform: give it back.
if getattr(_inference_base, "resource", None) is None:
    try:
        import resource as _resource

        _inference_base.resource = _resource
    except ImportError:  # not POSIX
        pass


def read_model_bytes(model_path: str, storage_options=None) -> bytes:
    fs, path = filesystem(model_path, storage_options)
    with fs.open(path, "rb") as f:
        return f.read()


class ShapeGroupedHandler(ModelHandler[np.ndarray, PredictionResult, Any]):
    """What the torch and ONNX handlers share: a batch of uint8 (H, W, 3) arrays is
    grouped by shape, ``predict`` runs once per group and returns (n, 34) region
    probabilities, and each example gets its row back in input order."""

    model_format = "torch"  # which file default_model_path names

    def __init__(
        self,
        model_path: Optional[str] = None,
        *,
        num_threads: int = 1,
        storage_options=None,
        min_batch_size: int = 1,
        max_batch_size: int = DEFAULT_BATCH_SIZE,
    ):
        super().__init__(min_batch_size=min_batch_size, max_batch_size=max_batch_size)
        self.model_path = model_path  # None: the weights shipped in the package, found on the worker
        self.num_threads = num_threads
        self.storage_options = dict(storage_options or {})

    def model_bytes(self) -> bytes:
        return read_model_bytes(self.model_path or default_model_path(self.model_format), self.storage_options)

    def predict(self, model: Any, images: list[np.ndarray]) -> np.ndarray:
        """Region probabilities (len(images), 34) of same-shape uint8 images."""
        raise NotImplementedError

    def run_inference(
        self,
        batch: Sequence[np.ndarray],
        model: Any,
        inference_args: Optional[dict[str, Any]] = None,
    ) -> Iterable[PredictionResult]:
        probs: list[Optional[np.ndarray]] = [None] * len(batch)
        for indices in group_by_shape(batch).values():
            group_probs = self.predict(model, [batch[i] for i in indices])
            for i, p in zip(indices, group_probs):
                probs[i] = p
        return [PredictionResult(example, p, self.model_path or "shipped") for example, p in zip(batch, probs)]

    def get_num_bytes(self, batch: Sequence[np.ndarray]) -> int:
        return sum(a.nbytes for a in batch)

    def get_metrics_namespace(self) -> str:
        return "textfilter_student"

    def share_model_across_processes(self) -> bool:
        return False


class StudentModelHandler(ShapeGroupedHandler):
    """The student checkpoint (``model.registry``) run by PyTorch."""

    model_format = "torch"

    def load_model(self):
        require("torch", "--model_format torch")  # a worker installed without the torch extra
        import torch

        from model.registry import load_checkpoint

        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        model, _ = load_checkpoint(self.model_bytes(), expect="student")
        return model.to(memory_format=torch.channels_last).eval()

    def predict(self, model, images: list[np.ndarray]) -> np.ndarray:
        import torch

        from model.preprocessing import to_tensor

        with torch.inference_mode():
            logits = model(to_tensor(images)).logits
        return torch.sigmoid(logits).numpy()


class StudentOnnxModelHandler(ShapeGroupedHandler):
    """An ONNX export of the student (``python -m model.export``) run by onnxruntime,
    ``num_threads`` intra-op threads per session; no torch."""

    model_format = "onnx"

    def load_model(self):
        session = make_session(self.model_bytes(), self.num_threads)
        check_format(session)
        return session

    def predict(self, session, images: list[np.ndarray]) -> np.ndarray:
        return onnx_probs(session, images)  # uint8 in: the exported graph normalises


def model_handler(model_format: str = "torch", model_path: Optional[str] = None, **kwargs) -> ShapeGroupedHandler:
    """The handler for ``--model_format`` ("torch" or "onnx")."""
    if model_format == "torch":
        return StudentModelHandler(model_path, **kwargs)
    if model_format == "onnx":
        return StudentOnnxModelHandler(model_path, **kwargs)
    raise ValueError(f"unknown model format {model_format!r}: use one of {', '.join(MODEL_FORMATS)}")


def group_by_shape(batch: Sequence[np.ndarray]) -> dict[tuple, list[int]]:
    """Indices of the batch grouped by array shape, in first-seen order."""
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, array in enumerate(batch):
        groups[array.shape].append(i)
    return groups


def resolve_model_format(model_format: str, model_path: Optional[str] = None) -> str:
    """``--model_format auto``: onnx for a path ending in .onnx, torch for any other path;
    with no path, the shipped ONNX export if there is one (faster, and workers never import
    torch), else the shipped checkpoint."""
    if model_format != "auto":
        return model_format
    if model_path:
        return "onnx" if model_path.split("?", 1)[0].lower().endswith(".onnx") else "torch"
    return "onnx" if os.path.exists(default_model_path("onnx")) else "torch"


def default_model_path(model_format: str = "torch") -> str:
    name = "student.onnx" if model_format == "onnx" else "student.pt"
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "model", "weights", name)
