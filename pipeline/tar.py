"""WebDataset ``.tar`` shards: image members become URIs ``path/to/shard.tar#member.jpg``
(``path/to/shard.tar##caf%E9.jpg`` for a member name that is not UTF-8 or holds ``#``).

A shard is read once, sequentially (tar stream mode over an fsspec file object), and each
image member is emitted with its bytes, so decoding never re-reads it. Reading one member
URI on its own (the OCR stage, the OCR inbox, the HTML report) opens the shard and extracts
that member. Non-image members (``.txt``, ``.json``, ``.cls`` ... of a WebDataset sample)
are skipped by their name's suffix.
"""

from __future__ import annotations

import os
import tarfile
from typing import Iterator, Mapping, Optional
from urllib.parse import unquote_to_bytes

import apache_beam as beam
from apache_beam.metrics import Metrics

from pipeline.items import InputItem
from pipeline.logs import install_redaction
from pipeline.records import FAILED, STAGE_READ, failed_record
from pipeline.uris import MEMBER_URI, filesystem, is_text, percent_encoded

NAMESPACE = "textfilter"
SEPARATOR = "#"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")


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


def iter_members(shard: str, max_bytes: Optional[int], storage_options: Optional[Mapping] = None) -> Iterator:
    """(member name, fingerprint, bytes or a ``MemberTooLarge`` error) of every image member
    of ``shard``, in order; raises on a shard that cannot be opened or is corrupt."""
    fs, path = filesystem(shard, storage_options)
    with fs.open(path, "rb") as f, tarfile.open(fileobj=f, mode="r|*") as tar:
        for info in tar:
            if not is_image_member(info):
                continue
            if max_bytes and info.size > max_bytes:
                yield info.name, member_fingerprint(info), MemberTooLarge(
                    f"tar member is larger than max_bytes={max_bytes} ({info.size} bytes)")
                continue
            yield info.name, member_fingerprint(info), tar.extractfile(info).read()


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
    ``shards`` output as (shard URI, fingerprint, number of image members), for ``--state``."""

    def __init__(self, max_bytes: Optional[int], storage_options: Optional[Mapping] = None):
        self.max_bytes = max_bytes
        self.storage_options = dict(storage_options or {})
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
            for name, fingerprint, data in iter_members(item.uri, self.max_bytes, self.storage_options):
                members += 1
                uri = member_uri(item.uri, name)
                if isinstance(data, Exception):
                    self.failed.inc()
                    yield beam.pvalue.TaggedOutput(FAILED, failed_record(uri, STAGE_READ, data))
                    continue
                self.members.inc()
                yield InputItem(uri, fingerprint, data)
        except Exception as e:  # noqa: BLE001 - a corrupt or missing shard is a dead letter, never a crash
            self.failed.inc()
            error = "file not found" if isinstance(e, FileNotFoundError) else e
            yield beam.pvalue.TaggedOutput(FAILED, failed_record(item.uri, STAGE_READ, error, type(e).__name__))
            return
        yield beam.pvalue.TaggedOutput(SHARDS, (item.uri, item.fingerprint, members))
