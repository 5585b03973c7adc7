"""The filter's main job.

    python -m pipeline.run                                # the shipped samples
    python -m pipeline.run --input 'gs://bucket/crawl/*.jpg' --output gs://bucket/out \
        --runner DataflowRunner --setup_file ./setup.py ...
    python -m pipeline.run --input crawl/part-00000.parquet --state gs://bucket/state \
        --ocr rapidocr ...                                # nightly: only new or changed images

Every input URI ends in exactly one of ``text``, ``non_text`` and ``failed``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import sys
import tempfile
import time
from typing import Optional

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions, StandardOptions

from model.preprocessing import DEFAULT_PREPROCESS, PreprocessConfig, preprocess_from_meta
from model.onnx_format import read_onnx_meta
from model.regions import DEFAULT_SCORE_RULE, score_rule_of
from pipeline.cli import check_flags, print_help
from pipeline.extras import check_options
from pipeline.handler import DEFAULT_BATCH_SIZE, default_model_path, read_model_bytes, resolve_model_format
from pipeline.fingerprint import FingerprintFn
from pipeline.io import ReadConfig
from pipeline.logs import install_redaction
from pipeline.options import SAMPLES_DIR, TextFilterOptions
from pipeline.progress import ProgressReporter, Tally
from pipeline.records import FAILED, NON_TEXT, ROUTES, TEXT
from pipeline.sinks import OcrInbox, WriteManifests, write_atomically
from pipeline.sources import ExpandShards, ListInputs, check_source, sources
from pipeline.state import ReadState, SkipDecided, StateStore, WriteState, new_generation_id
from pipeline.record_steps import NAMESPACE
from pipeline.transforms import FilterImages
from pipeline.uris import filesystem, join, redact_uri

log = logging.getLogger("textfilter")


@dataclasses.dataclass(frozen=True)
class FilterConfig:
    """Everything ``build_pipeline`` needs, resolved from the options."""

    inputs: tuple[str, ...]
    input_lists: tuple[str, ...]
    output: str
    threshold: float
    model_path: Optional[str]
    read: ReadConfig
    ocr_inbox: Optional[str] = None
    batch_size: int = DEFAULT_BATCH_SIZE
    num_threads: int = 1
    max_pixels: int = DEFAULT_PREPROCESS.max_pixels
    records_per_shard: int = 50_000
    model_format: str = "torch"
    report: bool = False
    input_format: str = "auto"
    url_field: str = "url"
    keep_fields: tuple[str, ...] = ()
    state: Optional[str] = None
    reprocess: bool = False
    ocr: str = "none"
    ocr_mode: str = "whole"
    score_rule: str = DEFAULT_SCORE_RULE
    preprocess: PreprocessConfig = DEFAULT_PREPROCESS  # input shape of the weights (meta["preprocess"])
    progress: str = "log"
    progress_interval: float = 30.0


def stored_meta(model_path: Optional[str], storage_options=None, model_format: str = "torch") -> dict:
    """The meta saved with the student's weights: in the checkpoint, or in an ONNX export's
    metadata_props."""
    path = model_path or default_model_path(model_format)
    try:
        data = read_model_bytes(path, storage_options)
    except FileNotFoundError as e:
        raise FileNotFoundError(
            f"student weights not found at {redact_uri(path)}; pass --model_path or train them (see MODEL.md)"
        ) from e
    if model_format == "onnx":
        return read_onnx_meta(data)
    from model.registry import read_checkpoint  # torch: not imported on the ONNX path

    return read_checkpoint(data).get("meta") or {}


def stored_decision(model_path: Optional[str], storage_options=None, model_format: str = "torch",
                    threshold: Optional[float] = None, score_rule: Optional[str] = None) -> tuple[float, str]:
    """(threshold, score rule): the ones given, else those saved with the student's weights
    (chosen on dev); weights without them decide by the paper's max at 0.5. The weights are
    not read when both are given."""
    meta = {} if threshold is not None and score_rule else stored_meta(model_path, storage_options, model_format)
    return decision_of(meta, threshold, score_rule)


def decision_of(meta: dict, threshold: Optional[float] = None, score_rule: Optional[str] = None) -> tuple[float, str]:
    """(threshold, score rule) from the weights' ``meta``, either one overridden when given."""
    return float(meta.get("threshold", 0.5) if threshold is None else threshold), score_rule_of(meta, score_rule)


