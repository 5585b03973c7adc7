"""Input formats: globs, folders and URLs, list files, JSONL / CSV / Parquet manifests with
a URL column (img2dataset's output), and WebDataset ``.tar`` shards.

``--input_format auto`` picks the format of each ``--input`` / ``--input_list`` argument by
its extension: ``.jsonl``/``.json`` -> jsonl, ``.csv`` -> csv, ``.parquet`` -> parquet,
``.tar`` -> tar (shards, ``shard-{000..009}.tar`` or a glob), else glob for ``--input`` and
list for ``--input_list``.
"""

from __future__ import annotations

import csv
import io as _io
import json
import logging
import os
import re
from typing import Iterator, Mapping, Optional

import apache_beam as beam

from pipeline.fingerprint import fingerprint
from pipeline.io import has_glob, list_pattern, read_list_lines
from pipeline.items import InputItem
from pipeline.progress import LISTED, Tally
from pipeline.records import FAILED
from pipeline.tar import SHARDS, ExpandShardsFn
from pipeline.uris import filesystem, is_local, printable, redact_uri, uri_of_name

log = logging.getLogger(__name__)

INPUT_FORMATS = ("auto", "glob", "list", "jsonl", "csv", "parquet", "tar")
MANIFEST_FORMATS = ("jsonl", "csv", "parquet")
_EXTENSIONS = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet", ".tar": "tar"}
_BRACES = re.compile(r"\{([^{}]*)\}")


def detect_format(argument: str, declared: str = "auto", is_list: bool = False) -> str:
    """The format of one ``--input`` (``is_list`` False) or ``--input_list`` argument."""
    if declared not in INPUT_FORMATS:
        raise ValueError(f"unknown --input_format {declared!r}: use one of {', '.join(INPUT_FORMATS)}")
    if declared != "auto":
        return declared
    path = argument.split("?", 1)[0].lower()
    for ext, fmt in _EXTENSIONS.items():
        if path.endswith(ext):
            return fmt
    return "list" if is_list else "glob"


def expand_braces(pattern: str) -> list[str]:
    """Shell-like brace expansion of WebDataset shard names: ``s-{000..002}.tar`` ->
    s-000.tar, s-001.tar, s-002.tar (zero padding kept); ``{a,b}`` -> a, b."""
    m = _BRACES.search(pattern)
    if not m:
        return [pattern]
    body, head, tail = m[1], pattern[: m.start()], pattern[m.end():]
    numeric = re.fullmatch(r"(\d+)\.\.(\d+)", body)
    if numeric:
        lo, hi = numeric[1], numeric[2]
        width = len(lo) if lo.startswith("0") or len(lo) == len(hi) else 0
        step = 1 if int(hi) >= int(lo) else -1
        choices = [str(i).zfill(width) for i in range(int(lo), int(hi) + step, step)]
    elif "," in body:
        choices = body.split(",")
    else:
        return [head + "{" + body + "}" + u for u in expand_braces(tail)]
    return [head + c + rest for c in choices for rest in expand_braces(tail)]


def read_manifest_urls(uri: str, fmt: str, url_field: str = "url",
                       storage_options: Optional[Mapping] = None) -> Iterator[tuple[str, object]]:
    """(where, value) for the URLs in column ``url_field`` of a JSONL, CSV or Parquet
    manifest: ``where`` is "line=N" (JSONL, CSV) or "row=N" (Parquet), 1-based; the value a
    URL, with bytes that are not UTF-8 as surrogate escapes, or a ``ValueError`` for a line
    that cannot be read (not JSON). Rows without a value (empty, null) are skipped with a
    warning; a manifest without the column is an error."""
    fs, path = filesystem(uri, storage_options)
    missing = 0
    with fs.open(path, "rb") as f:
        for where, value in _column(f, fmt, url_field, uri):
            if isinstance(value, bytes):
                value = value.decode("utf-8", "surrogateescape")
            if isinstance(value, ValueError) or isinstance(value, str) and value.strip():
                yield where, value.strip() if isinstance(value, str) else value
            else:
                missing += 1
    if missing:
        log.warning("%s: %d rows without a %r value skipped", printable(redact_uri(uri)), missing, url_field)


