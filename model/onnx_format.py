"""The student as an ONNX file, read without torch.

``python -m model.export --format onnx`` writes a graph with one input and two outputs:

- ``images``: uint8 (N, H, W, 3), the stacked RGB arrays of ``decode_image``; N, H and W
  are dynamic; the graph normalises them as ``model.preprocessing.to_tensor`` does;
- ``probs``: float32 (N, 34) region probabilities (sigmoid of the logits), region order
  as in ``model.regions``; ``logits``: float32 (N, 34).

The checkpoint's ``meta`` (the decision threshold, ...) and config travel in the file's
``metadata_props`` as JSON, so the pipeline reads the threshold from the ONNX file alone.
This module imports only numpy (and onnxruntime when a session is made).
"""

from __future__ import annotations

import json
from typing import Mapping, Sequence

import numpy as np

INPUT_NAME = "images"
PROBS_NAME = "probs"
LOGITS_NAME = "logits"
ONNX_FORMAT = "textfilter-onnx/2"  # /2: uint8 NHWC input, normalisation in the graph

# metadata_props keys
KEY_FORMAT = "textfilter.format"
KEY_MODEL = "textfilter.model"
KEY_CONFIG = "textfilter.config"
KEY_META = "textfilter.meta"


def stacked(images: Sequence[np.ndarray]) -> np.ndarray:
    """Same-shape uint8 (H, W, 3) images -> the contiguous (N, H, W, 3) input of an export."""
    return np.ascontiguousarray(np.stack(list(images)))


def onnx_probs(session, images: Sequence[np.ndarray]) -> np.ndarray:
    """Region probabilities (N, 34) of same-shape uint8 images from an export's session
    (the graph normalises them itself)."""
    return session.run([PROBS_NAME], {INPUT_NAME: stacked(images)})[0]


def metadata_props(model_name: str, config: Mapping, meta: Mapping) -> dict[str, str]:
    """The ``metadata_props`` an exported file carries (string keys and values)."""
    return {
        KEY_FORMAT: ONNX_FORMAT,
        KEY_MODEL: model_name,
        KEY_CONFIG: json.dumps(dict(config), sort_keys=True),
        KEY_META: json.dumps(dict(meta), sort_keys=True),
    }


def is_onnx(data: bytes) -> bool:
    """Whether ``data`` looks like an ONNX file rather than a torch checkpoint (a zip)."""
    return not data.startswith(b"PK\x03\x04")


def make_session(data: bytes, num_threads: int = 1):
    """An onnxruntime CPU session on the model bytes; ``num_threads`` intra-op threads
    (0: onnxruntime's default), one inter-op thread, sequential execution."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(0, int(num_threads or 0))
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])


def check_format(session) -> None:
    """Refuse an ONNX file that is not a current textfilter export (clear error instead of
    an onnxruntime type error at the first batch)."""
    found = (session.get_modelmeta().custom_metadata_map or {}).get(KEY_FORMAT)
    if found != ONNX_FORMAT:
        raise ValueError(
            f"ONNX model format {found!r} is not {ONNX_FORMAT!r}: re-export it with `python -m model.export --format onnx`"
        )


def session_meta(session) -> dict:
    """The checkpoint meta stored in an ONNX session's model (``{}`` if none)."""
    props = session.get_modelmeta().custom_metadata_map or {}
    try:
        meta = json.loads(props.get(KEY_META) or "{}")
    except ValueError as e:
        raise ValueError(f"ONNX metadata {KEY_META!r} is not JSON: {e}") from e
    return meta if isinstance(meta, dict) else {}


def read_onnx_meta(data: bytes) -> dict:
    """The checkpoint meta (threshold, ...) stored in the bytes of an exported ONNX file."""
    try:
        session = make_session(data, 1)
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise ValueError(f"not a readable ONNX model: {type(e).__name__}: {str(e).splitlines()[0][:300]}") from e
    check_format(session)
    return session_meta(session)