def stored_threshold(model_path: Optional[str], storage_options=None, model_format: str = "torch") -> float:
    """The decision threshold saved with the student's weights (0.5 where there is none)."""
    return stored_decision(model_path, storage_options, model_format)[0]


def config_from_options(options: PipelineOptions) -> FilterConfig:
    o = options.view_as(TextFilterOptions)
    inputs = tuple(o.input or ())
    input_lists = tuple(o.input_list or ())
    if not inputs and not input_lists:
        if not os.path.isdir(SAMPLES_DIR):  # an installed package: the samples are in the source checkout only
            raise ValueError("no --input or --input_list given (the default, samples/, is in a source checkout only)")
        inputs = (SAMPLES_DIR,)
    for source in sources(inputs, input_lists, o.input_format):
        check_source(source, o.url_field, o.storage_options)
    if o.progress_interval <= 0:
        raise ValueError(f"--progress_interval must be positive, got {o.progress_interval}")
    if o.reprocess and not o.state:
        raise ValueError("--reprocess needs --state (without --state every input is decided anyway)")
    read = ReadConfig(
        max_bytes=o.max_bytes, retries=o.read_retries, storage_options=o.storage_options, timeout_s=o.read_timeout or None
    )
    model_format = resolve_model_format(o.model_format, o.model_path)
    # a missing extra: which one to install, before torch (or Dataflow's client) is needed
    check_options(model_format, o.ocr, options.view_as(StandardOptions).runner)
    meta = stored_meta(o.model_path, o.storage_options, model_format)
    threshold, score_rule = decision_of(meta, o.threshold, o.score_rule)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"--threshold must be between 0 and 1, got {threshold}")
    return FilterConfig(
        inputs=inputs, input_lists=input_lists, output=o.output, threshold=threshold, score_rule=score_rule,
        model_path=o.model_path, read=read, ocr_inbox=o.ocr_inbox, batch_size=o.batch_size, num_threads=o.num_threads,
        max_pixels=o.max_pixels, records_per_shard=o.records_per_shard, model_format=model_format, report=o.report,
        input_format=o.input_format, url_field=o.url_field, keep_fields=tuple(o.keep_fields), state=o.state,
        reprocess=o.reprocess, ocr=o.ocr,
        ocr_mode=o.ocr_mode, preprocess=preprocess_from_meta(meta), progress=o.progress,
        progress_interval=o.progress_interval,
    )


