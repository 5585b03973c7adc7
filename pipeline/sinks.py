"""Outputs: JSON Lines manifests and the OCR inbox, written through fsspec.

``WriteManifests`` writes ``OUTPUT/{route}-SSSSS-of-NNNNN.jsonl`` shards for every route in
two steps, like Beam's own file sinks:

1. each shard is written, lines sorted by URI, into a hidden staging folder of this run
   (``OUTPUT/.staging-<run id>/``), each file to a temporary name and renamed; a retried
   bundle rewrites the same file with the same content;
2. once every shard of every route is staged, one step moves them to their final names,
   writes an empty shard for a route with no records (every run leaves all three
   manifests), and removes the shards of earlier runs and leftover staging folders.

A run that crashes or is killed before step 2 leaves the previous run's manifests as they
were (plus a hidden staging folder that the next run removes); no reader ever sees a
half-written file, nor a mix of two runs' shards outside the short step 2.
"""

from __future__ import annotations

import json
import math
import uuid
import zlib
from typing import Mapping, Optional

import apache_beam as beam

from pipeline.io import ReadConfig, read_bytes
from pipeline.record_steps import RecordStepFn
from pipeline.records import FAILED, STAGE_OCR_SINK
from pipeline.uris import filesystem, is_local, join, safe_name

STAGING = ".staging-"
TMP = ".tmp-"


def shard_name(prefix: str, index: int, num_shards: int) -> str:
    return f"{prefix}-{index:05d}-of-{num_shards:05d}.jsonl"


def write_atomically(uri: str, data: bytes, storage_options: Optional[Mapping] = None) -> None:
    """Write ``data`` so that readers never see a half-written file: on a local disk to a
    temporary name beside ``uri`` (removed again if writing fails), then renamed; object
    stores (gs://, s3://, ...) publish an object only when its upload completes, so there
    it is written in place."""
    fs, path = filesystem(uri, storage_options)
    if not is_local(uri):
        fs.pipe_file(path, data)
        return
    parent, name = path.rsplit("/", 1) if "/" in path else ("", path)
    if parent:
        fs.makedirs(parent, exist_ok=True)
    tmp = f"{parent}/{TMP}{uuid.uuid4().hex}-{name}" if parent else f"{TMP}{uuid.uuid4().hex}-{name}"
    try:
        with fs.open(tmp, "wb") as f:
            f.write(data)
        fs.mv(tmp, path)
    except BaseException:
        if fs.exists(tmp):
            fs.rm(tmp)
        raise


def _basename(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1]


class _WriteShardFn(beam.DoFn):
    """(shard index, lines) -> (route, staged shard URI), the shard complete on storage."""

    def __init__(self, route: str, staged_prefix: str, storage_options: Mapping):
        self.route = route
        self.staged_prefix = staged_prefix
        self.storage_options = storage_options

    def process(self, keyed_lines, num_shards):
        index, lines = keyed_lines
        body = "".join(line + "\n" for line in sorted(lines))
        uri = shard_name(self.staged_prefix, index, num_shards)
        write_atomically(uri, body.encode("utf-8"), self.storage_options)
        yield self.route, uri


class _FinalizeFn(beam.DoFn):
    """Runs once, after every shard of every route is staged: publishes them (see the
    module docstring). Running it again after it ran, in full or in part, does the same.
    It removes every staging folder under ``output``: one job writes to an output at a time."""

    def __init__(self, output: str, routes: tuple[str, ...], storage_options: Mapping):
        self.output = output
        self.routes = routes
        self.storage_options = storage_options

    def process(self, _, staged):
        fs, _ = filesystem(self.output, self.storage_options)
        published = {route: [] for route in self.routes}
        for route, uri in sorted(staged):  # new shards first: a record is never missing
            final = join(self.output, _basename(uri))
            self._move(fs, uri, final)
            published[route].append(final)
        for route, finals in published.items():
            if not finals:
                finals.append(shard_name(join(self.output, route), 0, 1))
                write_atomically(finals[0], b"", self.storage_options)
        for route, finals in published.items():  # then the shards of earlier runs go
            keep = {self._path(u) for u in finals}
            for stale in fs.glob(self._path(join(self.output, route)) + "-*-of-*.jsonl"):
                if stale not in keep:
                    fs.rm(stale)
        for folder in fs.glob(self._path(join(self.output, STAGING)) + "*"):
            fs.rm(folder, recursive=True)  # this run's, and any left by a crashed run
        yield from sorted(u for finals in published.values() for u in finals)

    def _path(self, uri: str) -> str:
        return filesystem(uri, self.storage_options)[1]

    def _move(self, fs, staged: str, final: str) -> None:
        src, dst = self._path(staged), self._path(final)
        if not fs.exists(src):
            if not fs.exists(dst):  # neither staged nor published: never silently drop a shard
                raise FileNotFoundError(f"staged shard {staged} is missing")
            return  # moved by an earlier attempt of this step
        if is_local(final):
            fs.mv(src, dst)  # a rename: atomic
        else:  # a server-side copy publishes the whole object at once; no move API needed
            fs.copy(src, dst)
            fs.rm(src)


