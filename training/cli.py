"""Command-line options generated from the config dataclasses, so defaults live in one place.

``add_config_args(parser, DataConfig)`` adds ``--root``, ``--negative_share``, ...,
``--augment.flip_p``, ``--synth.enabled/--no-synth.enabled``; ``config_from_args``
builds the dataclass back from the parsed namespace. Option types follow the defaults:
bool -> on/off flag, int / float / str -> that type, tuple -> several values.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory()  # type: ignore[misc]


def add_config_args(parser: argparse.ArgumentParser, cls: type, prefix: str = "") -> None:
    """Add one option per field of dataclass ``cls`` (nested dataclasses get ``name.``)."""
    for f in dataclasses.fields(cls):
        default = _default(f)
        name = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(default):
            add_config_args(parser, type(default), f"{name}.")
        elif isinstance(default, bool):
            parser.add_argument(f"--{name}", dest=name, action=argparse.BooleanOptionalAction, default=default)
        elif isinstance(default, tuple):
            item_type = type(default[0]) if default else str
            parser.add_argument(f"--{name}", dest=name, nargs="+", type=item_type, default=default,
                                help=f"default: {' '.join(map(str, default))}")
        else:
            parser.add_argument(f"--{name}", dest=name, type=type(default), default=default,
                                help=f"default: {default}")


def config_from_args(cls: type, args: argparse.Namespace, prefix: str = ""):
    """The dataclass ``cls`` with the values parsed by ``add_config_args``."""
    values = {}
    for f in dataclasses.fields(cls):
        name = f"{prefix}{f.name}"
        default = _default(f)
        if dataclasses.is_dataclass(default):
            values[f.name] = config_from_args(type(default), args, f"{name}.")
        else:
            value = getattr(args, name)
            values[f.name] = tuple(value) if isinstance(default, tuple) else value
    return cls(**values)
