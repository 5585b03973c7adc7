"""Speed of the filter against OCR-everything and a naive pipeline, on the same images.

    python -m benchmarks.speed                # ~3 min on 2 cores
    python -m benchmarks.speed --large 200 --ocr 20   # quicker

Makes N crawl-like 1.5 MP JPEGs from the sample photos, then prints:
- student ms/img on 1 thread (256x352 input), single and batched;
- decode+resize ms/img: draft-mode decode (ours) and full decode + PIL resize (naive);
- end-to-end img/s of the pipeline on FnApiRunner, multi_processing with 2 workers, at scale
  (the difference of a small and a large run, so start-up cost cancels), and the peak RSS of
  any one worker process;
- the same for the naive Beam pipeline, and for OCR-everything (rapidocr's PP-OCR text
  detector on every image, 2 processes).
Figures are ratios measured in one run on one machine; rerun on a quiet machine to compare.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import tempfile
import time

import numpy as np
import torch

from benchmarks.common import (
    ChildRssSampler, decode_full, jpeg_bytes, make_large_jpegs, per_item_ms, scaled_rate,
)
from model.preprocessing import decode_image, to_tensor
from model.registry import load_checkpoint
from pipeline.handler import default_model_path

BEAM_ARGS = ["--runner=FnApiRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=2"]


def student_ms(model_path: str, batch: int = 1, iters: int = 200) -> float:
    torch.set_num_threads(1)
    model, _ = load_checkpoint(model_path, expect="student")
    model = model.to(memory_format=torch.channels_last)
    x = to_tensor([np.random.default_rng(0).integers(0, 255, (256, 352, 3), dtype=np.uint8)] * batch)
    with torch.inference_mode():
        for _ in range(10):
            model(x)
        start = time.perf_counter()
        for _ in range(max(1, iters // batch)):
            model(x)
    return (time.perf_counter() - start) / (max(1, iters // batch) * batch) * 1000


def run_filter(uris: list[str], out: str, model_path: str, model_format: str = "torch") -> float:
    from pipeline.run import run

    listing = out + ".txt"
    with open(listing, "w") as f:
        f.write("\n".join(uris))
    start = time.perf_counter()
    run([*BEAM_ARGS, "--input_list", listing, "--output", out, "--model_path", model_path,
         "--model_format", model_format])
    return time.perf_counter() - start


def filter_at_scale(uris: list[str], small: int, work: str, model_path: str, model_format: str) -> dict:
    """img/s at scale, start-up seconds and worker memory of the filter pipeline."""
    tag = f"{model_format}_"
    run_filter(uris[:10], os.path.join(work, tag + "warmup"), model_path, model_format)  # imports, file cache
    sampler = ChildRssSampler()
    with sampler.sampling():
        small_s = run_filter(uris[:small], os.path.join(work, tag + "small"), model_path, model_format)
        large_s = run_filter(uris, os.path.join(work, tag + "large"), model_path, model_format)
    rate = scaled_rate(small, small_s, len(uris), large_s)
    return {f"filter_{model_format}_img_s": round(rate, 1),
            f"filter_{model_format}_startup_s": round(small_s - small / rate, 2),
            f"filter_{model_format}_peak_rss_mb": round(sampler.peak_mb),
            f"filter_{model_format}_peak_uss_mb": round(sampler.peak_uss_mb)}


def run_naive(uris: list[str], out: str, model_path: str) -> float:
    from benchmarks.naive_pipeline import run_naive as naive

    start = time.perf_counter()
    naive(uris, os.path.join(out, "scores"), model_path, BEAM_ARGS)
    return time.perf_counter() - start


def _ocr_init():
    global _OCR  # one engine per benchmark worker process
    from rapidocr import RapidOCR

    _OCR = RapidOCR(params={"Global.log_level": "error"}) if _rapidocr_takes_params() else RapidOCR()


def _rapidocr_takes_params() -> bool:
    import inspect

    from rapidocr import RapidOCR

    return "params" in inspect.signature(RapidOCR.__init__).parameters


def _ocr_detect(path: str) -> int:
    result = _OCR(path, use_det=True, use_cls=False, use_rec=False)
    boxes = getattr(result, "boxes", None)
    return 0 if boxes is None else len(boxes)


def ocr_everything(uris: list[str], processes: int = 2) -> float:
    """Seconds for PP-OCR text detection on every image with ``processes`` processes
    (model loading excluded: each process is warmed up first)."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(processes, initializer=_ocr_init) as pool:
        pool.map(_ocr_detect, uris[:processes], chunksize=1)  # warm-up
        start = time.perf_counter()
        pool.map(_ocr_detect, uris, chunksize=1)
        return time.perf_counter() - start


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=50, help="images in the small end-to-end run")
    parser.add_argument("--large", type=int, default=450, help="images in the large end-to-end run")
    parser.add_argument("--ocr", type=int, default=40, help="images for the OCR-everything baseline")
    parser.add_argument("--model_path", default=default_model_path())
    parser.add_argument("--workdir", default=None, help="where to write images and outputs (default: temp)")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    work = args.workdir or tempfile.mkdtemp(prefix="textfilter-bench-")
    print(f"making {args.large} JPEGs of 1.5 MP in {work} ...", flush=True)
    uris = make_large_jpegs(os.path.join(work, "images"), args.large)
    data = jpeg_bytes(uris[:60])
    fig = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
           "images_mp": 1.5, "avg_jpeg_kb": round(sum(map(len, data)) / len(data) / 1024, 1)}

    print("micro-benchmarks (1 thread) ...", flush=True)
    fig["student_ms_1thread_b1"] = round(student_ms(args.model_path, 1), 2)
    fig["student_ms_1thread_b16"] = round(student_ms(args.model_path, 16), 2)
    torch.set_num_threads(1)
    fig["decode_resize_draft_ms"] = round(per_item_ms(decode_image, data, 2), 2)
    fig["decode_resize_full_ms"] = round(per_item_ms(decode_full, data, 1), 2)

    print("end-to-end: textfilter pipeline (torch model) ...", flush=True)
    fig.update(filter_at_scale(uris, args.small, work, args.model_path, "torch"))
    print("end-to-end: textfilter pipeline (ONNX model) ...", flush=True)
    from model.export import export

    onnx_path, _ = export(args.model_path, "onnx", os.path.join(work, "student.onnx"), exporter="legacy")
    fig.update(filter_at_scale(uris, args.small, work, onnx_path, "onnx"))

    print("end-to-end: naive pipeline ...", flush=True)
    run_naive(uris[:10], os.path.join(work, "naive_warmup"), args.model_path)
    small_s = run_naive(uris[: args.small], os.path.join(work, "naive_small"), args.model_path)
    large_s = run_naive(uris, os.path.join(work, "naive_large"), args.model_path)
    fig["naive_img_s"] = round(scaled_rate(args.small, small_s, args.large, large_s), 1)

    print(f"OCR everything: PP-OCR detection on {args.ocr} images, 2 processes ...", flush=True)
    ocr_s = ocr_everything(uris[: args.ocr])
    fig["ocr_everything_img_s"] = round(args.ocr / ocr_s, 2)

    best = max(fig["filter_torch_img_s"], fig["filter_onnx_img_s"])
    fig["speedup_vs_ocr"] = round(best / fig["ocr_everything_img_s"], 1)
    fig["speedup_vs_naive"] = round(best / fig["naive_img_s"], 2)
    print_table(fig)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(fig, f, indent=2)
    return fig


