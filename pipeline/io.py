"""Reading image URIs: expanding patterns and list files, and reading bytes with retries.

Everything goes through fsspec, so local paths, ``gs://`` (gcsfs), ``s3://``, ``http(s)://``
and any other fsspec URL work the same way.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping, Optional, TypeVar

from pipeline.tar import read_member, split_member_uri
from pipeline.uris import LOCAL_PROTOCOLS, filesystem, get_protocol, is_local, local_uri, printable, redact_uri

log = logging.getLogger(__name__)

_GLOB_CHARS = set("*?[")


class ReadError(IOError):
    """Reading a URI failed for good (after retries, or at once for permanent errors)."""


class InputTooLarge(ReadError):
    """The file is larger than ``max_bytes``."""


class NotARegularFile(ReadError):
    """A local path that is a FIFO, socket or device: opening or reading it could block or
    never end, so it is refused before it is opened."""


class ReadTimeout(TimeoutError):
    """One read attempt took longer than ``timeout_s`` (transient: retried)."""


class IncompleteRead(IOError):
    """The storage returned fewer bytes than the file's size (transient: retried)."""


# Errors that retrying cannot fix. A ReadError is already final.
PERMANENT_ERRORS = (
    FileNotFoundError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
    ReadError,
    ValueError,
    ImportError,
)


@dataclass(frozen=True)
class ReadConfig:
    max_bytes: int = 50 * 1024 * 1024
    retries: int = 3
    backoff_s: float = 0.2
    storage_options: Mapping[str, Mapping] = field(default_factory=dict)
    timeout_s: Optional[float] = 60.0  # per attempt; None or 0: no limit


def has_glob(pattern: str) -> bool:
    return any(c in _GLOB_CHARS for c in pattern.split("://", 1)[-1])


def expand_pattern(pattern: str, storage_options: Mapping | None = None) -> Iterator[str]:
    """URIs named by ``pattern``: a glob, a folder (every file below it, hidden ones
    skipped), or a single file or URL (yielded as it is; reading it reports any error).
    A listed local file whose name is not UTF-8 is named by its ``file://`` URI
    (``pipeline.uris.local_uri``)."""
    for uri, _ in list_pattern(pattern, storage_options):
        yield uri


def list_pattern(pattern: str, storage_options: Mapping | None = None) -> Iterator[tuple[str, Optional[dict]]]:
    """(URI, the listing's info dict or None) for each URI of ``expand_pattern``: a glob or
    folder listing returns size, mtime / etag / generation at no extra cost."""
    protocol = get_protocol(pattern)
    if protocol in ("http", "https"):
        yield pattern, None
        return
    fs, path = filesystem(pattern, storage_options)

    def full(p: str) -> str:
        return local_uri(p) if protocol in LOCAL_PROTOCOLS else fs.unstrip_protocol(p)

    if has_glob(pattern):
        # Like a shell, a wildcard does not match hidden names (.tmp files, .DS_Store),
        # and a pattern that matches nothing but names a file (img[1].jpg) is that file.
        show_hidden = path.rsplit("/", 1)[-1].startswith(".")
        found = fs.glob(path, detail=True)
        matches = sorted(m for m in found if show_hidden or not m.rsplit("/", 1)[-1].startswith("."))
        if not matches and fs.isfile(path):
            found, matches = {}, [path]
        if not matches:
            log.warning("pattern %s matched no files", printable(redact_uri(pattern)))
        for match in matches:
            yield full(match), found.get(match)
    elif fs.isdir(path):
        found = fs.find(path, detail=True)
        for name in sorted(found):
            if not any(part.startswith(".") for part in name[len(path.rstrip("/")):].split("/")):
                yield full(name), found[name]
    else:
        yield pattern, None


def read_list_lines(list_uri: str, storage_options: Mapping | None = None) -> Iterator[tuple[int, str]]:
    """(line number, URI or name) from a text file, one a line; blank lines and ``#``
    comments are skipped. Bytes that are not UTF-8 are kept as surrogate escapes
    (``os.fsdecode``'s form): ``pipeline.uris.uri_of_name`` makes a URI of them."""
    fs, path = filesystem(list_uri, storage_options)
    with fs.open(path, "rt", encoding="utf-8", errors="surrogateescape") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if line and not line.startswith("#"):
                yield number, line


