"""WebDataset ``.tar`` shards: image members become URIs ``path/to/shard.tar#member.jpg``
(``path/to/shard.tar##caf%E9.jpg`` for a member name that is not UTF-8 or holds ``#``).

A shard is read once, sequentially (tar stream mode over an fsspec file object), and each
image member is emitted with its bytes, so decoding never re-reads it. Reading one member
URI on its own (the OCR stage, the OCR inbox, the HTML report) opens the shard and extracts
that member. Members are grouped into samples by key (``a/0001.jpg`` and ``a/0001.json``
are sample ``a/0001``): a sample's ``.json`` and ``.txt`` are read with its images, and
their records carry the sample's ``url`` and ``key`` (``pipeline.source_fields``); other
members (``.cls``, ``.npy`` ...) are skipped by their name's suffix.
"""

from __future__ import annotations

import os
import tarfile
from typing import Iterator, Mapping, NamedTuple, Optional
from urllib.parse import unquote_to_bytes

import apache_beam as beam
from apache_beam.metrics import Metrics

from pipeline.items import InputItem
from pipeline.logs import install_redaction
from pipeline.records import FAILED, STAGE_READ, failed_record, with_source
from pipeline.source_fields import carried_fields, sample_fields
from pipeline.uris import MEMBER_URI, filesystem, is_text, percent_encoded, printable, redact_uri

NAMESPACE = "textfilter"
SEPARATOR = "#"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
SIDECAR_SUFFIXES = (".json", ".txt")  # read with the sample's images: url, key, caption
MAX_SIDECAR_BYTES = 1 << 20  # a larger sidecar is not read
MAX_SAMPLE_IMAGES = 8  # a tar of images sharing a key (not WebDataset) is passed on in groups this size


class MemberTooLarge(ValueError):
    """A tar member larger than ``max_bytes`` (permanent: not retried)."""


def member_uri(shard: str, member: str) -> str:
    """``shard.tar#member``; ``shard.tar##`` + the name's bytes percent-encoded where the name
    is not UTF-8 (tarfile gives such bytes as surrogate escapes) or holds ``#``."""
    if is_text(member) and SEPARATOR not in member:
        return f"{shard}{SEPARATOR}{member}"
    return f"{shard}{SEPARATOR}{SEPARATOR}{percent_encoded(os.fsencode(member))}"


def split_member_uri(uri: str) -> Optional[tuple[str, str]]:
    """(shard URI, member name as tarfile gives it) of a member URI, or None for any other URI."""
    m = MEMBER_URI.match(uri)
    if not m:
        return None
    member = m["member"]
    if member.startswith(SEPARATOR):
        member = os.fsdecode(unquote_to_bytes(member[len(SEPARATOR):]))
    return m["shard"], member


def is_image_member(info: tarfile.TarInfo) -> bool:
    name = info.name.rsplit("/", 1)[-1]
    return info.isfile() and not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES)


def member_fingerprint(info: tarfile.TarInfo) -> str:
    return f"tar:size={info.size};mtime={info.mtime};chksum={info.chksum}"


def sample_key(name: str) -> str:
    """A member's WebDataset sample key: its path up to the first dot of its file name
    (``a/0001.jpg``, ``a/0001.json`` and ``a/0001.seg.png`` are sample ``a/0001``)."""
    folder, slash, base = name.rpartition("/")
    return folder + slash + base.split(".", 1)[0]


class Sample(NamedTuple):
    """One WebDataset sample: its key, its image members as (name, fingerprint, bytes or a
    ``MemberTooLarge`` error), and its sidecars by suffix (``.json``, ``.txt``) as bytes."""

    key: str
    images: list
    sidecars: dict