def build_pipeline(pipeline: beam.Pipeline, config: FilterConfig, progress_dir: Optional[str] = None) -> dict:
    """Add the filter to ``pipeline``; returns the text/non_text/failed record PCollections.
    With ``progress_dir`` (a local folder), listed inputs and outputs are tallied there for
    ``pipeline.progress.ProgressReporter``."""
    preprocess = dataclasses.replace(config.preprocess, max_pixels=config.max_pixels)
    so = config.read.storage_options
    items = pipeline | "ReadUris" >> ListInputs(
        config.inputs, config.input_lists, so, input_format=config.input_format, url_field=config.url_field,
        keep_fields=config.keep_fields, progress_dir=progress_dir,
    )
    store = StateStore(config.state, so) if config.state else None
    if store:  # skip what an earlier run decided: unchanged images, and unchanged tar shards unread
        items = items | "Fingerprint" >> beam.ParDo(FingerprintFn(so))
        previous = pipeline | "ReadState" >> ReadState(store, None if config.reprocess else store.current())
        items, carried = (items, previous) | "SkipDecided" >> SkipDecided()
    shards = ExpandShards(config.read.max_bytes, so, config.keep_fields)
    items, failed_shards, shards_read = items | "ExpandShards" >> shards
    routes = items | "Filter" >> FilterImages(
        config.threshold, config.model_path, read_config=config.read, preprocess=preprocess,
        score_rule=config.score_rule,
        num_threads=config.num_threads, max_batch_size=config.batch_size, model_format=config.model_format,
    )
    text, failed = routes[TEXT], [routes[FAILED], failed_shards]
    if config.ocr != "none":
        from pipeline.ocr import Ocr  # rapidocr is imported by the workers that run it

        text, ocr_failed = text | "Ocr" >> Ocr(config.ocr_mode, config.read, preprocess, config.num_threads)
        failed.append(ocr_failed)
    if config.ocr_inbox:
        text, inbox_failed = text | "OcrInbox" >> OcrInbox(config.ocr_inbox, config.read)
        failed.append(inbox_failed)
    outputs = {TEXT: text, NON_TEXT: routes[NON_TEXT], FAILED: failed | "AllFailures" >> beam.Flatten()}
    published = outputs | "WriteManifests" >> WriteManifests(config.output, so, config.records_per_shard)
    if progress_dir:
        for route, records in outputs.items():
            records | f"Tally_{route}" >> Tally(progress_dir, route)
    if store:  # after the manifests are published: a crashed run never marks an image as done
        decided_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        decisions = {"carried": carried, "processed": items, TEXT: text, NON_TEXT: routes[NON_TEXT], "shards": shards_read}
        decisions | "UpdateState" >> WriteState(store, new_generation_id(), published, decided_at)
    return outputs


def metric_counts(result) -> Optional[dict[str, int]]:
    """Counts per route from the pipeline's metrics, or None where the runner gives none."""
    try:
        counters = result.metrics().query(beam.metrics.MetricsFilter().with_namespace(NAMESPACE))["counters"]
    except Exception:  # noqa: BLE001 - some runners report no metrics
        return None
    if not counters:
        return None
    totals: dict[str, int] = {}
    for m in counters:
        value = m.committed if m.committed is not None else m.attempted
        totals[m.key.metric.name] = totals.get(m.key.metric.name, 0) + (value or 0)
    return {
        TEXT: totals.get(TEXT, 0) - totals.get("failed_ocr_sink", 0) - totals.get("failed_ocr", 0),
        NON_TEXT: totals.get(NON_TEXT, 0),
        FAILED: sum(v for k, v in totals.items() if k.startswith("failed_")),
        "skipped": totals.get("skipped", 0),
    }


def manifest_counts(config: FilterConfig) -> dict[str, int]:
    """Counts per route from the written manifests (for runners without metrics)."""
    counts = {}
    for route in ROUTES:
        fs, prefix = filesystem(join(config.output, route), config.read.storage_options)
        counts[route] = 0
        for shard in fs.glob(prefix + "-*-of-*.jsonl"):
            with fs.open(shard, "rb") as f:
                counts[route] += sum(1 for line in f if line.strip())
    return counts


def summarize(config: FilterConfig, counts: dict, seconds: float) -> dict:
    total = sum(counts.get(route) or 0 for route in ROUTES)  # decided or failed in this run
    return {
        "images": total,
        **{route: counts.get(route) for route in ROUTES},
        "skipped": counts.get("skipped"),  # unchanged since the --state's last run; None where unknown
        "seconds": round(seconds, 3),
        "images_per_second": round(total / seconds, 2) if total and seconds > 0 else None,
        "threshold": config.threshold,
        "score_rule": config.score_rule,
        "outputs": {route: redact_uri(join(config.output, f"{route}-*.jsonl")) for route in ROUTES},
    }


