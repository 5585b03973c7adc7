"""What the JPEG draft tolerance costs in accuracy and saves in time.

    python -m benchmarks.draft_tolerance --limit 300

Dev images (stored with a short edge <= 320 px) are upscaled to a crawl-like size
(short edge 1000 px, JPEG quality 90), then decoded twice: with no tolerance (libjpeg
drafts at 1/2, 750x500) and with the shipped ``draft_tolerance`` (1/4, 375x250, upscaled
by 2.4 % to 384x256). Prints decode ms/img for both, how far the student's image scores
move, how many decisions flip at the shipped threshold, and image-level P / R at that
threshold for both. Upscaled images carry less fine detail than real 1.5 MP photos, so
read the flips as a sanity check, not a proof.
"""

from __future__ import annotations

import argparse
import dataclasses
import io

import numpy as np
from PIL import Image

from benchmarks.common import labelled_images, per_item_ms
from model.onnx_format import make_session, onnx_probs, read_onnx_meta
from model.preprocessing import DEFAULT_PREPROCESS, decode_image
from pipeline.handler import default_model_path
from training.metrics import prf_at


def upscaled_jpeg(path: str, short_edge: int) -> bytes:
    img = Image.open(path).convert("RGB")
    scale = short_edge / min(img.size)
    img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=300, help="dev images to use (every n-th, both classes)")
    parser.add_argument("--short_edge", type=int, default=1000)
    parser.add_argument("--model", default=default_model_path("onnx"))
    args = parser.parse_args(argv)

    records = labelled_images()
    records = records[:: max(1, len(records) // args.limit)][: args.limit]
    data = [upscaled_jpeg(r["file"], args.short_edge) for r in records]
    labels = np.array([r["label"] for r in records])
    with open(args.model, "rb") as f:
        model_bytes = f.read()
    session = make_session(model_bytes, 1)
    threshold = float(read_onnx_meta(model_bytes).get("threshold", 0.5))

    figures = {"images": len(data), "threshold": threshold}
    scores = {}
    for name, cfg in (("no_tolerance", dataclasses.replace(DEFAULT_PREPROCESS, draft_tolerance=0.0)),
                      ("shipped", DEFAULT_PREPROCESS)):
        figures[f"decode_ms_{name}"] = round(per_item_ms(lambda b: decode_image(b, cfg), data, 3), 2)
        scores[name] = np.array([onnx_probs(session, [decode_image(b, cfg)])[0].max() for b in data])
        at = prf_at(scores[name], labels, threshold)
        figures[f"precision_{name}"], figures[f"recall_{name}"] = round(at["precision"], 4), round(at["recall"], 4)
    delta = np.abs(scores["shipped"] - scores["no_tolerance"])
    figures["mean_abs_score_change"] = round(float(delta.mean()), 4)
    figures["max_abs_score_change"] = round(float(delta.max()), 4)
    figures["decisions_flipped"] = int(((scores["shipped"] >= threshold) != (scores["no_tolerance"] >= threshold)).sum())
    for key, value in figures.items():
        print(f"{key:24s} {value}")
    return figures


if __name__ == "__main__":
    main()
