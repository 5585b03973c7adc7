"""What the per-record steps of the filter share: the metrics namespace, and a DoFn base
for a step that adds fields to a record or turns it into a dead letter (OCR, the OCR
inbox copy)."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import Metrics

from pipeline.logs import install_redaction
from pipeline.records import FAILED, failed_record, source_of, with_source

NAMESPACE = "textfilter"


class RecordStepFn(beam.DoFn):
    """record -> ``{**record, **self.step(record)}``, or a failed record for ``stage`` when
    ``step`` raises: a failing step never crashes the pipeline and never loses the image (nor
    the fields that lead back to its source).
    Subclasses set ``stage``, ``done_metric`` and ``failed_metric`` and write ``step``."""

    stage = ""
    done_metric = ""
    failed_metric = ""

    def __init__(self):
        self.done = Metrics.counter(NAMESPACE, self.done_metric)
        self.failed = Metrics.counter(NAMESPACE, self.failed_metric)

    def setup(self):
        install_redaction()  # the worker's log handlers exist by now

    def step(self, record: dict) -> dict:
        raise NotImplementedError

    def process(self, record: dict):
        try:
            added = self.step(record)
        except Exception as e:  # noqa: BLE001 - a dead letter, never a crash
            self.failed.inc()
            failed = with_source(failed_record(record["uri"], self.stage, e), source_of(record))
            yield beam.pvalue.TaggedOutput(FAILED, failed)
            return
        self.done.inc()
        yield {**record, **added}
