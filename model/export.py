"""Export the student for serving without its Python code.

    python -m model.export --format onnx                  # model/weights/student.pt -> student.onnx
    python -m model.export --format torchscript --checkpoint runs/x/student.pt --out /tmp/student.ts.pt

ONNX: one input ``images``, the uint8 (N, H, W, 3) RGB arrays ``decode_image`` returns,
stacked, with dynamic N, H and W; the graph normalises them itself (the operations of
``model.preprocessing.to_tensor``, done by onnxruntime instead of numpy); outputs ``probs``
(N, 34) region probabilities and ``logits`` (N, 34). The checkpoint's meta (decision threshold, ...) and config are stored
as ONNX ``metadata_props`` (``model.onnx_format``). The pipeline runs it with
``--model_format onnx --model_path student.onnx`` on onnxruntime, without torch.

TorchScript: ``torch.jit.trace`` of the same module (outputs ``(probs, logits)``), with
the meta in the archive's extra file ``meta.json``.

After writing, the export is checked against the PyTorch model on images of several
shapes (``--check``, on by default); a difference above ``--atol`` is an error.

Exporters: ``--exporter dynamo`` (torch.export based, the default; needs the ``onnx``
and ``onnxscript`` packages) or ``legacy`` (TorchScript-based, needs ``onnx``). Adaptive
pooling of a dynamic size has no ONNX equivalent, so while exporting the student's
pooling is done by slicing the bins (``model.heads.sliced_adaptive_pool``), which gives
the same values as PyTorch's kernel.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import warnings
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn

from model.onnx_format import (
    INPUT_NAME, LOGITS_NAME, PROBS_NAME, make_session, metadata_props, onnx_probs, session_meta, stacked,
)
from model.preprocessing import MEAN, STD, to_tensor
from model.registry import load_checkpoint, model_name_of

FORMATS = ("onnx", "torchscript")
EXPORTERS = ("dynamo", "legacy")
DEFAULT_OPSET = 18
TORCHSCRIPT_META = "meta.json"
WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")
DEFAULT_CHECKPOINT = os.path.join(WEIGHTS_DIR, "student.pt")


class ProbsAndLogits(nn.Module):
    """The student with normalisation and sigmoid inside: uint8 (N, H, W, 3) images ->
    (region probabilities, logits). The normalisation is ``to_tensor``'s, step for step."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(MEAN, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = images.permute(0, 3, 1, 2).float() / 255.0
        logits = self.model((x - self.mean) / self.std).logits
        return torch.sigmoid(logits), logits


def default_out(checkpoint: str, fmt: str) -> str:
    stem = os.path.splitext(checkpoint)[0]
    return stem + (".onnx" if fmt == "onnx" else ".torchscript.pt")


def example_input(batch: int = 2, height: int = 256, width: int = 352) -> torch.Tensor:
    rng = np.random.default_rng(0)
    return torch.from_numpy(stacked([rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(batch)]))


