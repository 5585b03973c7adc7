"""Region-guided OCR against whole-image OCR on the dev split.

    python -m benchmarks.ocr_regions --limit 80

For each dev image the shipped student decides is text (what ``--ocr rapidocr`` would
read), runs RapidOCR on the whole image and on the student's text regions only
(``--ocr_mode regions``), one thread, and prints the time per image of both, the share of
the image area region mode reads, and the share of whole-image text that region mode also
finds (characters; detected lines whose centre lies in a region crop; lines region mode reads
identically). Region crops are scaled as whole-image OCR scales the image.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from benchmarks.common import SHARED_DATA, labelled_images, text_chars_kept
from model.preprocessing import decode_image
from pipeline.handler import StudentModelHandler
from pipeline.ocr import REGIONS, WHOLE, load_rgb, make_engine, ocr_image
from pipeline.records import TEXT, decided_record
from pipeline.region_boxes import MARGIN, region_boxes
from pipeline.run import stored_decision


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=SHARED_DATA)
    parser.add_argument("--split", default="dev")
    parser.add_argument("--limit", type=int, default=80, help="Images the student calls text to OCR.")
    parser.add_argument("--model_path", default=None, help="Student checkpoint (default: the shipped one).")
    parser.add_argument("--threshold", type=float, default=None, help="Default: the one stored with the weights.")
    parser.add_argument("--margin", type=float, default=MARGIN, help="Margin around the regions (image fraction).")
    args = parser.parse_args(argv)

    threshold, score_rule = stored_decision(args.model_path, threshold=args.threshold)
    handler = StudentModelHandler(args.model_path, num_threads=1)
    model = handler.load_model()
    engines = {mode: make_engine(1, mode) for mode in (WHOLE, REGIONS)}
    with open(labelled_images(args.data, args.split)[0]["file"], "rb") as f:
        warm = load_rgb(f.read())
    for mode, engine in engines.items():  # first runs allocate onnxruntime's buffers
        ocr_image(engine, warm, mode)

    rows, seen = [], 0
    for item in labelled_images(args.data, args.split):
        if item["label"] != 1 or len(rows) >= args.limit:
            continue
        seen += 1
        with open(item["file"], "rb") as f:
            data = f.read()
        record = decided_record(item["path"], handler.predict(model, [decode_image(data)])[0], threshold, score_rule)
        if record["label"] != TEXT:
            continue
        rgb = load_rgb(data)
        start = time.perf_counter()
        whole = ocr_image(engines[WHOLE], rgb, WHOLE)
        whole_s = time.perf_counter() - start
        start = time.perf_counter()
        regions = ocr_image(engines[REGIONS], rgb, REGIONS, record, threshold, args.margin)
        regions_s = time.perf_counter() - start
        h, w = rgb.shape[:2]
        boxes = region_boxes(record["regions_5x5"], record["regions_3x3"], threshold, w, h, args.margin) or [(0, 0, w, h)]
        centres = [np.asarray(b).mean(axis=0) for b in whole["boxes"]]
        inside = sum(any(x0 <= cx <= x1 and y0 <= cy <= y1 for x0, y0, x1, y1 in boxes) for cx, cy in centres)
        area = min(1.0, sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in boxes) / (w * h))
        kept, total = text_chars_kept(whole["text"], regions["text"])
        lines_kept = sum(t in regions["text"] for t in whole["text"])
        rows.append({"whole_s": whole_s, "regions_s": regions_s, "area": area, "crops": len(boxes),
                     "chars_kept": kept, "chars": total, "lines_kept": lines_kept, "lines": len(whole["text"]), "inside": inside})

    n = len(rows)
    whole_ms = 1000 * sum(r["whole_s"] for r in rows) / max(n, 1)
    regions_ms = 1000 * sum(r["regions_s"] for r in rows) / max(n, 1)
    chars = sum(r["chars"] for r in rows)
    lines = sum(r["lines"] for r in rows)
    result = {
        "images_ocr_read": n,
        "labelled_text_images_scored": seen,
        "threshold": threshold,
        "whole_ms_per_image": round(whole_ms, 1),
        "regions_ms_per_image": round(regions_ms, 1),
        "time_saved": round(1 - regions_ms / whole_ms, 3) if whole_ms else None,
        "regions_area_share_median": round(statistics.median(r["area"] for r in rows), 3) if rows else None,
        "regions_crops_mean": round(sum(r["crops"] for r in rows) / max(n, 1), 2),
        "whole_chars": chars,
        "chars_kept": round(sum(r["chars_kept"] for r in rows) / chars, 3) if chars else None,
        "whole_lines": lines,
        "whole_lines_inside_regions": round(sum(r["inside"] for r in rows) / lines, 3) if lines else None,
        "lines_kept_identical": round(sum(r["lines_kept"] for r in rows) / lines, 3) if lines else None,
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
