"""``--state``: what earlier runs decided, so that a scheduled run decides only new or
changed inputs.

Layout (atomic on object stores too: objects are only ever created, and one small object
names the live generation)::

    STATE/CURRENT                                   the live generation's id, written last
    STATE/generations/<run id>/state-SSSSS-of-NNNNN.jsonl
        {"uri", "fingerprint", "label", "score", "decided_at"} a line

(a WebDataset shard every member of which was decided also has an entry of its own, label
"shard", so that an unchanged shard is not even read the next time).

A reader reads CURRENT, then that generation. A run's new generation holds the previous
entries it did not re-decide plus its own text / non_text decisions (failed inputs are not
recorded: the next run retries them). Its shards are written beside the live generation and
CURRENT is switched to it only after the run's manifests are published, so a run that
crashes never marks an image as done. Generations older than the last two are removed.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Mapping, Optional

import apache_beam as beam
from apache_beam.metrics import Metrics

from pipeline.items import InputItem
from pipeline.records import NON_TEXT, TEXT
from pipeline.sinks import StageShards, write_atomically
from pipeline.tar import shard_of, split_member_uri
from pipeline.uris import filesystem, join

NAMESPACE = "textfilter"
CURRENT = "CURRENT"
GENERATIONS = "generations"
KEEP_GENERATIONS = 2
CARRIED, PROCESS = "carried", "process"
SHARD = "shard"  # the label of a WebDataset shard's own entry: every member was decided


def new_generation_id() -> str:
    """Sortable by time: ``20261128T014501Z-1a2b3c4d``."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


class StateStore:
    """Paths and driver-side reads of one state folder or bucket prefix."""

    def __init__(self, root: str, storage_options: Optional[Mapping] = None):
        self.root = root
        self.storage_options = dict(storage_options or {})

    def generation_dir(self, generation: str) -> str:
        return join(join(self.root, GENERATIONS), generation)

    def _fs_path(self, uri: str):
        return filesystem(uri, self.storage_options)

    def current(self) -> Optional[str]:
        """The live generation's id, or None for a new (or deleted) state."""
        fs, path = self._fs_path(join(self.root, CURRENT))
        try:
            with fs.open(path, "rb") as f:
                text = f.read().decode("utf-8").strip()
        except FileNotFoundError:
            return None
        return text or None

    def shards(self, generation: Optional[str]) -> list[str]:
        """The state files of ``generation`` (none for None; an empty generation has none)."""
        if generation is None:
            return []
        folder = self.generation_dir(generation)
        fs, path = self._fs_path(folder)
        fs.invalidate_cache()  # object-store listings are cached per filesystem instance
        return sorted(join(folder, p.rsplit("/", 1)[-1]) for p in fs.glob(path.rstrip("/") + "/state-*.jsonl"))

    def entries(self, generation: Optional[str] = None) -> list[dict]:
        """Every entry of ``generation`` (default: the live one); for tests and tools."""
        out = []
        for shard in self.shards(generation if generation is not None else self.current()):
            out += read_entries(shard, self.storage_options)
        return out

    def publish(self, generation: str) -> None:
        """Make ``generation`` live, then remove all but the last ``KEEP_GENERATIONS``."""
        write_atomically(join(self.root, CURRENT), (generation + "\n").encode("utf-8"), self.storage_options)
        fs, path = self._fs_path(join(self.root, GENERATIONS))
        names = sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(path, detail=False))
        keep = set(names[-KEEP_GENERATIONS:]) | {generation}
        for name in names:
            if name not in keep:
                fs.rm(self._fs_path(self.generation_dir(name))[1], recursive=True)


def read_entries(shard: str, storage_options: Optional[Mapping] = None) -> list[dict]:
    fs, path = filesystem(shard, storage_options)
    with fs.open(path, "rb") as f:
        return [json.loads(line) for line in f if line.strip()]


class ReadState(beam.PTransform):
    """The live generation's entries, keyed by URI; empty for a new state or ``--reprocess``."""

    def __init__(self, store: StateStore, generation: Optional[str]):
        super().__init__()
        self.store = store
        self.generation = generation

    def expand(self, pbegin):
        so = self.store.storage_options
        return (
            pbegin
            | "StateShards" >> beam.Create(self.store.shards(self.generation))
            | "SpreadShards" >> beam.Reshuffle()
            | "ReadEntries" >> beam.FlatMap(lambda shard: read_entries(shard, so))
            | "KeyEntries" >> beam.Map(lambda e: (e["uri"], e))
        )


class SplitByStateFn(beam.DoFn):
    """(key, {"items": [InputItem], "state": [entry]}) -> an item to process (main output),
    or old entries carried into the new state (``carried``). The key is an input's URI; for
    a WebDataset shard, the shard's URI, which also collects its members' entries.

    - an image whose fingerprint equals its entry's is skipped (its entry carried);
    - a shard whose fingerprint equals its ``shard`` entry's (written only when every member
      was decided) is skipped without being read: its members' entries are carried; a
      changed or incomplete shard is read again and all its members decided again;
    - entries of inputs not listed in this run are kept; an input without a fingerprint is
      always processed."""

    def __init__(self):
        self.skipped = Metrics.counter(NAMESPACE, "skipped")

    def process(self, keyed):
        key, grouped = keyed
        items, entries = list(grouped["items"]), list(grouped["state"])
        if not items:
            for entry in entries:
                yield beam.pvalue.TaggedOutput(CARRIED, entry)
            return
        if any(item.shard for item in items):
            own = [e for e in entries if e["uri"] == key and e.get("label") == SHARD]
            if _unchanged(items, own):
                self.skipped.inc(len(entries) - len(own))
                for entry in entries:
                    yield beam.pvalue.TaggedOutput(CARRIED, entry)
                return
            yield from items  # read and decided again: the old entries go
            return
        own = [e for e in entries if e["uri"] == key and e.get("label") != SHARD]
        for entry in entries:  # a former shard's members, listed otherwise now: kept
            if entry["uri"] != key:
                yield beam.pvalue.TaggedOutput(CARRIED, entry)
        if _unchanged(items, own):
            self.skipped.inc(len(items))
            yield beam.pvalue.TaggedOutput(CARRIED, own[-1])
            return
        yield from items


