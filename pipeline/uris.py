"""URI helpers: filesystems through fsspec, redaction of secrets, safe file names."""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from typing import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import fsspec
from fsspec.utils import get_protocol

LOCAL_PROTOCOLS = ("file", "local")

# Query parameters that carry credentials in signed or token URLs.
_SECRET_PARAMS = re.compile(
    r"(sig|signature|token|key|secret|password|passwd|pwd|credential|auth|session|security|policy|x-amz-|x-goog-)",
    re.IGNORECASE,
)
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)[^/@\s]*@")


def is_local(uri: str) -> bool:
    return get_protocol(uri) in LOCAL_PROTOCOLS


def filesystem(uri: str, storage_options: Mapping[str, Mapping] | None = None):
    """(fsspec filesystem, path) for ``uri``. ``storage_options`` maps a protocol
    ("gs", "s3", "http", ...) to the keyword arguments of its filesystem."""
    protocol = get_protocol(uri)
    kwargs = dict((storage_options or {}).get(protocol, {}))
    return fsspec.core.url_to_fs(uri, **kwargs)


def join(base: str, name: str) -> str:
    """``base``/``name`` for local paths and URLs alike."""
    return os.path.join(base, name) if is_local(base) and "://" not in base else base.rstrip("/") + "/" + name


def redact_uri(uri: str) -> str:
    """``uri`` without passwords, tokens or signatures, safe for logs and dead letters:
    ``https://user:pw@host/a.jpg?X-Goog-Signature=abc`` ->
    ``https://***@host/a.jpg?X-Goog-Signature=REDACTED``."""
    if "://" not in uri:
        return uri
    try:
        parts = urlsplit(uri)
    except ValueError:
        return _USERINFO.sub(r"\g<scheme>***@", uri.split("?", 1)[0])
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if pairs:
            query = urlencode([(k, "REDACTED" if _SECRET_PARAMS.search(k) else v) for k, v in pairs], safe="*")
        else:
            query = "REDACTED"
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str, uri: str) -> str:
    """An error message with ``uri`` (and any user:password@ in it) redacted."""
    safe = redact_uri(uri)
    if uri and uri != safe:
        text = text.replace(uri, safe)
        parts = urlsplit(uri) if "://" in uri else None
        if parts is not None and parts.query:
            text = text.replace(parts.query, urlsplit(safe).query)
    return _USERINFO.sub(r"\g<scheme>***@", text)


def safe_name(uri: str, max_len: int = 80) -> str:
    """A collision-free, path-safe file name for ``uri``: a hash of the full URI plus a
    sanitised base name. Never contains a path separator, never starts with a dot, and
    is plain ASCII, so it cannot escape the folder it is written to."""
    digest = hashlib.sha256(uri.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    base = urlsplit(uri).path if "://" in uri else uri
    base = base.replace("\\", "/").rsplit("/", 1)[-1]
    base = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode("ascii")
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._-")[:max_len]
    return f"{digest}_{base}" if base else digest