def _replace(tmp: str, out: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    os.replace(tmp, out)


def export_onnx(
    model: nn.Module, meta: dict, out: str, *, exporter: str = "dynamo", opset: int = DEFAULT_OPSET
) -> str:
    """Write ``model`` (a student in eval mode) as ONNX with dynamic batch, height and
    width, and its name, config and ``meta`` as metadata_props. Returns ``out``."""
    import onnx  # export-time only: the pipeline reads ONNX files with onnxruntime

    if exporter not in EXPORTERS:
        raise ValueError(f"unknown exporter {exporter!r}: use one of {', '.join(EXPORTERS)}")
    wrapped = ProbsAndLogits(model).eval()
    x = example_input()
    out_dir = os.path.dirname(os.path.abspath(out))
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export-") as tmpdir:
        raw = os.path.join(tmpdir, "raw.onnx")
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice, tracer notes
            if exporter == "dynamo":
                batch, height, width = (torch.export.Dim(n, min=1) for n in ("batch", "height", "width"))
                program = torch.onnx.export(
                    wrapped, (x,), dynamo=True, input_names=[INPUT_NAME], output_names=[PROBS_NAME, LOGITS_NAME],
                    dynamic_shapes=({0: batch, 1: height, 2: width},), opset_version=opset, external_data=False,
                    verbose=False,
                )
                program.save(raw, external_data=False)
            else:
                axes = {0: "batch", 1: "height", 2: "width"}
                torch.onnx.export(
                    wrapped, (x,), raw, dynamo=False, input_names=[INPUT_NAME],
                    output_names=[PROBS_NAME, LOGITS_NAME], opset_version=opset,
                    dynamic_axes={INPUT_NAME: axes, PROBS_NAME: {0: "batch"}, LOGITS_NAME: {0: "batch"}},
                )
        proto = onnx.load(raw)
        props = metadata_props(model_name_of(model), dataclasses.asdict(model.config), meta)
        del proto.metadata_props[:]
        onnx.helper.set_model_props(proto, props)
        proto.doc_string = "textfilter student: images (N,H,W,3) uint8 RGB -> probs (N,34), logits (N,34)"
        onnx.checker.check_model(proto)
        tmp = os.path.join(tmpdir, "final.onnx")
        onnx.save(proto, tmp)
        _replace(tmp, out)
    return out


def export_torchscript(model: nn.Module, meta: dict, out: str) -> str:
    """Write ``model`` traced to TorchScript, ``meta`` as the extra file meta.json."""
    wrapped = ProbsAndLogits(model).eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # torch.jit deprecation notices
        traced = torch.jit.trace(wrapped, example_input(), check_trace=False)
        out_dir = os.path.dirname(os.path.abspath(out))
        os.makedirs(out_dir, exist_ok=True)
        tmp = os.path.join(out_dir, f".export-{os.getpid()}-{os.path.basename(out)}")
        info = {"model": model_name_of(model), "config": dataclasses.asdict(model.config), "meta": meta}
        extra = {TORCHSCRIPT_META: json.dumps(info, sort_keys=True)}
        torch.jit.save(traced, tmp, _extra_files=extra)
    _replace(tmp, out)
    return out


def load_torchscript(path: str) -> tuple[torch.jit.ScriptModule, dict]:
    """(TorchScript module, checkpoint meta) of an exported file."""
    extra = {TORCHSCRIPT_META: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.jit.load(path, map_location="cpu", _extra_files=extra)
    info = json.loads(extra[TORCHSCRIPT_META] or "{}")
    return module.eval(), dict(info.get("meta") or {})


def exported_probs(path: str, fmt: str, images: Sequence[np.ndarray], num_threads: int = 1):
    """Region probabilities (N, 34) of an exported file on same-shape uint8 images."""
    if fmt == "onnx":
        with open(path, "rb") as f:
            session = make_session(f.read(), num_threads)
        return onnx_probs(session, images)
    module, _ = load_torchscript(path)
    with torch.inference_mode():
        return module(torch.from_numpy(stacked(images)))[0].numpy()


def torch_probs(model: nn.Module, images: Sequence[np.ndarray]) -> np.ndarray:
    with torch.inference_mode():
        return torch.sigmoid(model(to_tensor(list(images))).logits).numpy()


# Typical, panorama, tiny (1x1 maps after the sixth layer) and odd sizes (non-divisible bins).
CHECK_SHAPES = ((256, 352), (352, 256), (256, 256), (256, 2048), (32, 32), (32, 96), (37, 53))


def check_export(model: nn.Module, path: str, fmt: str, shapes=CHECK_SHAPES) -> float:
    """Largest |probability difference| between the export and PyTorch on random images
    of several shapes, in batches of 1 and 2."""
    rng = np.random.default_rng(1)
    worst = 0.0
    for i, (h, w) in enumerate(shapes):
        images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(1 + i % 2)]
        diff = np.abs(exported_probs(path, fmt, images) - torch_probs(model, images)).max()
        worst = max(worst, float(diff))
    return worst


def export(
    checkpoint: str = DEFAULT_CHECKPOINT,
    fmt: str = "onnx",
    out: Optional[str] = None,
    *,
    exporter: str = "dynamo",
    opset: int = DEFAULT_OPSET,
    check: bool = True,
    atol: float = 1e-4,
) -> tuple[str, Optional[float]]:
    """Export a student checkpoint; returns (written path, largest difference or None)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    model, meta = load_checkpoint(checkpoint, expect="student")
    model = model.eval()
    out = out or default_out(checkpoint, fmt)
    if fmt == "onnx":
        export_onnx(model, meta, out, exporter=exporter, opset=opset)
    else:
        export_torchscript(model, meta, out)
    diff = None
    if check:
        diff = check_export(model, out, fmt)
        if not diff <= atol:
            raise RuntimeError(f"exported {fmt} model differs from PyTorch by {diff:.2e} > {atol:.0e}: {out}")
    if fmt == "onnx":  # the meta must come back out of the file as it went in
        with open(out, "rb") as f:
            stored = session_meta(make_session(f.read()))
        if stored != json.loads(json.dumps(meta)):
            raise RuntimeError(f"ONNX metadata {stored} differs from the checkpoint meta {meta}")
    return out, diff


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--format", choices=FORMATS, default="onnx")
    parser.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT, help="Student checkpoint (default: %(default)s).")
    parser.add_argument(
        "--out", default=None, help="Output file (default: beside the checkpoint, .onnx / .torchscript.pt).")
    parser.add_argument("--exporter", choices=EXPORTERS, default="dynamo", help="ONNX exporter (default: %(default)s).")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset (default: %(default)s).")
    parser.add_argument("--no_check", action="store_true", help="Skip comparing the export with PyTorch.")
    parser.add_argument("--atol", type=float, default=1e-4, help="Largest probability difference accepted.")
    args = parser.parse_args(argv)
    if not os.path.exists(args.checkpoint):
        print(f"model.export: error: checkpoint {args.checkpoint} not found (pass --checkpoint)", file=sys.stderr)
        return 2
    try:
        out, diff = export(args.checkpoint, args.format, args.out, exporter=args.exporter, opset=args.opset,
                           check=not args.no_check, atol=args.atol)
    except (ValueError, RuntimeError, ImportError) as e:
        print(f"model.export: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    size_kb = os.path.getsize(out) / 1024
    checked = f"; max |prob diff| vs PyTorch {diff:.1e}" if diff is not None else ""
    print(f"model.export: wrote {out} ({args.format}, {size_kb:.0f} KiB){checked}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
