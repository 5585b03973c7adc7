"""Milliseconds per image of student ONNX exports on one thread, back to back in one run.

    python -m benchmarks.onnx_ms model/weights/student.onnx OTHER.onnx [--size 341 256]

Each file runs on onnxruntime with one thread on the same random uint8 image (the pipeline's
input: 256x341 by default); the figure is the best of five rounds, so compare files measured in
one run on a quiet machine. Checks the product's budget of 3 ms per 256x341 image.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from model.onnx_format import make_session, onnx_probs


def onnx_ms(path: str, size: tuple[int, int] = (341, 256), iters: int = 50, rounds: int = 5) -> float:
    """Best-of-``rounds`` mean milliseconds per single-image call of the export at ``path``."""
    with open(path, "rb") as f:
        session = make_session(f.read(), 1)
    image = np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    for _ in range(10):
        onnx_probs(session, [image])
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(iters):
            onnx_probs(session, [image])
        best = min(best, (time.perf_counter() - start) / iters * 1000)
    return best


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--size", nargs=2, type=int, default=(341, 256), metavar=("WIDTH", "HEIGHT"))
    parser.add_argument("--iters", type=int, default=50)
    args = parser.parse_args(argv)
    results = {p: onnx_ms(p, tuple(args.size), args.iters) for p in args.paths}
    for p, ms in results.items():
        print(f"{p}: {ms:.2f} ms per {args.size[0]}x{args.size[1]} image, ONNX, 1 thread")
    return results


if __name__ == "__main__":
    main()
