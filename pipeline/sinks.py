"""Outputs: JSON Lines manifests and the OCR inbox, written through fsspec.

``WriteJsonLines`` writes ``{prefix}-SSSSS-of-NNNNN.jsonl`` shards. Each shard is written
to a temporary name and renamed, lines sorted by URI, so a retried bundle rewrites the same
file with the same content (no duplicates, no half-written files), and shards left by an
earlier run into the same folder are removed once the new ones are complete. A route with
no records still gets one empty shard, so every run leaves all three manifests.
"""

from __future__ import annotations

import json
import math
import uuid
import zlib
from typing import Mapping, Optional

import apache_beam as beam
from apache_beam.metrics import Metrics

from pipeline.io import ReadConfig, read_bytes
from pipeline.records import FAILED, STAGE_OCR_SINK, failed_record
from pipeline.uris import filesystem, is_local, join, safe_name

NAMESPACE = "textfilter"


def shard_name(prefix: str, index: int, num_shards: int) -> str:
    return f"{prefix}-{index:05d}-of-{num_shards:05d}.jsonl"


def write_atomically(uri: str, data: bytes, storage_options: Optional[Mapping] = None) -> None:
    """Write ``data`` so that readers never see a half-written file: on a local disk to a
    temporary name beside ``uri``, then renamed; object stores (gs://, s3://, ...) publish
    an object only when its upload completes, so there it is written in place."""
    fs, path = filesystem(uri, storage_options)
    if not is_local(uri):
        fs.pipe_file(path, data)
        return
    parent, name = path.rsplit("/", 1) if "/" in path else ("", path)
    if parent:
        fs.makedirs(parent, exist_ok=True)
    tmp = f"{parent}/.tmp-{uuid.uuid4().hex}-{name}" if parent else f".tmp-{uuid.uuid4().hex}-{name}"
    with fs.open(tmp, "wb") as f:
        f.write(data)
    fs.mv(tmp, path)


class _WriteShardFn(beam.DoFn):
    def __init__(self, prefix: str, storage_options: Mapping):
        self.prefix = prefix
        self.storage_options = storage_options

    def process(self, keyed_lines, num_shards):
        index, lines = keyed_lines
        body = "".join(line + "\n" for line in sorted(lines))
        uri = shard_name(self.prefix, index, num_shards)
        write_atomically(uri, body.encode("utf-8"), self.storage_options)
        yield uri


class _FinalizeFn(beam.DoFn):
    """Runs once, after every shard is written: writes an empty shard for an empty route
    and removes shards of earlier runs that this run did not write."""

    def __init__(self, prefix: str, storage_options: Mapping):
        self.prefix = prefix
        self.storage_options = storage_options

    def process(self, _, written, num_shards):
        written = set(written)
        if not written:
            empty = shard_name(self.prefix, 0, num_shards)
            write_atomically(empty, b"", self.storage_options)
            written.add(empty)
        fs, prefix_path = filesystem(self.prefix, self.storage_options)
        keep = {filesystem(u, self.storage_options)[1] for u in written}
        for stale in fs.glob(prefix_path + "-*-of-*.jsonl"):
            if stale not in keep:
                fs.rm(stale)
        yield from sorted(written)


class WriteJsonLines(beam.PTransform):
    """dict records -> JSON Lines shards under ``prefix``; returns the written shard URIs.

    The number of shards follows the record count (``records_per_shard``), so a small run
    writes one file and a large one spreads the writing across workers."""

    def __init__(self, prefix: str, storage_options: Optional[Mapping] = None, records_per_shard: int = 50_000):
        super().__init__()
        self.prefix = prefix
        self.storage_options = dict(storage_options or {})
        self.records_per_shard = records_per_shard

    def expand(self, records):
        per_shard = self.records_per_shard
        num_shards = beam.pvalue.AsSingleton(
            records
            | "Count" >> beam.combiners.Count.Globally()
            | "NumShards" >> beam.Map(lambda n: max(1, math.ceil(n / per_shard)))
        )
        written = (
            records
            | "ToJson" >> beam.Map(lambda r: json.dumps(r, sort_keys=True, ensure_ascii=False))
            | "Shard" >> beam.Map(lambda line, n: (zlib.crc32(line.encode("utf-8")) % n, line), num_shards)
            | "GroupShards" >> beam.GroupByKey()
            | "WriteShards" >> beam.ParDo(_WriteShardFn(self.prefix, self.storage_options), num_shards)
        )
        return (
            records.pipeline
            | "Once" >> beam.Create([None])
            | "Finalize" >> beam.ParDo(
                _FinalizeFn(self.prefix, self.storage_options), beam.pvalue.AsList(written), num_shards
            )
        )


class CopyToOcrInboxFn(beam.DoFn):
    """Text record -> the image copied into the OCR inbox under a safe, collision-free
    name; the record gains ``ocr_inbox_uri``. A failed copy becomes a dead letter."""

    def __init__(self, inbox: str, read_config: ReadConfig = ReadConfig()):
        self.inbox = inbox
        self.read_config = read_config
        self.copied = Metrics.counter(NAMESPACE, "ocr_inbox_copied")
        self.failed = Metrics.counter(NAMESPACE, "failed_ocr_sink")

    def process(self, record: dict):
        uri = record["uri"]
        target = join(self.inbox, safe_name(uri))
        try:
            write_atomically(target, read_bytes(uri, self.read_config), self.read_config.storage_options)
        except Exception as e:  # noqa: BLE001
            self.failed.inc()
            yield beam.pvalue.TaggedOutput(FAILED, failed_record(uri, STAGE_OCR_SINK, e))
            return
        self.copied.inc()
        yield {**record, "ocr_inbox_uri": target}


class OcrInbox(beam.PTransform):
    """The OCR sink that copies text images into a folder or bucket an OCR system watches.
    Returns (text records, failed records)."""

    def __init__(self, inbox: str, read_config: ReadConfig = ReadConfig()):
        super().__init__()
        self.inbox = inbox
        self.read_config = read_config

    def expand(self, records):
        out = records | "CopyToInbox" >> beam.ParDo(CopyToOcrInboxFn(self.inbox, self.read_config)).with_outputs(
            FAILED, main="copied"
        )
        return out.copied, out[FAILED]
