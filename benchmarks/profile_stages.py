"""Where the time goes: the filter pipeline on one in-process worker under cProfile,
broken down by stage (read, decode + resize, inference, routing + records, writing,
everything else = Beam's own per-element and per-bundle work).

    python -m benchmarks.profile_stages --images 300 [--model_format onnx]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import tempfile
import time

from benchmarks.common import make_large_jpegs
from pipeline.handler import default_model_path

# (stage, file suffix, function name) whose cumulative time is that stage's.
STAGES = [
    ("read (fsspec open + read)", "pipeline/io.py", "read_bytes"),
    ("decode + resize (draft JPEG)", "model/preprocessing.py", "decode_image"),
    ("inference (student, grouped by shape)", "pipeline/handler.py", "run_inference"),
    ("routing + records", "pipeline/transforms.py", "process"),
    ("manifest shards (JSON, write)", "pipeline/sinks.py", "process"),
]


def cumulative(stats: pstats.Stats, suffix: str, name: str) -> float:
    return sum(v[3] for (path, _, fn), v in stats.stats.items() if path.endswith(suffix) and fn == name)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--model_format", default="torch", choices=("torch", "onnx"))
    parser.add_argument("--model_path", default=None)
    args = parser.parse_args(argv)

    from pipeline.run import run

    work = tempfile.mkdtemp(prefix="textfilter-profile-")
    make_large_jpegs(os.path.join(work, "images"), args.images)
    model_path = args.model_path or default_model_path()
    if args.model_format == "onnx" and not model_path.endswith(".onnx"):
        from model.export import export

        model_path, _ = export(model_path, "onnx", os.path.join(work, "student.onnx"), exporter="legacy")
    argv_run = ["--runner=FnApiRunner", "--input", os.path.join(work, "images"), "--model_path", model_path,
                "--model_format", args.model_format]
    run([*argv_run, "--output", os.path.join(work, "warmup")])
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    run([*argv_run, "--output", os.path.join(work, "out")])
    profiler.disable()
    total = time.perf_counter() - start
    stats = pstats.Stats(profiler)
    # ReadAndDecodeFn.process includes read and decode: count only what is left of it.
    rows = {label: cumulative(stats, suffix, fn) for label, suffix, fn in STAGES}
    read_decode = rows["read (fsspec open + read)"] + rows["decode + resize (draft JPEG)"]
    rows["routing + records"] = max(0.0, rows["routing + records"] - read_decode)
    rows["Beam (graph, bundles, coders, batching)"] = total - sum(rows.values())
    print(f"\n{args.images} images of 1.5 MP, one in-process worker, {args.model_format} model, "
          f"{total:.2f} s under cProfile ({args.images / total:.1f} img/s; profiling adds overhead)")
    for label, seconds in rows.items():
        print(f"  {label:<42} {seconds * 1000 / args.images:7.2f} ms/img  {100 * seconds / total:5.1f} %")


if __name__ == "__main__":
    main()
