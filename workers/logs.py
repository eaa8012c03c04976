"""Structured JSON logs with a redaction filter as the last line of defence.

The formatter never raises. When a formatter raises, Python's logging prints
the record's raw message and arguments to stderr ("--- Logging error ---"): a
cleartext key passed as an argument would be written as it is. So a record
whose message cannot be formatted (a bad format string, an argument whose
``__str__`` raises) is written as its message and the ``repr`` of each
argument, redacted like any other line; and the handler's own error path
(``SafeStreamHandler.handleError``) never writes the record's arguments.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from scanner.redact import crude, redact_text, safe_str


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # a bad format string or argument: the pieces, each as it is
        args = record.args if isinstance(record.args, tuple) else (record.args,)
        shown = " ".join(_repr(a) for a in args)
        return f"{safe_str(record.msg)} [unformattable arguments: {shown}]"


def _repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:
        return safe_str(value)


class RedactingJsonFormatter(logging.Formatter):
    """One JSON object per line; anything shaped like a key is redacted before writing.
    ``format`` never raises (see the module's docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        try:
            return self._format(record)
        except Exception:
            return self._fallback(record)

    def _format(self, record: logging.LogRecord) -> str:
        # Each piece is redacted as it is (a key after a newline is still after a
        # newline), and the JSON line once more as it is written.
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": safe_str(record.levelname),
            "logger": safe_str(record.name),
            "msg": redact_text(_message(record)),
        }
        for attr in ("task_id", "task_name", "fingerprint"):
            if hasattr(record, attr):
                entry[attr] = redact_text(safe_str(getattr(record, attr)))
        if record.exc_info:
            try:
                exc = self.formatException(record.exc_info)
            except Exception:
                exc = _repr(record.exc_info[1]) if isinstance(record.exc_info, tuple) else ""
            entry["exc"] = redact_text(exc)
        return redact_text(json.dumps(entry, ensure_ascii=False, default=safe_str))

    @staticmethod
    def _fallback(record: logging.LogRecord) -> str:
        """Whatever happened above: a line that names the record and holds nothing
        token-shaped of its message."""
        try:
            msg = crude(safe_str(getattr(record, "msg", "")))
        except Exception:
            msg = ""
        return json.dumps(
            {
                "level": safe_str(getattr(record, "levelname", "ERROR")),
                "logger": safe_str(getattr(record, "name", "")),
                "msg": f"log record could not be formatted: {msg}",
            },
            ensure_ascii=True,
            default=lambda _: "?",
        )


class SafeStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler whose error path names the failure, never the record's
    message or arguments (``logging.Handler.handleError`` prints both)."""

    def handleError(self, record: logging.LogRecord) -> None:
        if not logging.raiseExceptions:
            return
        try:
            exc = sys.exc_info()[0]
            name = exc.__name__ if exc is not None else "error"
            sys.stderr.write(f"keysweep: a log record could not be written ({name})\n")
        except Exception:
            pass


def setup_logging(level: str = "INFO") -> None:
    handler = SafeStreamHandler(sys.stderr)
    handler.setFormatter(RedactingJsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
