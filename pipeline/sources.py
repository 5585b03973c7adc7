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
from pipeline.source_fields import ERROR_MESSAGE, STATUS, carried_fields, crawl_failure, pick
from pipeline.tar import SHARDS, ExpandShardsFn
from pipeline.uris import filesystem, is_local, printable, redact_uri, uri_of_name

log = logging.getLogger(__name__)

INPUT_FORMATS = ("auto", "glob", "list", "jsonl", "csv", "parquet", "tar")
MANIFEST_FORMATS = ("jsonl", "csv", "parquet")
_EXTENSIONS = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet", ".tar": "tar"}
_BRACES = re.compile(r"\{([^{}]*)\}")
CRAWL_FAILED = "CrawlFailed"  # error type of a manifest row its crawler could not download


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


def read_manifest_rows(uri: str, fmt: str, url_field: str = "url", keep_fields=(),
                       storage_options: Optional[Mapping] = None) -> Iterator[tuple]:
    """(where, URL, fields, crawl failure) for each row of a JSONL, CSV or Parquet manifest
    with a value in column ``url_field``: ``where`` is "line=N" (JSONL, CSV) or "row=N"
    (Parquet), 1-based; the URL has bytes that are not UTF-8 as surrogate escapes, or is a
    ``ValueError`` for a line that cannot be read (not JSON); ``fields`` are what the
    record carries back to the row (``url``, ``key``, ``keep_fields``); the crawl failure
    is why the crawler has no image for the row (img2dataset's ``status``), or None. Rows
    without a URL (empty, null) are skipped with a warning; a manifest without the column
    is an error."""
    names = carried_fields(keep_fields)
    columns = tuple(dict.fromkeys((url_field, *names, STATUS, ERROR_MESSAGE)))
    fs, path = filesystem(uri, storage_options)
    missing = 0
    with fs.open(path, "rb") as f:
        for where, row in _rows(f, fmt, columns, url_field, uri):
            if isinstance(row, ValueError):
                yield where, row, None, None
                continue
            value = row.get(url_field)
            if isinstance(value, bytes):
                value = value.decode("utf-8", "surrogateescape")
            if isinstance(value, str) and value.strip():
                yield where, value.strip(), pick({**row, "url": value.strip()}, names), crawl_failure(row)
            else:
                missing += 1
    if missing:
        log.warning("%s: %d rows without a %r value skipped", printable(redact_uri(uri)), missing, url_field)


