"""URI helpers: filesystems through fsspec, redaction of secrets, safe file names."""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from typing import Mapping
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

import fsspec
from fsspec.registry import known_implementations, registry

LOCAL_PROTOCOLS = ("file", "local")

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


def filesystem(uri: str, storage_options: Mapping[str, Mapping] | None = None):
    """(fsspec filesystem, path) for ``uri``. ``storage_options`` maps a protocol
    ("gs", "s3", "http", ...) to the keyword arguments of its filesystem."""
    protocol = get_protocol(uri)
    kwargs = dict((storage_options or {}).get(protocol, {}))
    if protocol in LOCAL_PROTOCOLS:
        # Any file name is a name: no URL chaining ("::") or other parsing of local paths.
        fs = fsspec.filesystem("file", **kwargs)
        return fs, fs._strip_protocol(uri)
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
