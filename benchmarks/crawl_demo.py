"""The filter in front of OCR on a crawl-like set, against OCR-everything.

    python -m benchmarks.crawl_demo [--n 100] [--text_share 0.15]

Builds a set where about ``text_share`` of the images contain text (dev split of
../shared/data; without it, the text samples in samples/ plus synthetic non-text
pictures), then runs the pipeline twice with ``--ocr rapidocr`` and the shipped weights:
filter + OCR (only images the student calls text are read) and OCR-everything (the same
pipeline with ``--threshold 0``, so every image is read). Prints the total time of each and
the share of text found: images in which OCR-everything found text that filter + OCR also
read, the characters kept, and the labelled text images in which each found any text.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time

import numpy as np
from PIL import Image

from benchmarks.common import SAMPLES, SHARED_DATA, labelled_images, text_chars_kept
from pipeline.run import run
from pipeline.report import manifest_records


def build_crawl(dest: str, n: int, text_share: float, data_dir: str = SHARED_DATA, seed: int = 0) -> dict[str, int]:
    """Copy a crawl-like mix into ``dest``; returns {path: 1 if it contains text else 0}."""
    rng = np.random.default_rng(seed)
    os.makedirs(dest, exist_ok=True)
    if os.path.exists(os.path.join(data_dir, "labels.jsonl")):
        records = labelled_images(data_dir, "dev")
        text = [r["file"] for r in records if r["label"] == 1]
        other = [r["file"] for r in records if r["label"] == 0]
    else:  # the shipped samples' scene-text photos, plus synthetic pictures without text
        text = [os.path.join(SAMPLES, f) for f in sorted(os.listdir(SAMPLES)) if f.startswith(("icdar", "scenetext"))]
        other = []
    n_text = max(1, round(n * text_share))
    n_other = n - n_text
    picked = [(p, 1) for p in rng.choice(text, min(n_text, len(text)), replace=False)]
    picked += [(p, 0) for p in rng.choice(other, min(n_other, len(other)), replace=False)] if other else []
    truth = {}
    for i, (src, label) in enumerate(picked):
        path = os.path.join(dest, f"crawl_{i:04d}{os.path.splitext(src)[1]}")
        shutil.copy(src, path)
        truth[path] = label
    for i in range(len(truth), n):  # synthetic non-text: smooth colour fields with noise
        y, x = np.mgrid[0:320, 0:480] / 320.0
        c = rng.random((3, 3))
        arr = np.stack([np.sin(x * 3 * c[k, 0] + y * 2 * c[k, 1] + c[k, 2] * 6) for k in range(3)], -1)
        arr = ((arr + 1) * 120 + rng.normal(0, 6, arr.shape)).clip(0, 255).astype(np.uint8)
        path = os.path.join(dest, f"crawl_{i:04d}.jpg")
        Image.fromarray(arr).save(path, "JPEG", quality=85)
        truth[path] = 0
    return truth


def timed_run(crawl: str, out: str, *extra: str) -> float:
    start = time.perf_counter()
    run(["--runner=FnApiRunner", "--input", crawl, "--output", out, "--ocr", "rapidocr", *extra],
        save_main_session=False)
    return time.perf_counter() - start


def ocr_texts(out: str) -> dict[str, list[str]]:
    return {r["uri"]: r["ocr"]["text"] for r in manifest_records(out, "text")}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100, help="Images in the set.")
    parser.add_argument("--text_share", type=float, default=0.15)
    parser.add_argument("--data", default=SHARED_DATA)
    parser.add_argument("--ocr_mode", choices=("whole", "regions"), default="whole",
                        help="OCR mode of the filter + OCR run (OCR-everything reads whole images).")
    parser.add_argument("--threshold", default=None, help="Decision threshold of the filter run (default: stored).")
    parser.add_argument("--model_path", default=None, help="Student checkpoint (default: the shipped weights).")
    parser.add_argument("--workdir", default=None, help="Keep the set and outputs here (default: a temp folder).")
    args = parser.parse_args(argv)

    work = args.workdir or tempfile.mkdtemp(prefix="crawl_demo_")
    crawl = os.path.join(work, "crawl")
    truth = build_crawl(crawl, args.n, args.text_share, args.data)
    model = ["--model_path", args.model_path] if args.model_path else []
    threshold = ["--threshold", args.threshold] if args.threshold is not None else []
    filtered_s = timed_run(crawl, os.path.join(work, "filter_ocr"), "--ocr_mode", args.ocr_mode, *model, *threshold)
    everything_s = timed_run(crawl, os.path.join(work, "ocr_everything"), "--threshold", "0", *model)

    filtered, everything = ocr_texts(os.path.join(work, "filter_ocr")), ocr_texts(os.path.join(work, "ocr_everything"))
    with_text = [u for u, t in everything.items() if t]
    kept = [text_chars_kept(everything[u], filtered.get(u, [])) for u in everything]
    labelled = [u for u, label in truth.items() if label]
    result = {
        "images": len(truth),
        "labelled_text_images": len(labelled),
        "ocr_read_filter": len(filtered),
        "ocr_read_everything": len(everything),
        "seconds_filter_plus_ocr": round(filtered_s, 1),
        "seconds_ocr_everything": round(everything_s, 1),
        "speedup": round(everything_s / filtered_s, 2),
        "images_with_text_found_by_ocr_everything": len(with_text),
        "of_those_also_found_by_filter_plus_ocr": round(
            sum(bool(filtered.get(u)) for u in with_text) / len(with_text), 3) if with_text else None,
        "chars_kept_by_filter_plus_ocr": round(
            sum(k for k, _ in kept) / max(1, sum(t for _, t in kept)), 3),
        "labelled_text_images_with_text_found": {
            "filter_plus_ocr": round(sum(bool(filtered.get(u)) for u in labelled) / max(1, len(labelled)), 3),
            "ocr_everything": round(sum(bool(everything.get(u)) for u in labelled) / max(1, len(labelled)), 3),
        },
        "non_text_images_with_text_found_by_ocr_everything": sum(
            bool(everything.get(u)) for u, label in truth.items() if not label),
        "workdir": work,
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
