"""Models of the text/non-text filter: the student, the teacher and what they share.

``build_model``, ``load_checkpoint`` and ``save_checkpoint`` (from ``model.registry``)
are imported on first use, so that torch-free modules of this package
(``model.preprocessing``, ``model.regions``, ``model.onnx_format``) can be imported by a
worker that runs the ONNX model without loading torch.
"""

import importlib

_LAZY = {"build_model": "model.registry", "load_checkpoint": "model.registry", "save_checkpoint": "model.registry"}
__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
