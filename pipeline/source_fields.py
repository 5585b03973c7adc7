"""What a record carries back to its source: the ``url`` and ``key`` of a crawled image (a
manifest row, a WebDataset sample's ``.json`` sidecar) and the fields named with
``--keep_fields``; and a crawler's verdict on a row it could not download.

img2dataset (and most crawlers after it) writes, per image, ``url``, ``key``, ``status``
(``success``, ``failed_to_download``, ``failed_to_resize``) and ``error_message``, into its
Parquet manifests and into each WebDataset sample's ``.json``; a sample's ``.txt`` is its
caption.
"""

from __future__ import annotations

import argparse
import datetime
import decimal
import json
import logging
import math
from typing import Mapping, Optional

from pipeline.records import PIPELINE_FIELDS
from pipeline.uris import printable

log = logging.getLogger(__name__)

SOURCE_FIELDS = ("url", "key")  # always carried where the source has them
CAPTION = "caption"  # a WebDataset sample's .txt, unless its .json has a caption
STATUS, ERROR_MESSAGE = "status", "error_message"  # img2dataset's download verdict
FAILED_STATUS_PREFIX = "failed"  # failed_to_download, failed_to_resize


def parse_keep_fields(text: str) -> tuple[str, ...]:
    """``--keep_fields key,caption`` -> ("key", "caption"); a name the pipeline writes itself
    (``label``, ``score`` ...) is refused (``argparse.ArgumentTypeError``: the flag's type):
    the source's value would overwrite it."""
    names = tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    clash = [name for name in names if name in PIPELINE_FIELDS]
    if clash:
        raise argparse.ArgumentTypeError(f"cannot name {', '.join(clash)}: records already have such a field")
    return names


def carried_fields(keep_fields=()) -> tuple[str, ...]:
    """The fields a record takes from its source: ``url``, ``key``, then ``keep_fields``."""
    return tuple(dict.fromkeys(SOURCE_FIELDS + tuple(keep_fields)))


def pick(row: Mapping, names) -> dict:
    """The fields ``names`` of ``row`` that it has (not null), as JSON values."""
    return {name: json_value(row[name]) for name in names if row.get(name) is not None}


def json_value(value):
    """``value`` as JSON writes it: text as it is (bytes, a Parquet cell read as binary, as
    UTF-8 text, bytes that are not UTF-8 as backslash escapes), NaN as null, dates as ISO
    8601, lists and mappings item by item, anything else as its ``str``."""
    if value is None or isinstance(value, (bool, int, str)):
        return printable(value) if isinstance(value, str) else value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, bytes):
        return printable(value.decode("utf-8", "surrogateescape"))
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return json_value(float(value))
    return str(value)


def crawl_failure(row: Mapping) -> Optional[str]:
    """Why the crawler that wrote ``row`` has no image for it (img2dataset's ``status``
    ``failed_to_download`` or ``failed_to_resize``, and its ``error_message``), or None."""
    status, message = (_text(row.get(name)) for name in (STATUS, ERROR_MESSAGE))
    if not isinstance(status, str) or not status.startswith(FAILED_STATUS_PREFIX):
        return None
    return f"crawler status {status}: {message}" if message else f"crawler status {status}"


def _text(value):
    """A Parquet cell read as bytes, as text; anything else as it is."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def sample_fields(key: str, sidecars: Mapping[str, bytes], names, where: str = "") -> dict:
    """The fields ``names`` of a WebDataset sample: its ``.json`` (an object), its ``.txt``
    as ``caption`` where the JSON has none, and its key where the JSON has none. A ``.json``
    that is not a JSON object is logged and ignored."""
    row: dict = {"key": key}
    if ".txt" in sidecars:
        row[CAPTION] = sidecars[".txt"].decode("utf-8", "surrogateescape")
    if ".json" in sidecars:
        try:
            meta = json.loads(sidecars[".json"])
        except ValueError as e:
            meta = e
        if isinstance(meta, dict):
            row.update({k: v for k, v in meta.items() if v is not None})
        else:
            log.warning("%s: the .json of sample %s is not a JSON object (%s); its fields are not carried",
                        where, printable(key), meta if isinstance(meta, ValueError) else type(meta).__name__)
    return pick(row, names)
