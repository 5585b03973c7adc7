"""The Beam pipeline of the filter.

Beam 2.77's ``apache_beam.ml.inference.base`` tries ``from apache_beam.ml.inference.model_manager
import ModelManager`` (in a try/except ImportError). That module starts with ``import torch``
(then needs scipy, which is not installed here, so the import fails anyway, but only after
torch is loaded): every RunInference worker would pay torch's ~470 MiB of resident memory even
when it runs the ONNX model. The filter never uses Beam's ModelManager (RunInference's
``use_model_manager``), so unless something imported torch or that module already, it is
marked absent before Beam's inference module is imported; Beam then behaves as it does without
scipy (``ModelManager = None``). The torch path imports torch itself, in ``load_model``.
"""

import sys as _sys

if "torch" not in _sys.modules:
    _sys.modules.setdefault("apache_beam.ml.inference.model_manager", None)  # type: ignore[arg-type]
