"""The element that flows from the inputs into the filter."""

from __future__ import annotations

from typing import NamedTuple, Optional


class InputItem(NamedTuple):
    """One input: ``uri``; ``fingerprint`` (size + mtime / etag / hash, None where unknown:
    such an input is never skipped by ``--state``); ``data``, the bytes where they were
    already read (a WebDataset tar member), else None (read by the decode step); ``shard``,
    True for a WebDataset ``.tar`` shard still to be opened into its members; ``error``,
    why an input already failed where it was listed (a line of a list that names nothing, a
    manifest row its crawler could not download): it becomes a failed record, stage "read",
    of ``error_type`` (default ``BadListEntry``); ``fields``, what its record carries back to
    its source (``url``, ``key``, ``--keep_fields``: ``pipeline.source_fields``), or None."""

    uri: str
    fingerprint: Optional[str] = None
    data: Optional[bytes] = None
    shard: bool = False
    error: Optional[str] = None
    error_type: Optional[str] = None
    fields: Optional[dict] = None


def as_item(element) -> InputItem:
    """An ``InputItem`` from an item or a bare URI string."""
    return element if isinstance(element, InputItem) else InputItem(element)
