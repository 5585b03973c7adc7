"""The OCR stage (``--ocr rapidocr``): text images are read by RapidOCR (PP-OCR ONNX models,
run offline by onnxruntime) and the text goes into their records::

    "ocr": {"text": [...], "boxes": [[[x, y] x4], ...], "scores": [...], "mode": "whole"|"regions"}

``--ocr_mode regions`` reads only the regions the student marked as text (see
``pipeline.region_boxes``), box coordinates mapped back to the whole image. An OCR
failure makes the input a failed record (stage "ocr"), so it is in exactly one output.
"""

from __future__ import annotations

import logging
from typing import Optional

import apache_beam as beam
import numpy as np
from PIL import Image, ImageOps

from model.preprocessing import DEFAULT_PREPROCESS, PreprocessConfig, open_image, to_rgb
from pipeline.extras import require
from pipeline.io import ReadConfig, read_bytes
from pipeline.record_steps import RecordStepFn
from pipeline.records import FAILED, STAGE_OCR
from pipeline.region_boxes import MARGIN, region_boxes

OCR_ENGINES = ("none", "rapidocr")
OCR_MODES = ("whole", "regions")
WHOLE, REGIONS = OCR_MODES


# RapidOCR's text detector scales an image so that its short side is at least this many
# pixels (Det.limit_type "min"). A small crop would be scaled up far more than the whole
# image (a 60-pixel strip to 736): region mode scales crops by the whole image's factor
# itself and runs a detector that only caps the size (limit_type "max").
DET_MIN_SIDE = 736
DET_MAX_SIDE = 4000


def make_engine(num_threads: int = 1, mode: str = WHOLE, det_min_side: int = DET_MIN_SIDE):
    """One RapidOCR engine for ``mode`` (loads three ONNX models: about a second), quiet
    below errors; whole-image detection enlarges images to a short side of ``det_min_side``."""
    require("ocr", "--ocr rapidocr")  # a worker installed without the ocr extra
    logging.getLogger("RapidOCR").setLevel(logging.ERROR)
    from rapidocr import RapidOCR

    logging.getLogger("RapidOCR").setLevel(logging.ERROR)
    params = {"Global.log_level": "error", "Det.limit_side_len": det_min_side, "Det.limit_type": "min"}
    if mode == REGIONS:
        params.update({"Det.limit_side_len": DET_MAX_SIDE, "Det.limit_type": "max"})
    if num_threads:
        params["EngineConfig.onnxruntime.intra_op_num_threads"] = num_threads
        params["EngineConfig.onnxruntime.inter_op_num_threads"] = 1
    return RapidOCR(params=params)


def load_rgb(data: bytes, preprocess: PreprocessConfig = DEFAULT_PREPROCESS) -> np.ndarray:
    """Upright full-size RGB array of an image file (size limits as in decoding)."""
    img = open_image(data, preprocess)
    try:
        return np.asarray(to_rgb(ImageOps.exif_transpose(img)))
    finally:
        img.close()


def run_ocr(engine, rgb: np.ndarray, offset=(0, 0), scale: float = 1.0) -> tuple[list, list, list]:
    """(texts, boxes, scores) of one RGB array, first resized by ``scale``; boxes are 4
    (x, y) points in the unscaled array's pixels, shifted by ``offset``."""
    if scale != 1.0:
        h, w = rgb.shape[:2]
        rgb = np.asarray(Image.fromarray(rgb).resize((max(1, round(w * scale)), max(1, round(h * scale))),
                                                     Image.Resampling.BILINEAR))
    # RapidOCR takes arrays as BGR; detection, angle classification and recognition, always.
    out = engine(np.ascontiguousarray(rgb[:, :, ::-1]), use_det=True, use_cls=True, use_rec=True)
    if out.txts is None or out.boxes is None:
        return [], [], []
    boxes = (np.asarray(out.boxes, dtype=np.float64) / scale + np.asarray(offset, dtype=np.float64)).round(1)
    return list(out.txts), boxes.tolist(), [round(float(s), 4) for s in out.scores]


def ocr_image(engine, rgb: np.ndarray, mode: str = WHOLE, record: Optional[dict] = None,
              threshold: float = 0.5, margin: float = MARGIN) -> dict:
    """The ``ocr`` field of one image: the whole image, or each region-guided crop (the
    whole image where the record has no text cell at ``threshold``). ``engine`` is
    ``make_engine(mode=mode)``: region mode scales the crops as whole-image OCR scales
    the image (see ``DET_MIN_SIDE``)."""
    height, width = rgb.shape[:2]
    crops, scale = [(0, 0, width, height)], 1.0
    if mode == REGIONS:
        scale = max(1.0, DET_MIN_SIDE / min(height, width))
        if record is not None:
            crops = region_boxes(
                record["regions_5x5"], record["regions_3x3"], threshold, width, height, margin
            ) or crops
    texts, boxes, scores = [], [], []
    for x0, y0, x1, y1 in crops:
        t, b, s = run_ocr(engine, rgb[y0:y1, x0:x1], (x0, y0), scale)
        texts += t
        boxes += b
        scores += s
    return {"text": texts, "boxes": boxes, "scores": scores, "mode": mode}


class OcrFn(RecordStepFn):
    """Text record -> the record with ``ocr`` added, or a failed record (stage "ocr")."""

    stage, done_metric, failed_metric = STAGE_OCR, "ocr_images", "failed_ocr"

    def __init__(self, mode: str = WHOLE, read_config: ReadConfig = ReadConfig(),
                 preprocess: PreprocessConfig = DEFAULT_PREPROCESS, num_threads: int = 1):
        super().__init__()
        if mode not in OCR_MODES:
            raise ValueError(f"unknown --ocr_mode {mode!r}: use one of {', '.join(OCR_MODES)}")
        self.mode = mode
        self.read_config = read_config
        self.preprocess = preprocess
        self.num_threads = num_threads
        self.engine = None

    def setup(self):
        super().setup()
        self.engine = make_engine(self.num_threads, self.mode)  # once per worker, never per element

    def step(self, record: dict) -> dict:
        rgb = load_rgb(read_bytes(record["uri"], self.read_config), self.preprocess)
        return {"ocr": ocr_image(self.engine, rgb, self.mode, record, record.get("threshold", 0.5))}


class Ocr(beam.PTransform):
    """Text records -> (text records with ``ocr``, failed records)."""

    def __init__(self, mode: str = WHOLE, read_config: ReadConfig = ReadConfig(),
                 preprocess: PreprocessConfig = DEFAULT_PREPROCESS, num_threads: int = 1):
        super().__init__()
        self.fn = OcrFn(mode, read_config, preprocess, num_threads)

    def expand(self, records):
        out = records | "OcrText" >> beam.ParDo(self.fn).with_outputs(FAILED, main="read")
        return out.read, out[FAILED]