def _column(f, fmt: str, field: str, uri: str) -> Iterator[tuple[str, object]]:
    """(where, value) of ``field`` in each row; text that is not UTF-8 comes as surrogate
    escapes (JSONL, CSV) or bytes (Parquet)."""
    if fmt == "jsonl":
        for number, line in enumerate(_io.TextIOWrapper(f, encoding="utf-8", errors="surrogateescape"), 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except ValueError as e:
                    yield f"line={number}", ValueError(f"not a JSON object: {e}")
                    continue
                yield f"line={number}", row.get(field) if isinstance(row, dict) else None
    elif fmt == "csv":
        reader = csv.DictReader(_io.TextIOWrapper(f, encoding="utf-8", errors="surrogateescape", newline=""))
        if reader.fieldnames is None or field not in reader.fieldnames:
            raise ValueError(f"{redact_uri(uri)} has no column {field!r} (columns: {reader.fieldnames}); set --url_field")
        for row in reader:
            yield f"line={reader.line_num}", row.get(field)
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(f)
        if field not in parquet.schema_arrow.names:
            raise ValueError(
                f"{redact_uri(uri)} has no column {field!r} (columns: {parquet.schema_arrow.names}); set --url_field")
        row = 0
        for batch in parquet.iter_batches(columns=[field], batch_size=65_536):
            column = batch.column(0)
            if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
                column = column.cast(pa.large_binary())  # a cell that is not UTF-8 comes as its bytes
            for value in column.to_pylist():
                row += 1
                yield f"row={row}", value
    else:
        raise ValueError(f"not a manifest format: {fmt}")


def check_source(source: tuple[str, str], url_field: str = "url", storage_options: Optional[Mapping] = None) -> None:
    """Fail early, on the driver, for a local file or folder, list or manifest that does not
    exist, or a CSV / Parquet manifest without the ``url_field`` column (raises
    FileNotFoundError / ValueError). A glob that matches nothing is no error (a nightly crawl
    may have nothing new), nor is a remote URL (reading it decides) or a missing shard of a
    WebDataset range."""
    fmt, value = source
    if fmt in ("glob", "tar"):  # a shard of a range that is missing is a failed record
        literal = not has_glob(value) and not (fmt == "tar" and _BRACES.search(value))
        if literal and is_local(value) and not os.path.lexists(filesystem(value)[1]):
            raise FileNotFoundError(f"--input {value} does not exist (no such file or folder)")
        return
    if fmt not in ("list",) + MANIFEST_FORMATS:
        return
    fs, path = filesystem(value, storage_options)
    if not fs.isfile(path):
        raise FileNotFoundError(f"{fmt} input {redact_uri(value)} does not exist")
    if fmt in ("csv", "parquet"):
        with fs.open(path, "rb") as f:
            next(iter(_column(f, fmt, url_field, value)), None)


def expand_source(source: tuple[str, str], url_field: str = "url", storage_options: Optional[Mapping] = None):
    """(format, argument) -> InputItems. Globs and folders carry the listing's fingerprint;
    tar shards are items with ``shard=True``, opened later by ``ExpandShardsFn``. A line or
    cell that names nothing is an item that fails (``listed_item``)."""
    fmt, value = source
    if fmt == "list":
        for number, name in read_list_lines(value, storage_options):
            yield listed_item(name, value, f"line={number}")
    elif fmt in MANIFEST_FORMATS:
        for where, name in read_manifest_urls(value, fmt, url_field, storage_options):
            yield listed_item(name, value, where)
    else:
        for pattern in expand_braces(value) if fmt == "tar" else [value]:
            for uri, info in list_pattern(pattern, storage_options):
                item = listed_item(uri)
                yield item if item.error else item._replace(fingerprint=fingerprint(info), shard=fmt == "tar")


def listed_item(name, list_uri: Optional[str] = None, where: Optional[str] = None) -> InputItem:
    """The InputItem of a name listed by a pattern, a list line or a manifest cell (bytes that
    are not UTF-8 as surrogate escapes; a ``ValueError`` for a line that cannot be read): its
    URI (``pipeline.uris.uri_of_name``), or, where it names nothing, an item that fails,
    named ``LIST#line=N`` (``LIST#row=N`` in Parquet) after the list it came from."""
    try:
        if isinstance(name, ValueError):
            raise name
        return InputItem(uri_of_name(name))
    except ValueError as e:
        reason = str(e) if isinstance(name, ValueError) else f"not valid UTF-8 text ({e})"
        if list_uri is None:
            return InputItem(printable(name), error=reason)
        line = where.replace("=", " ")
        return InputItem(f"{listed_item(list_uri).uri}#{where}", error=f"{line} of {printable(redact_uri(list_uri))}: {reason}")


def sources(inputs=(), input_lists=(), input_format: str = "auto") -> list[tuple[str, str]]:
    """(format, argument) for every ``--input`` and ``--input_list``."""
    return [(detect_format(p, input_format), p) for p in inputs] + [
        (detect_format(f, input_format, is_list=True), f) for f in input_lists
    ]


class ListInputs(beam.PTransform):
    """Inputs of any format -> InputItems, reshuffled; tar shards are items with
    ``shard=True`` (see ``ExpandShards``). With ``progress_dir``, the listed items are
    tallied (``pipeline.progress``) before they are spread."""

    def __init__(self, patterns=(), list_files=(), storage_options: Mapping | None = None, *,
                 input_format: str = "auto", url_field: str = "url", progress_dir: Optional[str] = None):
        super().__init__()
        self.sources = sources(patterns, list_files, input_format)
        self.storage_options = dict(storage_options or {})
        self.url_field = url_field
        self.progress_dir = progress_dir

    def expand(self, pbegin):
        listed = (
            pbegin
            | "Sources" >> beam.Create(self.sources)
            | "ExpandSources" >> beam.FlatMap(expand_source, self.url_field, self.storage_options)
        )
        if self.progress_dir:
            listed | "TallyListed" >> Tally(self.progress_dir, LISTED)
        return listed | "Spread" >> beam.Reshuffle()


class ExpandShards(beam.PTransform):
    """InputItems -> (items with tar shards opened into their image members, failed records
    of unreadable shards, (shard, fingerprint, members) of each shard read to its end)."""

    def __init__(self, max_bytes: Optional[int] = None, storage_options: Mapping | None = None):
        super().__init__()
        self.max_bytes = max_bytes
        self.storage_options = dict(storage_options or {})

    def expand(self, items):
        out = items | "OpenShards" >> beam.ParDo(ExpandShardsFn(self.max_bytes, self.storage_options)).with_outputs(
            FAILED, SHARDS, main="items"
        )
        return out.items, out[FAILED], out[SHARDS]