def iter_samples(shard: str, max_bytes: Optional[int], storage_options: Optional[Mapping] = None) -> Iterator[Sample]:
    """The samples of ``shard`` (consecutive members sharing a key), in order, each once all
    its members are read: an image comes before or after its ``.json`` (WebDataset writers
    sort a sample's members by suffix); at most ``MAX_SAMPLE_IMAGES`` images a sample (the
    rest of a larger one follows as more samples with that key). Raises on a shard that
    cannot be opened or is corrupt, after yielding the sample it was in."""
    fs, path = filesystem(shard, storage_options)
    sample = None
    try:
        with fs.open(path, "rb") as f, tarfile.open(fileobj=f, mode="r|*") as tar:
            for info in tar:
                name = info.name.rsplit("/", 1)[-1]
                if not info.isfile() or name.startswith("."):
                    continue
                key = sample_key(info.name)
                if sample is None or key != sample.key:
                    if sample is not None and sample.images:
                        yield sample
                    sample = Sample(key, [], {})
                suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
                if is_image_member(info):
                    if len(sample.images) == MAX_SAMPLE_IMAGES:  # bounded memory, whatever the names
                        yield sample
                        sample = Sample(key, [], sample.sidecars)
                    sample.images.append((info.name, member_fingerprint(info), _member_bytes(tar, info, max_bytes)))
                elif suffix in SIDECAR_SUFFIXES and info.size <= MAX_SIDECAR_BYTES:
                    sample.sidecars[suffix] = tar.extractfile(info).read()
    except Exception:
        if sample is not None and sample.images:
            yield sample  # read before the damage: decided as usual
        raise
    if sample is not None and sample.images:
        yield sample


def _member_bytes(tar: tarfile.TarFile, info: tarfile.TarInfo, max_bytes: Optional[int]):
    if max_bytes and info.size > max_bytes:
        return MemberTooLarge(f"tar member is larger than max_bytes={max_bytes} ({info.size} bytes)")
    return tar.extractfile(info).read()


def read_member(uri: str, max_bytes: Optional[int], storage_options: Optional[Mapping] = None) -> bytes:
    """The bytes of one member URI ``shard.tar#member``."""
    shard, member = split_member_uri(uri)
    fs, path = filesystem(shard, storage_options)
    with fs.open(path, "rb") as f, tarfile.open(fileobj=f, mode="r:*") as tar:
        try:
            info = tar.getmember(member)
        except KeyError:
            raise FileNotFoundError(f"no member {member!r} in the tar shard") from None
        if not info.isfile():
            raise IsADirectoryError(f"tar member {member!r} is not a file")
        if max_bytes and info.size > max_bytes:
            raise MemberTooLarge(f"tar member is larger than max_bytes={max_bytes} ({info.size} bytes)")
        return tar.extractfile(info).read()


SHARDS = "shards"


def shard_of(uri: str) -> str:
    """The shard URI of a member URI; any other URI itself."""
    parts = split_member_uri(uri)
    return parts[0] if parts else uri


class ExpandShardsFn(beam.DoFn):
    """InputItem -> itself, or for a shard, one item (with bytes) per image member. A shard
    that cannot be read, or a corrupt one, ends as a failed record for the shard's URI
    (members emitted before the damage are processed as usual); an oversized member is a
    failed record of its own. Each shard read to its end is also reported on the
    ``shards`` output as (shard URI, fingerprint, number of image members), for ``--state``.
    Each member's item carries its sample's fields (``url``, ``key``, ``keep_fields``)."""

    def __init__(self, max_bytes: Optional[int], storage_options: Optional[Mapping] = None, keep_fields=()):
        self.max_bytes = max_bytes
        self.storage_options = dict(storage_options or {})
        self.fields = carried_fields(keep_fields)
        self.members = Metrics.counter(NAMESPACE, "tar_members")
        self.failed = Metrics.counter(NAMESPACE, "failed_tar")

    def setup(self):
        install_redaction()

    def process(self, item: InputItem):
        if not item.shard:
            yield item
            return
        members = 0
        try:
            for sample in iter_samples(item.uri, self.max_bytes, self.storage_options):
                fields = sample_fields(sample.key, sample.sidecars, self.fields, printable(redact_uri(item.uri)))
                for name, fingerprint, data in sample.images:
                    members += 1
                    uri = member_uri(item.uri, name)
                    if isinstance(data, Exception):
                        self.failed.inc()
                        yield beam.pvalue.TaggedOutput(FAILED, with_source(failed_record(uri, STAGE_READ, data), fields))
                        continue
                    self.members.inc()
                    yield InputItem(uri, fingerprint, data, fields=fields)
        except Exception as e:  # noqa: BLE001 - a corrupt or missing shard is a dead letter, never a crash
            self.failed.inc()
            error = "file not found" if isinstance(e, FileNotFoundError) else e
            yield beam.pvalue.TaggedOutput(FAILED, failed_record(item.uri, STAGE_READ, error, type(e).__name__))
            return
        yield beam.pvalue.TaggedOutput(SHARDS, (item.uri, item.fingerprint, members))
