"""Reading image URIs: expanding patterns and list files, and reading bytes with retries.

Everything goes through fsspec, so local paths, ``gs://`` (gcsfs), ``s3://``, ``http(s)://``
and any other fsspec URL work the same way.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Iterator, Mapping

import apache_beam as beam
from fsspec.utils import get_protocol

from pipeline.uris import filesystem, redact_uri

log = logging.getLogger(__name__)

_GLOB_CHARS = set("*?[")


class ReadError(IOError):
    """Reading a URI failed for good (after retries, or at once for permanent errors)."""


class InputTooLarge(ReadError):
    """The file is larger than ``max_bytes``."""


# Errors that retrying cannot fix.
PERMANENT_ERRORS = (
    FileNotFoundError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
    InputTooLarge,
    ValueError,
    ImportError,
)


@dataclass(frozen=True)
class ReadConfig:
    max_bytes: int = 50 * 1024 * 1024
    retries: int = 3
    backoff_s: float = 0.2
    storage_options: Mapping[str, Mapping] = field(default_factory=dict)


def has_glob(pattern: str) -> bool:
    return any(c in _GLOB_CHARS for c in pattern.split("://", 1)[-1])


def expand_pattern(pattern: str, storage_options: Mapping | None = None) -> Iterator[str]:
    """URIs named by ``pattern``: a glob, a folder (every file below it, hidden ones
    skipped), or a single file or URL (yielded as it is; reading it reports any error)."""
    protocol = get_protocol(pattern)
    if protocol in ("http", "https"):
        yield pattern
        return
    fs, path = filesystem(pattern, storage_options)

    def full(p: str) -> str:
        return p if protocol in ("file", "local") else fs.unstrip_protocol(p)

    if has_glob(pattern):
        # Like a shell, a wildcard does not match hidden names (.tmp files, .DS_Store).
        show_hidden = path.rsplit("/", 1)[-1].startswith(".")
        matches = sorted(m for m in fs.glob(path) if show_hidden or not m.rsplit("/", 1)[-1].startswith("."))
        if not matches:
            log.warning("pattern %s matched no files", redact_uri(pattern))
        for match in matches:
            yield full(match)
    elif fs.isdir(path):
        for found in sorted(fs.find(path)):
            if not any(part.startswith(".") for part in found[len(path.rstrip("/")):].split("/")):
                yield full(found)
    else:
        yield pattern


def read_uri_list(list_uri: str, storage_options: Mapping | None = None) -> Iterator[str]:
    """URIs from a text file, one a line; blank lines and ``#`` comments are skipped."""
    fs, path = filesystem(list_uri, storage_options)
    with fs.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                yield line


def read_bytes(uri: str, config: ReadConfig = ReadConfig(), sleep=time.sleep) -> bytes:
    """The bytes of ``uri``, at most ``config.max_bytes``. Transient errors are retried
    with exponential backoff; permanent ones and the last failure raise ``ReadError``."""
    attempt = 0
    while True:
        try:
            fs, path = filesystem(uri, config.storage_options)
            with fs.open(path, "rb") as f:
                limit = config.max_bytes + 1 if config.max_bytes else -1
                data = f.read(limit)
            if config.max_bytes and len(data) > config.max_bytes:
                raise InputTooLarge(f"file is larger than max_bytes={config.max_bytes}")
            return data
        except PERMANENT_ERRORS as e:
            raise _read_error(e, uri) from e
        except Exception as e:  # network errors, timeouts, 5xx: worth another try
            if attempt >= config.retries:
                raise _read_error(e, uri, attempt + 1) from e
            sleep(config.backoff_s * (2 ** attempt))
            attempt += 1


def _read_error(e: Exception, uri: str, attempts: int = 1) -> ReadError:
    if isinstance(e, ReadError):
        return e
    reason = {
        FileNotFoundError: "file not found",
        IsADirectoryError: "is a directory, not a file",
        NotADirectoryError: "a parent of the path is not a directory",
        PermissionError: "permission denied",
    }.get(type(e))
    text = reason or f"{type(e).__name__}: {e}"
    if attempts > 1:
        text += f" (after {attempts} attempts)"
    return ReadError(text)


class ReadImageUris(beam.PTransform):
    """Patterns and list files -> a reshuffled PCollection of image URIs."""

    def __init__(self, patterns=(), list_files=(), storage_options: Mapping | None = None):
        super().__init__()
        self.patterns = list(patterns)
        self.list_files = list(list_files)
        self.storage_options = dict(storage_options or {})

    def expand(self, pbegin):
        so = self.storage_options
        sources = [("pattern", p) for p in self.patterns] + [("list", f) for f in self.list_files]

        def expand_source(source):
            kind, value = source
            yield from (read_uri_list(value, so) if kind == "list" else expand_pattern(value, so))

        return (
            pbegin
            | "Sources" >> beam.Create(sources)
            | "ExpandSources" >> beam.FlatMap(expand_source)
            | "Spread" >> beam.Reshuffle()
        )
