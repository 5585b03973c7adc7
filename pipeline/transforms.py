"""The filter's transforms: read + decode, RunInference with the student, routing.

``FilterImages`` is the whole decision as one composite transform: URIs in, a dict of
three PCollections out (``text``, ``non_text``, ``failed``) that together hold every input
URI exactly once.
"""

from __future__ import annotations

from typing import Optional

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from model.preprocessing import DEFAULT_PREPROCESS, PreprocessConfig, decode_image
from model.regions import DEFAULT_SCORE_RULE, NUM_REGIONS, check_score_rule
from pipeline.handler import DEFAULT_BATCH_SIZE, model_handler
from pipeline.io import ReadConfig, read_bytes
from pipeline.items import as_item
from pipeline.logs import install_redaction
from pipeline.record_steps import NAMESPACE
from pipeline.records import (
    FAILED, NON_TEXT, STAGE_DECODE, STAGE_INFERENCE, STAGE_READ, TEXT, decided_record, failed_record, with_source,
)


def keyed(item) -> object:
    """The key an image carries through inference: its URI, or (URI, fields) where the item
    carries fields back to its source (a manifest row, a WebDataset sample)."""
    return (item.uri, item.fields) if item.fields else item.uri


def unkeyed(key) -> tuple[str, Optional[dict]]:
    """(URI, source fields or None) of a ``keyed`` key."""
    return key if isinstance(key, tuple) else (key, None)


class ReadAndDecodeFn(beam.DoFn):
    """uri or InputItem -> (``keyed(item)``, uint8 RGB array resized to the model's input),
    or a failed record. An item that carries its bytes (a tar member) is not read again."""

    def __init__(self, read_config: ReadConfig = ReadConfig(), preprocess: PreprocessConfig = DEFAULT_PREPROCESS):
        self.read_config = read_config
        self.preprocess = preprocess
        self.bytes_read = Metrics.counter(NAMESPACE, "bytes_read")
        self.decoded = Metrics.counter(NAMESPACE, "decoded")
        self.failed_read = Metrics.counter(NAMESPACE, "failed_read")
        self.failed_decode = Metrics.counter(NAMESPACE, "failed_decode")

    def setup(self):
        install_redaction()  # the worker's log handlers exist by now

    def process(self, element):
        # A bad input never stops the pipeline: every exception becomes a dead letter.
        item = as_item(element)
        uri, data = item.uri, item.data
        if item.error is not None:  # failed where it was listed (a list line that names nothing)
            self.failed_read.inc()
            record = failed_record(uri, STAGE_READ, item.error, item.error_type or "BadListEntry")
            yield beam.pvalue.TaggedOutput(FAILED, with_source(record, item.fields))
            return
        try:
            if data is None:
                data = read_bytes(uri, self.read_config)
        except Exception as e:  # noqa: BLE001
            self.failed_read.inc()
            yield beam.pvalue.TaggedOutput(FAILED, with_source(failed_record(uri, STAGE_READ, e), item.fields))
            return
        self.bytes_read.inc(len(data))
        try:
            image = decode_image(data, self.preprocess)
        except Exception as e:  # noqa: BLE001 - ImageDecodeError, ImageTooLarge, MemoryError, ...
            self.failed_decode.inc()
            yield beam.pvalue.TaggedOutput(FAILED, with_source(failed_record(uri, STAGE_DECODE, e), item.fields))
            return
        self.decoded.inc()
        yield keyed(item), image


class RouteByScoreFn(beam.DoFn):
    """(``keyed`` URI, PredictionResult) -> a decided record on the ``text`` or ``non_text`` output,
    or a failed record where the model returned no usable probabilities (NaN, values
    outside [0, 1], the wrong number of regions): a manifest never holds a NaN score."""

    def __init__(self, threshold: float, score_rule: str = DEFAULT_SCORE_RULE):
        self.threshold = threshold
        self.score_rule = check_score_rule(score_rule)
        self.counters = {route: Metrics.counter(NAMESPACE, route) for route in (TEXT, NON_TEXT)}
        self.failed = Metrics.counter(NAMESPACE, "failed_inference")
        self.scores = Metrics.distribution(NAMESPACE, "score_permille")

    def process(self, keyed_result):
        key, result = keyed_result
        uri, fields = unkeyed(key)
        probs = np.asarray(result.inference, dtype=np.float64)
        if probs.shape != (NUM_REGIONS,) or not ((probs >= 0.0) & (probs <= 1.0)).all():  # NaN fails too
            self.failed.inc()
            reason = f"model returned {probs.size} region scores, not {NUM_REGIONS} probabilities in [0, 1]"
            record = failed_record(uri, STAGE_INFERENCE, reason, "BadModelOutput")
            yield beam.pvalue.TaggedOutput(FAILED, with_source(record, fields))
            return
        record = with_source(decided_record(uri, probs, self.threshold, self.score_rule), fields)
        self.counters[record["label"]].inc()
        self.scores.update(int(round(record["score"] * 1000)))
        yield beam.pvalue.TaggedOutput(record["label"], record)


_failed_inference = Metrics.counter(NAMESPACE, "failed_inference")


def inference_failures(dead_letter) -> list:
    """Failed RunInference batches, (batch of (``keyed`` URI, array), error), -> one failed
    record per URI."""
    batch, error = dead_letter
    if isinstance(error, tuple):  # (exception type, message, traceback) from Beam's DLQ
        error_type = getattr(error[0], "__name__", str(error[0]))
        message = str(error[1]) if len(error) > 1 else error_type
    else:
        error_type, message = type(error).__name__, str(error)
    examples = batch if isinstance(batch, list) else [batch]
    _failed_inference.inc(len(examples))
    return [with_source(failed_record(uri, STAGE_INFERENCE, message, error_type), fields)
            for uri, fields in (unkeyed(key) for key, _ in examples)]


class FilterImages(beam.PTransform):
    """URIs or InputItems -> {"text": records, "non_text": records, "failed": records}."""

    def __init__(
        self,
        threshold: float,
        model_path: Optional[str] = None,
        *,
        read_config: ReadConfig = ReadConfig(),
        preprocess: PreprocessConfig = DEFAULT_PREPROCESS,
        num_threads: int = 1,
        max_batch_size: int = DEFAULT_BATCH_SIZE,
        model_format: str = "torch",
        score_rule: str = DEFAULT_SCORE_RULE,
    ):
        super().__init__()
        self.threshold = threshold
        self.score_rule = check_score_rule(score_rule)
        self.read_config = read_config
        self.preprocess = preprocess
        self.handler = KeyedModelHandler(
            model_handler(
                model_format,
                model_path,
                num_threads=num_threads,
                storage_options=read_config.storage_options,
                max_batch_size=max_batch_size,
            )
        )

    def expand(self, uris):
        decoded = uris | "ReadAndDecode" >> beam.ParDo(
            ReadAndDecodeFn(self.read_config, self.preprocess)
        ).with_outputs(FAILED, main="images")
        predictions, dead = decoded.images | "RunInference" >> RunInference(self.handler).with_exception_handling()
        routed = predictions | "Route" >> beam.ParDo(RouteByScoreFn(self.threshold, self.score_rule)).with_outputs(
            TEXT, NON_TEXT, FAILED
        )
        failed_inference = dead.failed_inferences | "InferenceFailures" >> beam.FlatMap(inference_failures)
        failed = (decoded[FAILED], failed_inference, routed[FAILED]) | "AllFailed" >> beam.Flatten()
        return {TEXT: routed[TEXT], NON_TEXT: routed[NON_TEXT], FAILED: failed}
