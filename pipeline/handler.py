"""A RunInference model handler for the student.

Beam's stock ``PytorchModelHandlerTensor`` stacks a batch with ``torch.stack``, which
fails for images of different sizes. This handler takes keyed-or-not ``uint8`` arrays
(H, W, 3), groups a batch by shape, runs one forward pass per shape group, and returns
per-image region probabilities. The model is loaded once per worker process by
``load_model`` (never per element) and torch's thread count is set there.
"""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Any, Iterable, Optional, Sequence

import numpy as np
import torch
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from model.preprocessing import to_tensor
from model.registry import load_checkpoint
from pipeline.uris import filesystem


def read_model_bytes(model_path: str, storage_options=None) -> bytes:
    fs, path = filesystem(model_path, storage_options)
    with fs.open(path, "rb") as f:
        return f.read()


class StudentModelHandler(ModelHandler[np.ndarray, PredictionResult, torch.nn.Module]):
    def __init__(
        self,
        model_path: Optional[str] = None,
        *,
        num_threads: int = 1,
        storage_options=None,
        min_batch_size: int = 1,
        max_batch_size: int = 32,
    ):
        super().__init__(min_batch_size=min_batch_size, max_batch_size=max_batch_size)
        self.model_path = model_path  # None: the weights shipped in the package, found on the worker
        self.num_threads = num_threads
        self.storage_options = dict(storage_options or {})

    def load_model(self) -> torch.nn.Module:
        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        path = self.model_path or default_model_path()
        model, _ = load_checkpoint(read_model_bytes(path, self.storage_options), expect="student")
        return model.to(memory_format=torch.channels_last).eval()

    def run_inference(
        self,
        batch: Sequence[np.ndarray],
        model: torch.nn.Module,
        inference_args: Optional[dict[str, Any]] = None,
    ) -> Iterable[PredictionResult]:
        probs: list[Optional[np.ndarray]] = [None] * len(batch)
        for indices in group_by_shape(batch).values():
            with torch.inference_mode():
                logits = model(to_tensor([batch[i] for i in indices])).logits
            group_probs = torch.sigmoid(logits).numpy()
            for i, p in zip(indices, group_probs):
                probs[i] = p
        return [PredictionResult(example, p, self.model_path or "shipped") for example, p in zip(batch, probs)]

    def get_num_bytes(self, batch: Sequence[np.ndarray]) -> int:
        return sum(a.nbytes for a in batch)

    def get_metrics_namespace(self) -> str:
        return "textfilter_student"

    def share_model_across_processes(self) -> bool:
        return False


def group_by_shape(batch: Sequence[np.ndarray]) -> dict[tuple, list[int]]:
    """Indices of the batch grouped by array shape, in first-seen order."""
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, array in enumerate(batch):
        groups[array.shape].append(i)
    return groups


def default_model_path() -> str:
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "model", "weights", "student.pt")
