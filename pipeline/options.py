"""Command-line options of the filter, as a Beam ``PipelineOptions`` subclass.

``FLAGS`` is the one definition of every textfilter flag: ``TextFilterOptions`` adds them to
Beam's parser, ``pipeline.cli`` builds ``--help`` from them, and ``flag_tables`` renders the
README's flag tables (a test checks that the README holds what it renders).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Callable, Optional

from apache_beam.options.pipeline_options import PipelineOptions

from model.regions import SCORE_RULES
from pipeline.handler import DEFAULT_BATCH_SIZE
from pipeline.source_fields import parse_keep_fields

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES_DIR = os.path.join(REPO_ROOT, "samples")
PROGRESS_MODES = ("none", "log", "bar")


def _json_dict(text: str) -> dict:
    value = json.loads(text) if text else {}
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise ValueError('storage options must be a JSON object of objects, e.g. {"gs": {"token": "anon"}}')
    return value


@dataclasses.dataclass(frozen=True)
class Flag:
    """One textfilter flag: ``--name``, its group, one line of meaning (backticks mark code
    in the README), its default and how it is shown where the value alone would not say it."""

    name: str
    group: str
    help: str
    default: Any = None
    shown_default: Optional[str] = None
    type: Optional[Callable] = None
    choices: tuple = ()
    repeatable: bool = False
    switch: bool = False
    metavar: Optional[str] = None

    def default_text(self) -> str:
        """The default as ``--help`` and the README show it (backticks mark a value)."""
        if self.shown_default is not None:
            return self.shown_default
        if self.switch:
            return "off"
        if self.default is None:
            return "–"
        return f"`{json.dumps(self.default) if isinstance(self.default, dict) else self.default}`"

    def argparse_kwargs(self) -> dict:
        kwargs = {"default": self.default, "help": _plain(f"{self.help} (default: {self.default_text()})")}
        if self.switch:
            return {**kwargs, "action": "store_true"}
        if self.repeatable:
            kwargs["action"] = "append"
        if self.type is not None:
            kwargs["type"] = self.type
        if self.choices:
            kwargs["choices"] = self.choices
        if self.metavar:
            kwargs["metavar"] = self.metavar
        return kwargs


def _plain(text: str) -> str:
    """Help text for a terminal: no Markdown backticks, no bare % (argparse formats help)."""
    return text.replace("`", "").replace("%", "%%")


GROUPS = {
    "input": "what to read",
    "output": "what is written, and what the run shows while it lasts",
    "model": "the student model and the decision",
    "OCR": "reading the text of text images",
    "state": "incremental runs",
    "limits": "limits and retries",
}

FLAGS = (
    Flag("input", "input", "image file, folder (every file below it), glob or fsspec URL (`gs://`, `https://`); "
         "repeatable", shown_default="`samples/`", repeatable=True, metavar="URI"),
    Flag("input_list", "input", "text file (local or URL) with one URI a line, `#` comments; repeatable",
         repeatable=True, metavar="FILE"),
    Flag("input_format", "input", "`glob`, `list`, `jsonl`, `csv`, `parquet` (manifests with a URL column) or "
         "`tar` (WebDataset shards); auto: by extension", default="auto",
         choices=("auto", "glob", "list", "jsonl", "csv", "parquet", "tar")),
    Flag("url_field", "input", "URL column of JSONL / CSV / Parquet manifests (img2dataset: `url`)", default="url"),
    Flag("keep_fields", "input", "comma-separated columns of manifest rows, or fields of WebDataset samples' `.json` "
         "(`caption`: also the `.txt`), copied into their records besides `url` and `key`: `key,caption`",
         default=(), shown_default="–", type=parse_keep_fields, metavar="NAMES"),
    Flag("storage_options", "input", "JSON, per-protocol fsspec options for every URL read or written: "
         "`'{\"gs\": {\"project\": \"p\"}}'`", default={}, type=_json_dict, metavar="JSON"),
    Flag("output", "output", "folder or fsspec URL for `text`/`non_text`/`failed` manifests and `summary.json`",
         default="textfilter-out", metavar="URI"),
    Flag("records_per_shard", "output", "manifest lines per output shard", default=50_000, type=int),
    Flag("report", "output", "also write `OUTPUT/report.html`: counts, score histogram, failures, borderline "
         "images", switch=True),
    Flag("progress", "output", "while the run lasts (in-process and `multi_processing` runners): `log`, a line "
         "every `--progress_interval` s; `bar`, one line redrawn on a terminal; `none`", default="log",
         choices=PROGRESS_MODES),
    Flag("progress_interval", "output", "seconds between progress lines; a run shorter than this prints none",
         default=30.0, type=float, metavar="S"),
    Flag("model_path", "model", "student ONNX export or checkpoint, local or URL",
         shown_default="`model/weights/student.onnx`", metavar="URI"),
    Flag("model_format", "model", "`onnx` (an export, on onnxruntime) or `torch` (a checkpoint); auto: by suffix, "
         "the shipped ONNX first", default="auto", choices=("auto", "torch", "onnx")),
    Flag("threshold", "model", "image score at or above which an image is text", type=float,
         shown_default="stored with the weights"),
    Flag("score_rule", "model", "image score from the 34 region probabilities: `max` (the paper's OR) or "
         "`both_grids` (sqrt of the 5x5 max x the 3x3 max)", choices=tuple(SCORE_RULES),
         shown_default="stored with the weights, else `max`"),
    Flag("batch_size", "model", "largest inference batch; small batches stay in the CPU cache",
         default=DEFAULT_BATCH_SIZE, type=int),
    Flag("num_threads", "model", "torch / onnxruntime threads per worker process", default=1, type=int),
    Flag("ocr", "OCR", "`rapidocr`: read the text of text images (PP-OCR ONNX models, offline) into the "
         "record's `ocr`", default="none", choices=("none", "rapidocr")),
    Flag("ocr_mode", "OCR", "`regions`: OCR only the regions the student marked as text", default="whole",
         choices=("whole", "regions")),
    Flag("ocr_inbox", "OCR", "also copy text images here (folder or bucket), under collision-free names",
         metavar="URI"),
    Flag("state", "state", "folder or URL remembering what was decided; unchanged inputs are skipped",
         metavar="URI"),
    Flag("reprocess", "state", "with `--state`: decide everything again and start the state afresh", switch=True),
    Flag("max_bytes", "limits", "larger inputs fail with `stage: read`", default=50 * 1024 * 1024, type=int,
         shown_default="50 MiB"),
    Flag("max_pixels", "limits", "images declaring more pixels fail (decompression-bomb guard)",
         default=100_000_000, type=int, shown_default="100 M"),
    Flag("read_retries", "limits", "retries of transient read errors, exponential backoff", default=3, type=int),
    Flag("read_timeout", "limits", "seconds one read attempt may take; then retried, then failed (0: no limit)",
         default=60.0, type=float, metavar="S"),
)


def add_flags(parser) -> None:
    """Add every flag of ``FLAGS`` to an argparse parser, in its group."""
    groups = {name: parser.add_argument_group(name, description) for name, description in GROUPS.items()}
    for flag in FLAGS:
        groups[flag.group].add_argument(f"--{flag.name}", **flag.argparse_kwargs())


def flag_tables() -> str:
    """The README's flag tables (Markdown), one per group, from ``FLAGS``."""
    parts = []
    for group, description in GROUPS.items():
        rows = [f"| `--{f.name}` | {f.default_text()} | {f.help} |" for f in FLAGS if f.group == group]
        parts.append(f"**{group}** ({description})\n\n| flag | default | what it does |\n|---|---|---|\n"
                     + "\n".join(rows))
    return "\n\n".join(parts) + "\n"


class TextFilterOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser):
        add_flags(parser)


README_START = "<!-- flags: generated by `python -m pipeline.options`; do not edit by hand -->\n"
README_END = "<!-- end of flags -->\n"


def readme_with_flags(readme: str) -> str:
    """``readme`` with the text between its flag-table markers replaced by ``flag_tables()``."""
    start, end = readme.index(README_START) + len(README_START), readme.index(README_END)
    return readme[:start] + flag_tables() + readme[end:]


def main(argv=None) -> int:
    """``python -m pipeline.options``: print the flag tables; ``--readme README.md``: write
    them into that file between its markers."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m pipeline.options", description=main.__doc__)
    parser.add_argument("--readme", help="README to update in place")
    args = parser.parse_args(argv)
    if not args.readme:
        print(flag_tables(), end="")
        return 0
    with open(args.readme, encoding="utf-8") as f:
        text = f.read()
    with open(args.readme, "w", encoding="utf-8") as f:
        f.write(readme_with_flags(text))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