def _rows(f, fmt: str, columns: tuple, required: str, uri: str) -> Iterator[tuple[str, object]]:
    """(where, row) for each row of a manifest: a dict of those of ``columns`` it has (text
    that is not UTF-8 as surrogate escapes, or bytes in Parquet), or a ``ValueError`` for a
    JSONL line that is not JSON. A CSV or Parquet manifest without column ``required`` is a
    ``ValueError``."""
    if fmt == "jsonl":
        for number, line in enumerate(_io.TextIOWrapper(f, encoding="utf-8", errors="surrogateescape"), 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except ValueError as e:
                    yield f"line={number}", ValueError(f"not a JSON object: {e}")
                    continue
                yield f"line={number}", {c: row[c] for c in columns if c in row} if isinstance(row, dict) else {}
    elif fmt == "csv":
        reader = csv.DictReader(_io.TextIOWrapper(f, encoding="utf-8", errors="surrogateescape", newline=""))
        _require_column(required, reader.fieldnames, uri)
        for row in reader:
            yield f"line={reader.line_num}", {c: row[c] for c in columns if c in row}
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(f)
        names = parquet.schema_arrow.names
        _require_column(required, names, uri)
        number = 0
        for batch in parquet.iter_batches(columns=[c for c in columns if c in names], batch_size=65_536):
            for i, field in enumerate(batch.schema):  # a cell that is not UTF-8 comes as its bytes
                if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
                    batch = batch.set_column(i, field.name, batch.column(i).cast(pa.large_binary()))
            for row in batch.to_pylist():
                number += 1
                yield f"row={number}", row
    else:
        raise ValueError(f"not a manifest format: {fmt}")


def _require_column(column: str, names, uri: str) -> None:
    if names is None or column not in names:
        raise ValueError(f"{redact_uri(uri)} has no column {column!r} (columns: {names}); set --url_field")


def split_source(source: tuple[str, str], storage_options: Optional[Mapping] = None) -> Iterator[tuple[str, str]]:
    """(format, argument) -> one (format, file) per list or manifest file that a glob or a
    brace range (``crawl/{00000..00009}.parquet``) names; any other source as it is."""
    fmt, value = source
    if fmt not in ("list",) + MANIFEST_FORMATS:
        yield source
        return
    for pattern in expand_braces(value):
        if has_glob(pattern):
            for uri, _ in list_pattern(pattern, storage_options):
                yield fmt, uri
        else:
            yield fmt, pattern


def check_source(source: tuple[str, str], url_field: str = "url", storage_options: Optional[Mapping] = None) -> None:
    """Fail early, on the driver, for a local file or folder, list or manifest that does not
    exist, or a CSV / Parquet manifest without the ``url_field`` column (raises
    FileNotFoundError / ValueError; a glob of manifests: its first file is checked). A glob
    that matches nothing is no error (a nightly crawl may have nothing new), nor is a remote
    URL (reading it decides) or a missing shard of a WebDataset range."""
    fmt, value = source
    if fmt in ("glob", "tar"):  # a shard of a range that is missing is a failed record
        literal = not has_glob(value) and not (fmt == "tar" and _BRACES.search(value))
        if literal and is_local(value) and not os.path.lexists(filesystem(value)[1]):
            raise FileNotFoundError(f"--input {value} does not exist (no such file or folder)")
        return
    if fmt not in ("list",) + MANIFEST_FORMATS:
        return
    for pattern in expand_braces(value):
        fs, path = filesystem(pattern, storage_options)
        if not has_glob(pattern) and not fs.isfile(path):
            raise FileNotFoundError(f"{fmt} input {redact_uri(pattern)} does not exist")
    first = next(split_source(source, storage_options), None)
    if fmt in ("csv", "parquet") and first:
        fs, path = filesystem(first[1], storage_options)
        with fs.open(path, "rb") as f:
            next(iter(_rows(f, fmt, (url_field,), url_field, first[1])), None)


def expand_source(source: tuple[str, str], url_field: str = "url", storage_options: Optional[Mapping] = None,
                  keep_fields=()):
    """(format, argument) -> InputItems. Globs and folders carry the listing's fingerprint;
    tar shards are items with ``shard=True``, opened later by ``ExpandShardsFn``. A line or
    cell that names nothing is an item that fails (``listed_item``); so is a manifest row
    that its crawler marked as failed (``CrawlFailed``, never fetched), and a manifest that
    cannot be read to its end (its rows before the damage are listed as usual). Manifest
    rows carry their ``url``, ``key`` and ``keep_fields``."""
    fmt, value = source
    if fmt == "list":
        for number, name in read_list_lines(value, storage_options):
            yield listed_item(name, value, f"line={number}")
    elif fmt in MANIFEST_FORMATS:
        try:
            for where, name, fields, failure in read_manifest_rows(value, fmt, url_field, keep_fields, storage_options):
                item = listed_item(name, value, where)._replace(fields=fields)
                yield item._replace(error=failure, error_type=CRAWL_FAILED) if failure and not item.error else item
        except Exception as e:  # noqa: BLE001 - an unreadable manifest is a dead letter, never a crash
            yield InputItem(listed_item(value).uri, error=f"cannot read the {fmt} manifest: {e}",
                            error_type=type(e).__name__)
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
    ``shard=True`` (see ``ExpandShards``); each file of a glob or brace range of lists or
    manifests is read on its own. With ``progress_dir``, the listed items are
    tallied (``pipeline.progress``) before they are spread."""

    def __init__(self, patterns=(), list_files=(), storage_options: Mapping | None = None, *,
                 input_format: str = "auto", url_field: str = "url", keep_fields=(),
                 progress_dir: Optional[str] = None):
        super().__init__()
        self.sources = sources(patterns, list_files, input_format)
        self.storage_options = dict(storage_options or {})
        self.url_field = url_field
        self.keep_fields = tuple(keep_fields)
        self.progress_dir = progress_dir

    def expand(self, pbegin):
        listed = (
            pbegin
            | "Sources" >> beam.Create(self.sources)
            | "SplitSources" >> beam.FlatMap(split_source, self.storage_options)
            | "SpreadSources" >> beam.Reshuffle()  # many manifests: read in parallel
            | "ExpandSources" >> beam.FlatMap(expand_source, self.url_field, self.storage_options, self.keep_fields)
        )
        if self.progress_dir:
            listed | "TallyListed" >> Tally(self.progress_dir, LISTED)
        return listed | "Spread" >> beam.Reshuffle()


class ExpandShards(beam.PTransform):
    """InputItems -> (items with tar shards opened into their image members, failed records
    of unreadable shards, (shard, fingerprint, members) of each shard read to its end); each
    member carries its sample's ``url``, ``key`` and ``keep_fields``."""

    def __init__(self, max_bytes: Optional[int] = None, storage_options: Mapping | None = None, keep_fields=()):
        super().__init__()
        self.max_bytes = max_bytes
        self.storage_options = dict(storage_options or {})
        self.keep_fields = tuple(keep_fields)

    def expand(self, items):
        shards = ExpandShardsFn(self.max_bytes, self.storage_options, self.keep_fields)
        out = items | "OpenShards" >> beam.ParDo(shards).with_outputs(
            FAILED, SHARDS, main="items"
        )
        return out.items, out[FAILED], out[SHARDS]
