"""Content fingerprints of inputs, for ``--state``: what the storage's listing or ``info``
says about a file (size plus mtime, etag, md5 or generation), never its bytes.

A fingerprint is None when the storage gives nothing that changes with the content (an
HTTP server that sends neither ETag nor Last-Modified, an error): such an input is always
processed, never skipped.
"""

from __future__ import annotations

import datetime
from typing import Mapping, Optional

import apache_beam as beam
from apache_beam.metrics import Metrics

from pipeline.items import as_item
from pipeline.record_steps import NAMESPACE
from pipeline.uris import filesystem

# Keys of fsspec info dicts that change when an object's content changes: local files
# (mtime), gcsfs (generation, md5Hash, etag, updated), s3fs (ETag, LastModified),
# HTTP (ETag, Last-Modified, Content-MD5, Digest when the server sends them).
CHANGE_KEYS = (
    "generation", "md5Hash", "ETag", "etag", "md5", "mtime", "LastModified", "last_modified",
    "Last-Modified", "updated", "Content-MD5", "Digest", "checksum",
)


def fingerprint(info: Optional[Mapping]) -> Optional[str]:
    """"size=...;mtime=..." from an fsspec info dict, or None (see the module docstring)."""
    if not info or info.get("type", "file") != "file":
        return None
    parts = [f"{k}={_text(info[k])}" for k in CHANGE_KEYS if info.get(k) not in (None, "")]
    if not parts:
        return None
    return ";".join([f"size={info.get('size')}"] + parts)


def _text(value) -> str:
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return str(value)


def info_fingerprint(uri: str, storage_options: Optional[Mapping] = None) -> Optional[str]:
    """The fingerprint from one ``fs.info`` call; None where it fails."""
    try:
        fs, path = filesystem(uri, storage_options)
        return fingerprint(fs.info(path))
    except Exception:  # noqa: BLE001 - no fingerprint: the input is processed
        return None


class FingerprintFn(beam.DoFn):
    """InputItem (or URI) -> the item with a fingerprint: the listing's where it had one,
    else one ``fs.info`` per URI."""

    def __init__(self, storage_options: Optional[Mapping] = None):
        self.storage_options = dict(storage_options or {})
        self.unknown = Metrics.counter(NAMESPACE, "fingerprint_unknown")

    def process(self, element):
        item = as_item(element)
        if item.fingerprint is None and item.data is None and item.error is None:
            item = item._replace(fingerprint=info_fingerprint(item.uri, self.storage_options))
        if item.fingerprint is None:
            self.unknown.inc()
        yield item
