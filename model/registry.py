"""Model registry and checkpoints.

``build_model("student")`` builds a registered model from its config dataclass; a
checkpoint stores the model name, its config and its weights (plus free-form ``meta``
such as the decision threshold), so loading never guesses. Checkpoints are read with
``torch.load(..., weights_only=True)``: a file that would run code when unpickled is
refused.
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import os
from typing import Any, Callable

import torch
from torch import nn

CHECKPOINT_FORMAT = "textfilter-checkpoint/1"
MODEL_KEYS = ("format", "model", "config", "state_dict", "meta")  # a model checkpoint; other keys are training state
_BUILDERS: dict[str, tuple[type, Callable[[Any], nn.Module]]] = {}
_MODEL_MODULES = ("model.student", "model.teacher")


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded: unsafe, unknown model, wrong config or shapes."""


def register_model(name: str, config_cls: type):
    def decorator(builder):
        _BUILDERS[name] = (config_cls, builder)
        return builder

    return decorator


def _builders() -> dict[str, tuple[type, Callable[[Any], nn.Module]]]:
    for module in _MODEL_MODULES:
        importlib.import_module(module)
    return _BUILDERS


def model_names() -> list[str]:
    return sorted(_builders())


def config_from_dict(name: str, values: dict | None = None):
    """The config dataclass of model ``name`` with ``values`` applied (lists become
    tuples where the field is a tuple). Unknown keys raise ``CheckpointError``."""
    builders = _builders()
    if name not in builders:
        raise CheckpointError(f"unknown model {name!r}; known models: {', '.join(sorted(builders))}")
    config_cls = builders[name][0]
    values = dict(values or {})
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise CheckpointError(f"config of {name!r} has unknown fields {unknown}; known: {sorted(fields)}")
    for key, value in values.items():
        if isinstance(value, list):
            values[key] = tuple(value)
    return config_cls(**values)


def build_model(name: str, config=None, **overrides) -> nn.Module:
    """Build model ``name`` from a config dataclass, a dict, or keyword overrides."""
    if config is None or isinstance(config, dict):
        config = config_from_dict(name, {**(config or {}), **overrides})
    elif overrides:
        config = dataclasses.replace(config, **overrides)
    model = _builders()[name][1](config)
    model.model_name = name
    return model


def model_name_of(model: nn.Module) -> str:
    for name, (config_cls, _) in _builders().items():
        if isinstance(getattr(model, "config", None), config_cls):
            return name
    raise CheckpointError(f"{type(model).__name__} is not a registered model")


def save_checkpoint(path: str | os.PathLike, model: nn.Module, meta: dict | None = None, **extra) -> None:
    """Write ``model`` (weights on CPU), its name and config, and ``meta``. Written to a
    temporary file and renamed, so an interrupted save never leaves a broken file."""
    state = {
        "format": CHECKPOINT_FORMAT,
        "model": model_name_of(model),
        "config": dataclasses.asdict(model.config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": dict(meta or {}),
        **extra,
    }
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    torch.save(state, tmp)
    os.replace(tmp, path)


def weights_only_copy(source: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Copy checkpoint ``source`` to ``dest`` without its training state (optimisers, loop
    state, discriminator): a training ``last.pt`` becomes a small model checkpoint."""
    state = read_checkpoint(source)
    dest = os.fspath(dest)
    os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
    tmp = f"{dest}.tmp-{os.getpid()}"
    torch.save({k: state[k] for k in MODEL_KEYS if k in state}, tmp)
    os.replace(tmp, dest)


def read_checkpoint(source: str | os.PathLike | bytes) -> dict:
    """The raw checkpoint dict, read safely (``weights_only=True``)."""
    try:
        if isinstance(source, (bytes, bytearray)):
            state = torch.load(io.BytesIO(source), map_location="cpu", weights_only=True)
        else:
            state = torch.load(os.fspath(source), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # pickle.UnpicklingError for code-running pickles, zip errors, ...
        raise CheckpointError(
            f"refusing to load checkpoint {source if not isinstance(source, bytes) else '<bytes>'}: "
            f"it is not a safe weights-only textfilter checkpoint ({type(e).__name__}: {str(e).splitlines()[0]})"
        ) from e
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"not a textfilter checkpoint (expected format {CHECKPOINT_FORMAT!r})")
    return state


def load_checkpoint(source: str | os.PathLike | bytes, expect: str | None = None) -> tuple[nn.Module, dict]:
    """(model in eval mode, meta). ``expect`` checks the model name ("student")."""
    state = read_checkpoint(source)
    name = state.get("model")
    if expect is not None and name != expect:
        raise CheckpointError(f"checkpoint holds a {name!r} model, expected {expect!r}")
    model = build_model(name, config_from_dict(name, state.get("config")))
    try:
        model.load_state_dict(state["state_dict"], strict=True)
    except (RuntimeError, KeyError) as e:
        raise CheckpointError(f"checkpoint weights do not fit the {name!r} model its config describes: {e}") from e
    model.eval()
    return model, dict(state.get("meta") or {})
