"""Logs that cannot leak credentials: a filter that redacts URLs' passwords, tokens and
signatures in every record a handler writes, including tracebacks, whichever library
(fsspec, aiohttp, gcsfs, Beam) logged it."""

from __future__ import annotations

import logging

from pipeline.uris import redact_secrets

_FORMATTER = logging.Formatter()


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is the logging module's to report
            return True
        safe = redact_secrets(message)
        if safe != message:
            record.msg, record.args = safe, ()
        if record.exc_info:  # format the traceback now, redacted; handlers print exc_text as it is
            record.exc_text = record.exc_text or _FORMATTER.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = redact_secrets(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_secrets(record.stack_info)
        return True


def install_redaction() -> None:
    """Add ``RedactSecrets`` to every handler of the root logger (and to Python's
    last-resort handler) that lacks it. Called by the driver and in each worker's DoFn
    setup, after the runner has installed its own handlers."""
    handlers = list(logging.getLogger().handlers) + [h for h in (logging.lastResort,) if h is not None]
    for handler in handlers:
        if not any(isinstance(f, RedactSecrets) for f in handler.filters):
            handler.addFilter(RedactSecrets())
