"""Command-line options of the filter, as a Beam ``PipelineOptions`` subclass."""

from __future__ import annotations

import json
import os

from apache_beam.options.pipeline_options import PipelineOptions

from model.regions import SCORE_RULES
from pipeline.handler import DEFAULT_BATCH_SIZE

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES_DIR = os.path.join(REPO_ROOT, "samples")


def _json_dict(text: str) -> dict:
    value = json.loads(text) if text else {}
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise ValueError('storage options must be a JSON object of objects, e.g. {"gs": {"token": "anon"}}')
    return value


class TextFilterOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser):
        io = parser.add_argument_group("inputs and outputs")
        io.add_argument(
            "--input", action="append", default=None,
            help="Image file, folder, glob or fsspec URL (gs://bucket/dir/*.jpg, https://...). "
                 "Repeatable. Default: the shipped samples/ folder.")
        io.add_argument(
            "--input_list", action="append", default=None,
            help="Text file (local or URL) with one image URI a line. Repeatable.")
        io.add_argument(
            "--input_format", choices=("auto", "glob", "list", "jsonl", "csv", "parquet", "tar"), default="auto",
            help="Format of --input / --input_list. auto: by extension (.jsonl/.json, .csv, .parquet: manifests "
                 "with a URL column; .tar: WebDataset shards, 'shard-{000..009}.tar' or a glob; else a glob / "
                 "folder / URL for --input and a list file for --input_list).")
        io.add_argument(
            "--url_field", default="url",
            help="Column of JSONL / CSV / Parquet manifests that holds the image URL (img2dataset: url).")
        io.add_argument(
            "--output", default="textfilter-out",
            help="Folder or fsspec URL for text*.jsonl, non_text*.jsonl, failed*.jsonl and summary.json.")
        io.add_argument(
            "--storage_options", type=_json_dict, default={},
            help='JSON: per-protocol fsspec options, e.g. \'{"gs": {"project": "p"}}\'.')
        io.add_argument(
            "--ocr_inbox", default=None,
            help="Also copy every text image into this folder or bucket (safe, collision-free names).")
        io.add_argument(
            "--state", default=None,
            help="Folder or fsspec URL that remembers what earlier runs decided (URI, fingerprint, label): "
                 "inputs whose fingerprint (size + mtime / etag / hash) is unchanged are skipped. Updated "
                 "only after the outputs are published.")
        io.add_argument(
            "--reprocess", action="store_true", default=False,
            help="With --state: ignore what it holds, decide every input again and start it afresh.")
        io.add_argument(
            "--records_per_shard", type=int, default=50_000,
            help="Manifest lines per output shard.")
        io.add_argument(
            "--report", action="store_true", default=False,
            help="After the run, write OUTPUT/report.html: counts, score histogram, throughput, failures "
                 "by reason and a gallery of borderline text and non-text images (self-contained HTML).")

        model = parser.add_argument_group("model and decision")
        model.add_argument(
            "--model_path", default=None,
            help="Student checkpoint (local or URL). Default: the weights shipped in model/weights/.")
        model.add_argument(
            "--threshold", type=float, default=None,
            help="Image score at or above which an image is text. Default: the threshold stored with the weights.")
        model.add_argument(
            "--score_rule", choices=tuple(SCORE_RULES), default=None,
            help="How the 34 region probabilities make the image score: max (the paper's logical OR) or "
                 "both_grids (geometric mean of the 5x5 and 3x3 grids' maxima). Default: the rule stored with "
                 "the weights (the one their threshold was chosen for), else max.")
        model.add_argument("--batch_size", type=int, default=DEFAULT_BATCH_SIZE,
                           help="Largest inference batch (small batches stay in the CPU cache).")
        model.add_argument(
            "--num_threads", type=int, default=1, help="torch / onnxruntime threads per worker process.")
        model.add_argument(
            "--model_format", choices=("auto", "torch", "onnx"), default="auto",
            help="torch: a student checkpoint (.pt), run by PyTorch. onnx: an export made by "
                 "`python -m model.export --format onnx`, run by onnxruntime without torch. "
                 "auto: onnx for a --model_path ending in .onnx, else torch; with no --model_path, "
                 "the shipped model/weights/student.onnx if present, else student.pt.")

        ocr = parser.add_argument_group("OCR")
        ocr.add_argument(
            "--ocr", choices=("none", "rapidocr"), default="none",
            help="rapidocr: read the text of text images with RapidOCR (PP-OCR ONNX models, offline) into "
                 "their records' 'ocr' field. none: leave OCR downstream (see --ocr_inbox).")
        ocr.add_argument(
            "--ocr_mode", choices=("whole", "regions"), default="whole",
            help="whole: OCR the whole image. regions: OCR only the regions the student marked as text "
                 "(merged into rectangles with a margin).")

        limits = parser.add_argument_group("limits and retries")
        limits.add_argument("--max_bytes", type=int, default=50 * 1024 * 1024, help="Largest input file read.")
        limits.add_argument("--max_pixels", type=int, default=100_000_000, help="Largest declared image size.")
        limits.add_argument("--read_retries", type=int, default=3, help="Retries of a transient read error.")
        limits.add_argument(
            "--read_timeout", type=float, default=60.0,
            help="Seconds one read attempt may take; a timed-out read is retried, then fails. 0: no limit.")