def _unchanged(items: list[InputItem], entries: list[dict]) -> bool:
    fingerprint = entries[-1].get("fingerprint") if entries else None
    return fingerprint is not None and all(item.fingerprint == fingerprint for item in items)


class SkipDecided(beam.PTransform):
    """(InputItems with fingerprints, old entries keyed by URI) -> (items to process,
    carried entries). A join by key (CoGroupByKey): it scales with the state's size. Tar
    members' entries are joined under their shard's URI (see ``SplitByStateFn``)."""

    def expand(self, pcolls):
        items, old = pcolls
        keyed = items | "KeyItems" >> beam.Map(lambda item: (item.uri, item))
        by_shard = old | "KeyByShard" >> beam.Map(lambda kv: (shard_of(kv[0]), kv[1]))
        split = (
            {"items": keyed, "state": by_shard}
            | "JoinState" >> beam.CoGroupByKey()
            | "Split" >> beam.ParDo(SplitByStateFn()).with_outputs(CARRIED, main=PROCESS)
        )
        return split[PROCESS], split[CARRIED]


def _entries_of_decisions(keyed, decided_at: str):
    """(uri, {"decided": [record], "fingerprint": [fp]}) -> state entries of the decisions."""
    uri, grouped = keyed
    fingerprints = [fp for fp in grouped["fingerprint"]]
    fp = fingerprints[0] if len(set(fingerprints)) == 1 else None
    for record in grouped["decided"]:
        yield {"uri": uri, "fingerprint": fp, "label": record["label"], "score": record["score"],
               "decided_at": decided_at}


def _complete_shard_entries(keyed, decided_at: str):
    """(shard, {"shard": [(shard, fp, members)], "decided": [1, ...]}) -> a ``shard`` entry
    where every image member of the shard was decided in this run (none failed)."""
    shard, grouped = keyed
    decided = sum(grouped["decided"])
    for _, fingerprint, members in grouped["shard"]:
        if fingerprint is not None and decided == members:
            yield {"uri": shard, "fingerprint": fingerprint, "label": SHARD, "score": None, "decided_at": decided_at}


class _PublishGenerationFn(beam.DoFn):
    def __init__(self, store: StateStore, generation: str):
        self.store = store
        self.generation = generation

    def process(self, _, written, published):
        # ``published`` (the manifests' publish step) is only here to order this step after it.
        fs, path = filesystem(self.store.generation_dir(self.generation), self.store.storage_options)
        fs.makedirs(path, exist_ok=True)  # an empty generation is a folder without shards
        self.store.publish(self.generation)
        yield self.generation


class WriteState(beam.PTransform):
    """Writes the new generation and makes it live after ``published`` (the manifests'
    publish step output) is complete. Input: a dict with ``carried`` (old entries),
    ``processed`` (InputItems decided this run), ``text`` and ``non_text`` records, and
    ``shards`` ((shard, fingerprint, members) of the tar shards read to their end)."""

    def __init__(self, store: StateStore, generation: str, published, decided_at: str, records_per_shard: int = 500_000):
        super().__init__()
        self.store = store
        self.generation = generation
        self.published = published
        self.decided_at = decided_at
        self.records_per_shard = records_per_shard

    def expand(self, pcolls: dict):
        decided_at = self.decided_at
        decided = (pcolls[TEXT], pcolls[NON_TEXT]) | "Decided" >> beam.Flatten()
        new = (
            {
                "decided": decided | "KeyDecided" >> beam.Map(lambda r: (r["uri"], r)),
                "fingerprint": pcolls["processed"] | "KeyFingerprints" >> beam.Map(lambda i: (i.uri, i.fingerprint)),
            }
            | "JoinFingerprints" >> beam.CoGroupByKey()
            | "ToEntries" >> beam.FlatMap(_entries_of_decisions, decided_at)
        )
        members_decided = (
            new
            | "MemberEntries" >> beam.Filter(lambda e: split_member_uri(e["uri"]) is not None)
            | "KeyMembers" >> beam.Map(lambda e: (shard_of(e["uri"]), 1))
        )
        shards = (
            {"shard": pcolls["shards"] | "KeyShards" >> beam.Map(lambda s: (s[0], s)), "decided": members_decided}
            | "JoinShards" >> beam.CoGroupByKey()
            | "ShardEntries" >> beam.FlatMap(_complete_shard_entries, decided_at)
        )
        entries = (pcolls["carried"], new, shards) | "AllEntries" >> beam.Flatten()
        written = entries | "StageState" >> StageShards(
            "state", join(self.store.generation_dir(self.generation), "state"),
            self.store.storage_options, self.records_per_shard,
        )
        return (
            entries.pipeline
            | "OnceState" >> beam.Create([None])
            | "PublishState" >> beam.ParDo(
                _PublishGenerationFn(self.store, self.generation),
                beam.pvalue.AsList(written), beam.pvalue.AsList(self.published),
            )
        )
