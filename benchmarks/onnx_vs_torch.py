"""Speed and memory of the two model formats, as the pipeline's handlers run them.

    python -m benchmarks.onnx_vs_torch --checkpoint model/weights/student.pt [--onnx student.onnx]

Speed: ms per image of ``handler.predict`` (normalisation + forward + sigmoid), one thread,
256x352 images, batch 1 and 8, median of repeated runs, both formats in one process.
Memory: resident set size of a fresh process that imports what a worker imports for that
format (the transforms and the handler), loads the model and scores one batch.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

RSS_CODE = """
import json, sys, psutil
def rss(): return psutil.Process().memory_info().rss / 2**20
base = rss()
import numpy as np
import pipeline.transforms
from pipeline.handler import model_handler
imports = rss()
handler = model_handler(sys.argv[1], sys.argv[2], num_threads=1)
model = handler.load_model()
images = [np.random.default_rng(i).integers(0, 256, (256, 352, 3), dtype=np.uint8) for i in range(8)]
handler.run_inference(images, model)
print(json.dumps({"format": sys.argv[1], "torch_imported": "torch" in sys.modules, "rss_start_mib": round(base),
                  "rss_after_imports_mib": round(imports), "rss_after_inference_mib": round(rss())}))
"""


def time_predict(handler, model, batch: int, repeats: int) -> float:
    images = [np.random.default_rng(i).integers(0, 256, (256, 352, 3), dtype=np.uint8) for i in range(batch)]
    for _ in range(3):
        handler.predict(model, images)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        handler.predict(model, images)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times) / batch


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", default=os.path.join(REPO, "model", "weights", "student.pt"))
    parser.add_argument("--onnx", default=None, help="Exported file (default: exported now to a temporary folder).")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)

    import torch

    from model.export import export
    from pipeline.handler import model_handler

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = args.onnx or export(args.checkpoint, "onnx", os.path.join(tmp, "student.onnx"))[0]
        paths = {"torch": args.checkpoint, "onnx": onnx_path}
        speed = {}
        for fmt, path in paths.items():
            handler = model_handler(fmt, path, num_threads=1)
            model = handler.load_model()
            for batch in (1, 8):
                speed[f"{fmt} batch {batch}"] = round(time_predict(handler, model, batch, args.repeats), 2)
        print(json.dumps({"ms_per_image_1_thread_256x352": speed}, indent=2))
        env = dict(os.environ, PYTHONPATH=REPO)
        for fmt, path in paths.items():
            proc = subprocess.run([sys.executable, "-c", RSS_CODE, fmt, path], cwd=REPO, env=env, capture_output=True,
                                  text=True, check=True)
            print(proc.stdout.strip().splitlines()[-1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