def summary_line(summary: dict) -> str:
    skipped = f", {summary['skipped']} skipped (unchanged)" if summary.get("skipped") else ""
    return (
        f"textfilter: {summary['images']} images -> {summary[TEXT]} text, {summary[NON_TEXT]} non_text, "
        f"{summary[FAILED]} failed{skipped} in {summary['seconds']:.1f} s ({summary['images_per_second'] or 0:.1f} img/s); "
        f"score rule {summary['score_rule']}, threshold {summary['threshold']:.4g}; "
        f"outputs: {', '.join(summary['outputs'].values())}"
    )


IN_PROCESS_RUNNERS = ("fnapi", "direct", "bundlebaseddirect", "switchingdirect")


def runs_on_this_machine(options: PipelineOptions, test_pipeline=None) -> bool:
    """Whether the workers share the driver's disk: the in-process runners (FnApiRunner,
    its multi_processing mode, the DirectRunner), which report metrics only at the end."""
    runner = test_pipeline.runner if test_pipeline is not None else options.view_as(StandardOptions).runner
    name = runner if isinstance(runner, str) else type(runner).__name__
    return name.lower().removesuffix("runner") in IN_PROCESS_RUNNERS


@contextlib.contextmanager
def reporting_progress(config: FilterConfig, options: PipelineOptions, test_pipeline=None):
    """Yields the folder the pipeline's ``Tally`` steps write to, and reports progress from
    it while the block lasts; yields None (no tallies) with ``--progress none`` or on a
    runner whose workers do not share this machine (Dataflow: the Beam metrics)."""
    if config.progress == "none" or not runs_on_this_machine(options, test_pipeline):
        yield None
        return
    total_known = not config.state and all(
        fmt != "tar" for fmt, _ in sources(config.inputs, config.input_lists, config.input_format))
    with tempfile.TemporaryDirectory(prefix="textfilter-progress-") as folder, \
            ProgressReporter(folder, config.progress, config.progress_interval, total_known):
        yield folder


def run(argv=None, save_main_session: bool = True, test_pipeline=None) -> dict:
    """Run the filter; returns the run summary (also written to OUTPUT/summary.json).
    ``--help`` prints the flags and exits; a flag that neither textfilter nor Beam knows,
    or a local input that does not exist, raises ``ValueError`` before anything is read."""
    install_redaction()
    argv = list(sys.argv[1:] if argv is None else argv)
    if print_help(argv):
        raise SystemExit(0)
    check_flags(argv)
    options = PipelineOptions(argv)
    options.view_as(SetupOptions).save_main_session = save_main_session
    standard = options.view_as(StandardOptions)
    if test_pipeline is None and standard.runner is None:
        standard.runner = "FnApiRunner"  # runs offline; DirectRunner would try Prism first
    config = config_from_options(options)
    start = time.perf_counter()
    pipeline = test_pipeline or beam.Pipeline(options=options)
    with reporting_progress(config, options, test_pipeline) as progress_dir:
        build_pipeline(pipeline, config, progress_dir)
        result = pipeline.run()
        result.wait_until_finish()
    seconds = time.perf_counter() - start
    counts = metric_counts(result) or manifest_counts(config)
    summary = summarize(config, counts, seconds)
    write_atomically(
        join(config.output, "summary.json"), json.dumps(summary, indent=2).encode("utf-8"), config.read.storage_options
    )
    print(summary_line(summary))
    if config.report:
        from pipeline.report import write_report

        try:
            report = write_report(config.output, summary, config.read.storage_options)
        except Exception as e:  # noqa: BLE001 - the manifests are written; a broken report must not hide them
            log.warning("could not write the HTML report: %s: %s", type(e).__name__, e)
        else:
            print(f"textfilter: report: {redact_uri(report)}")
    return summary


def main(argv=None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    install_redaction()
    try:
        run(argv)
    except (ValueError, FileNotFoundError) as e:
        print(f"textfilter: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
