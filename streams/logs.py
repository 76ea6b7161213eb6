"""Structured logs: ``logger.info("message", extra={"fields": {...}})``.

Two formats: ``text`` (``2026-05-05T11:17:40Z WARNING streams.x message key=value``) for a
terminal, ``json`` (one object per line) for a collector. Log calls never pass event
content (titles, summaries, user names or matched text) in fields; positions, counts and
reasons only.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

from sinks.alert import printable

__all__ = ["RateLimit", "printable", "setup_logging"]


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))
        fields: dict[str, Any] = getattr(record, "fields", None) or {}
        extra = " ".join(f"{k}={_text(v)}" for k, v in fields.items())
        line = f"{ts} {record.levelname} {record.name}: {printable(record.getMessage())}"
        if extra:
            line += " " + extra
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _text(v: Any) -> str:
    s = printable(str(v))
    return repr(s) if (" " in s or not s) else s


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        d: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        d.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            d["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(d, default=str).decode()


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


class RateLimit:
    """At most one log line per ``interval_seconds`` per key; counts what it suppressed."""

    def __init__(self, interval_seconds: float = 5.0) -> None:
        self.interval = interval_seconds
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def allow(self, key: str) -> int | None:
        """None to stay quiet, else how many were suppressed since the last line."""
        now = time.monotonic()
        if now - self._last.get(key, -1e9) < self.interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._suppressed.pop(key, 0)