def read_bytes(uri: str, config: ReadConfig = ReadConfig(), sleep=time.sleep) -> bytes:
    """The bytes of ``uri``, at most ``config.max_bytes``. Transient errors (network,
    timeouts, incomplete reads) are retried with exponential backoff; permanent ones and
    the last failure raise ``ReadError`` with a readable reason."""
    attempt = 0
    while True:
        try:
            return call_with_timeout(lambda: _read_once(uri, config), config.timeout_s)
        except Exception as e:
            error = deciding_error(e)
            if isinstance(error, PERMANENT_ERRORS):
                raise _read_error(error, uri) from e
            if attempt >= config.retries:  # network errors, timeouts, 5xx: worth another try
                raise _read_error(error, uri, attempt + 1) from e
            sleep(config.backoff_s * (2 ** attempt))
            attempt += 1


def _read_once(uri: str, config: ReadConfig) -> bytes:
    if split_member_uri(uri):  # shard.tar#member.jpg: a WebDataset member
        return read_member(uri, config.max_bytes, config.storage_options)
    fs, path = filesystem(uri, config.storage_options)
    local = is_local(uri)
    if local:
        _check_regular_file(path)
    limit = config.max_bytes or None
    # Local files skip fsspec's wrapper (a third of a local read's cost).
    with (open(path, "rb") if local else fs.open(path, "rb")) as f:
        size = os.fstat(f.fileno()).st_size if local else getattr(f, "size", None)
        size = size if isinstance(size, int) else None
        if limit and size is not None and size > limit:
            raise InputTooLarge(f"file is larger than max_bytes={limit} ({size} bytes)")
        data = _read_up_to(f, limit + 1 if limit else None)
    if limit and len(data) > limit:
        raise InputTooLarge(f"file is larger than max_bytes={limit}")
    if size is not None and len(data) < size:
        raise IncompleteRead(f"got {len(data)} of {size} bytes")
    return data


def _read_up_to(f, limit: Optional[int]) -> bytes:
    """Read until end of file or ``limit`` bytes: one ``read`` may return less (a socket,
    a network stream), so keep reading until it returns nothing."""
    chunks, total = [], 0
    while limit is None or total < limit:
        chunk = f.read(-1 if limit is None else limit - total)
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def _check_regular_file(path: str) -> None:
    mode = os.stat(path).st_mode  # FileNotFoundError for a dangling link, PermissionError
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(path)
    if not stat.S_ISREG(mode):
        kind = "FIFO" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode) else "device"
        raise NotARegularFile(f"not a regular file ({kind})")


T = TypeVar("T")


def call_with_timeout(fn: Callable[[], T], timeout_s: Optional[float]) -> T:
    """``fn()``, or ``ReadTimeout`` once ``timeout_s`` has passed. The call runs in a
    daemon thread: a read that hangs for good is abandoned there and cannot keep the
    worker from exiting (a ThreadPoolExecutor's threads are joined at exit)."""
    if not timeout_s:
        return fn()
    outcome: dict = {}

    def target():
        try:
            outcome["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            outcome["error"] = e

    thread = threading.Thread(target=target, name="textfilter-read", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise ReadTimeout(f"read timed out after {timeout_s:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def deciding_error(e: Exception) -> Exception:
    """The error that decides between retrying and giving up. fsspec's HTTP filesystem
    reports any failure to reach a URL (a 503, a 403, a reset connection) as
    ``FileNotFoundError`` raised from the real error: only a 404 or 410 is "not found",
    a 401 or 403 is refused for good, anything else (5xx, 429, connection errors) is
    transient."""
    cause = e.__cause__
    if not isinstance(e, FileNotFoundError) or cause is None or isinstance(cause, FileNotFoundError):
        return e
    status = getattr(cause, "status", None)  # aiohttp's ClientResponseError
    if status in (404, 410):
        return e
    if status in (401, 403):
        return ReadError(f"permission denied (HTTP {status})")
    return cause if status is not None or _is_network_error(cause) else e


def _is_network_error(e: BaseException) -> bool:
    try:
        from aiohttp import ClientError
    except ImportError:  # pragma: no cover - aiohttp comes with fsspec's HTTP support
        ClientError = ConnectionError
    return isinstance(e, (ConnectionError, TimeoutError, ClientError))


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
