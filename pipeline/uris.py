"""URI helpers: filesystems through fsspec, names that are not UTF-8, redaction of secrets,
safe file names.

File names on Linux (and tar member names) are bytes, not text. A URI is always valid
Unicode text, so that it survives JSON, Beam's coders, fsspec and the state store: a local
path whose bytes are not valid UTF-8 is written as a ``file://`` URI with its bytes
percent-encoded (``/crawl/caf\xe9.jpg`` -> ``file:///crawl/caf%E9.jpg``); a ``file://`` URI
is always percent-decoded, as URLs are, and a plain path is always taken literally, so a
name that holds ``%E9`` as text is never misread. A tar member whose name is not UTF-8 (or
holds ``#``) is written ``shard.tar##`` + its percent-encoded name (see ``pipeline.tar``).
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from typing import Mapping
from urllib.parse import parse_qsl, quote, quote_plus, unquote_to_bytes, urlencode, urlsplit, urlunsplit

import fsspec
from fsspec.registry import known_implementations, registry

LOCAL_PROTOCOLS = ("file", "local")
FILE_URI = "file://"
# quote() leaves letters, digits and "_.-~" as they are; "/" stays the path separator.
_PATH_SAFE = "/"
# Characters a URL keeps as they are when the bytes of a name are percent-encoded in it.
_URL_SAFE = "/:@!$&'()*+,;=?#[]%~"
# "shard.tar#member.jpg": a WebDataset member; "shard.tar##<percent-encoded>": one whose
# name is not UTF-8 or holds "#" (see pipeline.tar.member_uri).
MEMBER_URI = re.compile(r"^(?P<shard>.+\.tar)#(?P<member>#?[^#]+)$", re.IGNORECASE)

# "gs://...", or a chained fsspec URL "simplecache::gs://...".
_SCHEME = re.compile(r"^(?P<protocol>[A-Za-z][A-Za-z0-9+.\-]*)(?P<sep>://|::)")

# Query parameters that carry credentials in signed or token URLs.
_SECRET_PARAMS = re.compile(
    r"(sig|signature|token|key|secret|password|passwd|pwd|credential|auth|session|security|policy|x-amz-|x-goog-)",
    re.IGNORECASE,
)
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)[^/@\s]*@")
# A secret query parameter anywhere in free text: "...?X-Goog-Signature=abc&..." (value replaced).
_VALUE = r"[^&\s'\"<>#]"
_SECRET_PARAM_IN_TEXT = re.compile(
    rf"(?P<key>[?&;][^=&\s'\"<>#]*?{_SECRET_PARAMS.pattern}[^=&\s'\"<>#]*=){_VALUE}*", re.IGNORECASE
)


def get_protocol(uri: str) -> str:
    """The fsspec protocol of ``uri``; "file" for a local path, whatever its name holds.
    Unlike ``fsspec.utils.get_protocol``, a local file named ``a::b.jpg`` stays local: ``::``
    chains URLs only after a known protocol (``simplecache::gs://...``)."""
    m = _SCHEME.match(uri)
    if m and (m["sep"] == "://" or m["protocol"] in known_implementations or m["protocol"] in registry):
        return m["protocol"]
    return "file"


def is_local(uri: str) -> bool:
    return get_protocol(uri) in LOCAL_PROTOCOLS


def is_text(name: str) -> bool:
    """True where ``name`` is valid Unicode text (it encodes to UTF-8): no surrogate escapes
    of undecodable bytes, as ``os.fsdecode`` and ``os.listdir`` return them."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable(text: str) -> str:
    """``text`` safe to write anywhere (JSON, logs): undecodable bytes and lone surrogates
    as backslash escapes (``caf\\xe9``); valid text as it is."""
    if is_text(text):
        return text
    try:
        return os.fsencode(text).decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # lone surrogates that are no bytes
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def percent_encoded(raw: bytes) -> str:
    """``raw`` with every byte but letters, digits, ``_.-~`` and ``/`` percent-encoded."""
    return quote(raw, safe=_PATH_SAFE)


def file_uri(path: str) -> str:
    """The ``file://`` URI of a local path: its absolute path's bytes, percent-encoded.
    ``path`` may hold undecodable bytes as surrogate escapes (``os.fsdecode``'s form);
    a string with other lone surrogates names no file (UnicodeEncodeError, a ValueError)."""
    return FILE_URI + percent_encoded(os.fsencode(os.path.abspath(path)))


def local_path(uri: str) -> str:
    """The path a local URI names: a ``file://`` URI percent-decoded (RFC 8089, any bytes
    back as ``os.fsdecode`` gives them), a plain path as it is."""
    if uri.startswith(FILE_URI):
        return os.fsdecode(unquote_to_bytes(os.fsencode(uri[len(FILE_URI):])))
    return uri


def local_uri(path: str) -> str:
    """The URI of a listed local file: its path, or its ``file://`` URI where the path is
    not valid UTF-8, or would read as something else (a tar member ``x.tar#y.jpg``)."""
    return path if is_text(path) and not MEMBER_URI.match(path) else file_uri(path)


def uri_of_name(name: str) -> str:
    """The URI of a line of a list or a cell of a manifest that may hold bytes that are not
    UTF-8 (as surrogate escapes): valid text as it is; a local path as its ``file://`` URI;
    an http(s) URL with those bytes percent-encoded, as browsers send them. Raises
    ValueError where the bytes cannot name anything (object store names are UTF-8)."""
    if is_text(name):
        return name
    raw = os.fsencode(name)  # UnicodeEncodeError (a ValueError): lone surrogates, not bytes
    protocol = get_protocol(name)
    if protocol in LOCAL_PROTOCOLS:
        return file_uri(local_path(name))
    if protocol in ("http", "https"):
        return quote(raw, safe=_URL_SAFE)
    raise ValueError(f"a {protocol}:// name must be UTF-8 text")


def filesystem(uri: str, storage_options: Mapping[str, Mapping] | None = None):
    """(fsspec filesystem, path) for ``uri``. ``storage_options`` maps a protocol
    ("gs", "s3", "http", ...) to the keyword arguments of its filesystem."""
    protocol = get_protocol(uri)
    kwargs = dict((storage_options or {}).get(protocol, {}))
    if protocol in LOCAL_PROTOCOLS:
        # Any file name is a name: no URL chaining ("::") or other parsing of local paths.
        fs = fsspec.filesystem("file", **kwargs)
        return fs, fs._strip_protocol(local_path(uri))
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
        if not pairs:
            query = "REDACTED"
        elif any(_SECRET_PARAMS.search(k) for k, _ in pairs):
            query = urlencode([(k, "REDACTED" if _SECRET_PARAMS.search(k) else v) for k, v in pairs], safe="*")
    if netloc == parts.netloc and query == parts.query:
        return uri  # nothing to hide: as written (urlsplit drops tabs and newlines from a name)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str, uri: str) -> str:
    """An error message with ``uri`` (and any user:password@ in it) redacted. Libraries
    quote URLs in their messages after their own normalisation (``%40`` becomes ``@``,
    the user:password moves to a header), so each secret is also removed on its own."""
    safe = redact_uri(uri)
    if uri and uri != safe:
        text = text.replace(uri, safe)
        parts = urlsplit(uri) if "://" in uri else None
        if parts is not None and parts.query:
            text = text.replace(parts.query, urlsplit(safe).query)
        for secret in sorted(_secrets(uri), key=len, reverse=True):
            text = text.replace(secret, "REDACTED")
    return redact_secrets(text)


def redact_secrets(text: str) -> str:
    """Free text (a log line, a traceback) with the user:password@ and secret query values
    of every URL in it redacted, whichever URL it is."""
    return _SECRET_PARAM_IN_TEXT.sub(r"\g<key>REDACTED", _USERINFO.sub(r"\g<scheme>***@", text))


def _secrets(uri: str) -> set[str]:
    """The password (or a user name that is a token), and secret query values of ``uri``,
    as written, quoted and unquoted; values under 4 characters are left alone (replacing
    them would mangle the message)."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return set()
    values = [parts.password if parts.password else parts.username]
    raw_pairs = [pair.partition("=")[::2] for pair in parts.query.split("&")] if parts.query else []
    values += [v for k, v in raw_pairs if _SECRET_PARAMS.search(k)]
    values += [v for k, v in parse_qsl(parts.query, keep_blank_values=True) if _SECRET_PARAMS.search(k)]
    found = set()
    for v in filter(None, values):
        found.update({v, quote(v, safe=""), quote_plus(v)})
    return {v for v in found if len(v) >= 4}


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
