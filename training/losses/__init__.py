"""Training losses: small ``nn.Module``s, computed outside the models' ``forward``.

Every loss is called as ``loss(student, batch, teacher=None)``: ``student`` and ``teacher``
are ``model.heads.RegionOutput``s (region logits and mapped region features), ``batch`` a
``training.data.Batch`` (region labels). A loss that needs the teacher's outputs sets
``needs_teacher = True``, so the training loop runs the teacher only when some loss uses it.
A loss that learns from every image without its labels (the teacher's soft labels, features)
sets ``label_free = True``: only such terms learn from unlabelled images (image label -1,
every region ``IGNORE``), which the label losses leave out.

``LOSSES`` maps a name to its class; ``register_loss`` adds one, and ``build_objective``
composes weighted terms from the config (``"hard:1.0"``, ``"kd:1.0"``, ...).
"""

from __future__ import annotations

import inspect
from typing import Sequence

import torch
from torch import nn

LOSSES: dict[str, type[nn.Module]] = {}


def register_loss(name: str):
    def decorator(cls: type[nn.Module]) -> type[nn.Module]:
        LOSSES[name] = cls
        cls.loss_name = name
        return cls

    return decorator


def parse_term(spec: str) -> tuple[str, float, dict[str, str]]:
    """``"name:weight"`` (weight defaults to 1), optionally followed by the loss's own options,
    ``"name:weight:key=value;key=value"`` (e.g. ``"image:0.5:score_rule=max"``) -> (name, weight,
    options). Option values stay text here; ``build_objective`` types them."""
    if "," in spec:
        raise ValueError(f"loss term {spec!r}: one term per value (--losses hard:1.0 kd:1.0)")
    name, _, rest = spec.partition(":")
    weight, _, option_text = rest.partition(":")
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; known: {', '.join(sorted(LOSSES))}")
    options = {}
    for item in filter(None, option_text.split(";")):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"loss term {spec!r}: options are key=value, separated by ';'")
        options[key] = value
    try:
        return name, float(weight) if weight else 1.0, options
    except ValueError:
        raise ValueError(f"loss term {spec!r}: the weight {weight!r} is not a number") from None


def typed_options(cls: type[nn.Module], options: dict[str, str], spec: str) -> dict:
    """A term's text options as the types of the loss's constructor defaults (a default of
    ``None`` takes a number), so ``kd:1.0:temperature=2`` gives a float, not the text "2"."""
    params = inspect.signature(cls.__init__).parameters
    typed = {}
    for key, value in options.items():
        if key not in params or key == "self":
            known = ", ".join(k for k in params if k != "self") or "none"
            raise ValueError(f"loss term {spec!r}: unexpected keyword {key!r}; {cls.loss_name} takes: {known}")
        default = params[key].default
        try:
            if isinstance(default, bool):
                typed[key] = {"true": True, "false": False}[value.lower()]
            elif isinstance(default, (int, float)) or default is None:
                typed[key] = (type(default) if default is not None else float)(value)
            else:
                typed[key] = value
        except (KeyError, ValueError):
            raise ValueError(f"loss term {spec!r}: {key}={value!r} is not a valid "
                             f"{type(default).__name__ if default is not None else 'number'}") from None
    return typed


def any_term(specs: Sequence[str], flag: str) -> bool:
    """Whether some loss of the ``"name:weight"`` specs sets class attribute ``flag``
    (``needs_teacher``, ``label_free``), before any loss is built."""
    return any(getattr(LOSSES[parse_term(spec)[0]], flag, False) for spec in specs)


class Objective(nn.Module):
    """Weighted sum of loss terms; ``forward`` returns the total and each term's value."""

    def __init__(self, terms: Sequence[tuple[str, float, nn.Module]]):
        super().__init__()
        self.names = [name for name, _, _ in terms]
        self.weights = [weight for _, weight, _ in terms]
        self.terms = nn.ModuleList(loss for _, _, loss in terms)

    @property
    def needs_teacher(self) -> bool:
        return any(getattr(t, "needs_teacher", False) for t in self.terms)

    def forward(self, student, batch, teacher=None) -> tuple[torch.Tensor, dict[str, float]]:
        total, parts = 0.0, {}
        for name, weight, loss in zip(self.names, self.weights, self.terms):
            value = loss(student, batch, teacher)
            parts[name] = float(value.detach())
            total = total + weight * value
        return total, parts


def build_objective(specs: Sequence[str], **kwargs) -> Objective:
    """An ``Objective`` from ``"name:weight[:options]"`` specs; ``kwargs[name]`` (a dict) are
    constructor arguments of that loss (the spec's own options win)."""
    terms = []
    for spec in specs:
        name, weight, options = parse_term(spec)
        options = typed_options(LOSSES[name], options, spec)
        terms.append((name, weight, LOSSES[name](**{**kwargs.get(name, {}), **options})))
    return Objective(terms)


from training.losses import hard, image  # noqa: E402,F401  (register the label losses)
from training.losses import ab, began, kd  # noqa: E402,F401  (register the distillation losses)
