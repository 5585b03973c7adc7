"""Named training recipes: the flag values that make a run, in one place.

A recipe maps option names of ``training.train_student`` (the fields of ``TrainConfig`` and
``DataConfig``, nested ones as ``augment.flip_p``) to values. ``--recipe NAME`` makes them the
defaults of a run; flags given on the command line still win, and ``training.crossval``
applies ``--set key=value`` changes on top, one ablation at a time. A checkpoint records the
recipe it was trained with (``meta["recipe"]``).

- ``reference``: the plain five-minute student of issue 17 (76.5k parameters, features at 1/8,
  fixed 256x341 input, flips only, balanced draws, AdamW + one-cycle, 10 passes of the train
  split in batches of 32 = ~1,010 steps). First row of every table in MODEL.md.
- ``reference_fast``: the same on ``model.student.FAST_LAYOUT`` (the reference's channels,
  downsampled earlier: ~2.4 ms per image on one thread instead of ~5-7 ms).
- ``reference_wide``: the same on ``model.student.WIDE_LAYOUT`` (48-72-72 channels in the last
  three convolutions: 104k parameters, ~1.7 ms).
- ``reference_wide_context``: ``reference_wide`` whose regions also see the image's mean features
  (``model.student.WIDE_CONTEXT_LAYOUT``, 108,785 parameters; session 24).
- ``reference_separable``: the same on ``model.student.SEPARABLE_LAYOUT`` (convolutions 2-6
  depthwise-separable, 16-32-96-160-192-192 channels: 106k parameters; session 25).
- ``reference_wide96``: the same on ``model.student.WIDE96_LAYOUT`` (64-96-96 channels in the last
  three convolutions, the sixth depthwise-separable: 98,257 parameters; session 32).
- ``captions_colour``: ``reference_wide`` plus synthetic captions on 15 % of the text draws
  (photographers' credits, date stamps, faint watermarks: ``training.synthtext.render_caption``)
  and colour jitter (p 0.8) / grayscale (p 0.1) on the model's input (session 20's
  ``+wide104+caption15+colour`` row).
- ``session6``: the data pipeline and optimiser of the students shipped until session 6 (strided
  layout, aspect kept, rotation / zoom / JPEG, text-free crops, synthetic text, AdamW + cosine,
  batches of 16); the shipped one ran it for 72 epochs, then 12 with pages.
"""

from __future__ import annotations

from model.student import (FAST_LAYOUT, REFERENCE_LAYOUT, SEPARABLE_LAYOUT, WIDE96_LAYOUT, WIDE_CONTEXT_LAYOUT,
                           WIDE_LAYOUT)


def _model_config(layout: dict) -> tuple[str, ...]:
    """A model layout as ``--model_config`` overrides (``key=value`` strings)."""
    def text(v):
        return ",".join(map(str, v)) if isinstance(v, tuple) else str(v).lower()
    return tuple(f"{k}={text(v)}" for k, v in layout.items())


RECIPES: dict[str, dict] = {
    "reference": {
        "model_config": _model_config(REFERENCE_LAYOUT),
        "losses": ("hard:1.0",),
        "optimizer": "adamw", "lr": 2e-3, "weight_decay": 1e-4, "schedule": "onecycle", "warmup_steps": 0,
        "batch_size": 32, "epochs": 10, "epoch_size": 3235,
        "fixed_long_edge": 341, "negative_share": 0.5, "crop_share": 0.0, "pattern_share": 0.0,
        "synth.enabled": False,
        "augment.flip_p": 0.5, "augment.rotate_p": 0.0, "augment.zoom_p": 0.0, "augment.jpeg_p": 0.0,
    },
    "session6": {},  # the TrainConfig / DataConfig defaults
}
# The reference recipe on the layout that fits the product's 3 ms per image (model.student.FAST_LAYOUT).
RECIPES["reference_fast"] = {**RECIPES["reference"], "model_config": _model_config(FAST_LAYOUT)}
RECIPES["reference_wide"] = {**RECIPES["reference"], "model_config": _model_config(WIDE_LAYOUT)}
RECIPES["reference_wide_context"] = {**RECIPES["reference"], "model_config": _model_config(WIDE_CONTEXT_LAYOUT)}
RECIPES["reference_separable"] = {**RECIPES["reference"], "model_config": _model_config(SEPARABLE_LAYOUT)}
RECIPES["reference_wide96"] = {**RECIPES["reference"], "model_config": _model_config(WIDE96_LAYOUT)}
RECIPES["captions_colour"] = {**RECIPES["reference_wide"], "synth.enabled": True, "synth.share": 0.15,
                              "synth.caption_share": 1.0, "augment.colour_p": 0.8, "augment.gray_p": 0.1}


def recipe(name: str) -> dict:
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; known: {', '.join(sorted(RECIPES))}")
    return dict(RECIPES[name])


def parse_settings(specs) -> dict:
    """``("augment.rotate_p=0.5", "fixed_long_edge=0")`` -> ``{"augment.rotate_p": "0.5", ...}``
    (values stay text; ``apply_settings`` types them like the option they set)."""
    out = {}
    for spec in specs:
        key, sep, value = spec.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"setting {spec!r}: use key=value")
        out[key.strip()] = value.strip()
    return out