def print_table(fig: dict) -> None:
    rows = [
        ("student, 1 thread, 256x352, batch 1", f"{fig['student_ms_1thread_b1']} ms/img", "target <= 3"),
        ("student, 1 thread, 256x352, batch 16", f"{fig['student_ms_1thread_b16']} ms/img", ""),
        ("decode + resize, draft mode (ours)", f"{fig['decode_resize_draft_ms']} ms/img", ""),
        ("decode + resize, full decode (naive)", f"{fig['decode_resize_full_ms']} ms/img", ""),
        *[row for fmt in ("torch", "onnx") for row in (
            (f"textfilter pipeline, 2 workers, {fmt}", f"{fig[f'filter_{fmt}_img_s']} img/s", "target >= 100"),
            ("  start-up (workers, model load)", f"{fig[f'filter_{fmt}_startup_s']} s", ""),
            ("  peak RSS of one worker", f"{fig[f'filter_{fmt}_peak_rss_mb']} MB", "target <= 600"),
            ("  peak USS (not shared) of one worker", f"{fig[f'filter_{fmt}_peak_uss_mb']} MB", ""),
        )],
        ("naive Beam pipeline, 2 workers", f"{fig['naive_img_s']} img/s", ""),
        ("OCR everything (PP-OCR det), 2 procs", f"{fig['ocr_everything_img_s']} img/s", ""),
        ("speed-up vs OCR everything (faster format)", f"{fig['speedup_vs_ocr']}x", "target >= 10x"),
        ("speed-up vs naive pipeline (faster format)", f"{fig['speedup_vs_naive']}x", "target >= 3x"),
    ]
    print(f"\n{fig['machine']}; 1.5 MP JPEGs, {fig['avg_jpeg_kb']} KB on average")
    for name, value, target in rows:
        print(f"  {name:<40} {value:>14}   {target}")


if __name__ == "__main__":
    main()