class StageShards(beam.PTransform):
    """One route's records -> (route, staged shard URI). The number of shards follows the
    record count (``records_per_shard``), so a small run writes one file and a large one
    spreads the writing across workers."""

    def __init__(self, route: str, staged_prefix: str, storage_options: Mapping, records_per_shard: int):
        super().__init__()
        self.route = route
        self.staged_prefix = staged_prefix
        self.storage_options = storage_options
        self.records_per_shard = records_per_shard

    def expand(self, records):
        per_shard = self.records_per_shard
        num_shards = beam.pvalue.AsSingleton(
            records
            | "Count" >> beam.combiners.Count.Globally()
            | "NumShards" >> beam.Map(lambda n: max(1, math.ceil(n / per_shard)))
        )
        return (
            records
            | "ToJson" >> beam.Map(lambda r: json.dumps(r, sort_keys=True, ensure_ascii=False))
            | "Shard" >> beam.Map(lambda line, n: (zlib.crc32(line.encode("utf-8")) % n, line), num_shards)
            | "GroupShards" >> beam.GroupByKey()
            | "WriteShards" >> beam.ParDo(
                _WriteShardFn(self.route, self.staged_prefix, self.storage_options), num_shards
            )
        )


class WriteManifests(beam.PTransform):
    """{route: dict records} -> JSON Lines shards ``OUTPUT/{route}-SSSSS-of-NNNNN.jsonl``,
    all routes published together; returns the published shard URIs."""

    def __init__(self, output: str, storage_options: Optional[Mapping] = None, records_per_shard: int = 50_000):
        super().__init__()
        self.output = output
        self.storage_options = dict(storage_options or {})
        self.records_per_shard = records_per_shard
        # Fixed when the pipeline is built, so a retried bundle writes to the same place.
        self.staging = join(output, STAGING + uuid.uuid4().hex[:16])

    def expand(self, routes: dict):
        staged = [
            records | f"Stage_{route}" >> StageShards(
                route, join(self.staging, route), self.storage_options, self.records_per_shard
            )
            for route, records in routes.items()
        ]
        pipeline = next(iter(routes.values())).pipeline
        return (
            pipeline
            | "Once" >> beam.Create([None])
            | "Publish" >> beam.ParDo(
                _FinalizeFn(self.output, tuple(routes), self.storage_options),
                beam.pvalue.AsList(staged | "AllStaged" >> beam.Flatten()),
            )
        )


class CopyToOcrInboxFn(RecordStepFn):
    """Text record -> the image copied into the OCR inbox under a safe, collision-free
    name; the record gains ``ocr_inbox_uri``. A failed copy becomes a dead letter."""

    stage, done_metric, failed_metric = STAGE_OCR_SINK, "ocr_inbox_copied", "failed_ocr_sink"

    def __init__(self, inbox: str, read_config: ReadConfig = ReadConfig()):
        super().__init__()
        self.inbox = inbox
        self.read_config = read_config

    def step(self, record: dict) -> dict:
        uri = record["uri"]
        target = join(self.inbox, safe_name(uri))
        write_atomically(target, read_bytes(uri, self.read_config), self.read_config.storage_options)
        return {"ocr_inbox_uri": target}


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
