"""The Wikimedia EventStreams source: SSE over aiohttp, resuming exactly after any failure.

The reconnect loop owns the stream position (the SSE ``id``, a JSON array of
topic/partition/timestamp-or-offset entries) and the retry policy:

- clean close (the server ends every connection after ~15 minutes): reconnect at once,
  with ``Last-Event-ID``;
- abrupt drop, refused connection, 5xx, a stall (no bytes for ``stall_timeout_seconds``),
  a server ``event: error``: reconnect after an exponential backoff with jitter;
- HTTP 429: wait at least ``Retry-After``;
- 400, 401, 403, 404, 405, 410, 451: will not heal by retrying; raise ``FatalStreamError``
  with the server's explanation.

Timestamp positions are resumed with an overlap of ``resume_overlap_ms``: KafkaSSE stores
"last timestamp + 1", so events sharing the last millisecond would otherwise be skipped.
The re-delivered events are dropped downstream by event id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import aiohttp
import orjson

from sinks.metrics import Metrics
from sinks.retry import Backoff, parse_retry_after
from streams.event import RawEvent
from streams.sse import SSEDecoder

__all__ = [
    "DEFAULT_STREAM_URL",
    "PLACEHOLDER_USER_AGENT",
    "EventStreamsConfig",
    "EventStreamsSource",
    "FatalStreamError",
    "normalize_since",
    "stream_names",
    "user_agent_problem",
]

log = logging.getLogger(__name__)

DEFAULT_STREAM_URL = "https://stream.wikimedia.org/v2/stream/recentchange"
PLACEHOLDER_USER_AGENT = "rcwatch/0.1 (CHANGE-ME: your contact URL or email)"

_FATAL_STATUSES = frozenset({400, 401, 403, 404, 405, 410, 451})
_MAX_ERROR_BODY = 2048


def _positive(value: float) -> str | None:
    return None if value > 0 else "must be greater than 0"


@dataclass(frozen=True)
class EventStreamsConfig:
    """How to reach the stream. Builds an ``EventStreamsSource``."""

    url: str = DEFAULT_STREAM_URL
    user_agent: str = PLACEHOLDER_USER_AGENT
    since: str | None = None
    connect_timeout_seconds: float = field(default=10.0, metadata={"gt": 0})
    stall_timeout_seconds: float = field(default=30.0, metadata={"gt": 0})
    backoff_initial_seconds: float = field(default=0.5, metadata={"gt": 0})
    backoff_max_seconds: float = field(default=60.0, metadata={"gt": 0})
    max_event_bytes: int = field(default=16 << 20, metadata={"min": 1 << 20})
    resume_overlap_ms: int = field(default=1, metadata={"min": 0})


class FatalStreamError(Exception):
    """The server refused us in a way retrying will not fix."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def stream_names(url: str) -> str:
    """The comma-separated stream list of an EventStreams URL (``recentchange,...``)."""
    return urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]


def _is_wikimedia(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return any(host == d or host.endswith("." + d) for d in ("wikimedia.org", "wikipedia.org"))


def user_agent_problem(url: str, user_agent: str) -> str | None:
    """Why this User-Agent must not be sent to this URL, or None when it is fine."""
    ua = user_agent.strip()
    if not _is_wikimedia(url):
        return None if ua else "user_agent is empty"
    if not ua or "CHANGE-ME" in ua:
        return (
            "Wikimedia refuses (HTTP 403) clients without a descriptive User-Agent. Set "
            "stream.user_agent in the config or --user-agent, e.g. "
            "'rcwatch/0.1 (https://example.org/you; you@example.org)'"
        )
    lowered = ua.lower()
    if lowered.startswith(("python", "aiohttp", "curl/", "wget/")):
        return f"User-Agent {ua!r} looks like a library default; Wikimedia answers it with 403"
    return None


_RELATIVE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def normalize_since(value: str, now: datetime | None = None) -> str:
    """Validate ``since``: ISO-8601, milliseconds since the epoch, or a relative age
    (``15m``, ``2h``, ``1d``) turned into an ISO timestamp. Raises ValueError."""
    v = value.strip()
    if v.isdigit():
        return v
    unit = v[-1:].lower()
    number = v[:-1].lstrip("-")
    if unit in _RELATIVE_UNITS and number.replace(".", "", 1).isdigit():
        base = now or datetime.now(UTC)
        when = base - timedelta(seconds=float(number) * _RELATIVE_UNITS[unit])
        return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    try:
        parsed = datetime.fromisoformat(v.replace("Z", "+00:00") if v.endswith("Z") else v)
    except ValueError:
        raise ValueError(
            f"since {value!r} is not an ISO-8601 time, milliseconds since the epoch, "
            "or an age such as 15m, 2h, 1d"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def resume_id(last_event_id: str, overlap_ms: int) -> str:
    """The ``Last-Event-ID`` to send: timestamp entries moved back by ``overlap_ms``."""
    if overlap_ms <= 0:
        return last_event_id
    try:
        entries = orjson.loads(last_event_id)
    except orjson.JSONDecodeError:
        return last_event_id
    if not isinstance(entries, list):
        return last_event_id
    changed = False
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("timestamp"), int):
            entry["timestamp"] -= overlap_ms
            changed = True
    return orjson.dumps(entries).decode() if changed else last_event_id


class _Reconnect(Exception):
    def __init__(self, reason: str, delay: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay


class EventStreamsSource:
    """Yields batches of raw events; ``last_event_id`` is the position after the last one."""

    def __init__(
        self,
        config: EventStreamsConfig,
        metrics: Metrics,
        *,
        last_event_id: str | None = None,
        since: str | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.last_event_id = last_event_id
        self.since = since
        self._session = session
        self._own_session = session is None
        self._stopping = asyncio.Event()
        self.backoff = Backoff(config.backoff_initial_seconds, config.backoff_max_seconds)
        self.connected = False
        self.connections = 0
        self.disconnected_since = time.monotonic()

    def stop(self) -> None:
        self._stopping.set()

    async def batches(self) -> AsyncIterator[list[RawEvent]]:
        session = self._session
        if session is None:
            session = aiohttp.ClientSession(read_bufsize=1 << 20, trust_env=True)
        try:
            while not self._stopping.is_set():
                delivered = False
                try:
                    async with aclosing(self._connection(session)) as connection:
                        async for batch in connection:
                            delivered = True
                            yield batch
                    raise _Reconnect("eof")
                except _Reconnect as r:
                    reason, forced_delay = r.reason, r.delay
                except (aiohttp.ServerTimeoutError, TimeoutError):
                    reason, forced_delay = ("stall" if self.connected else "timeout"), None
                except aiohttp.ClientConnectorError:
                    reason, forced_delay = "refused", None
                except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError):
                    reason, forced_delay = "drop", None
                except aiohttp.ClientError:
                    reason, forced_delay = "drop", None
                finally:
                    if self.connected:
                        self.connected = False
                        self.disconnected_since = time.monotonic()
                        self.metrics.stream_connected.set(0)
                if self._stopping.is_set():
                    break
                if delivered:
                    self.backoff.reset()
                delay = 0.0 if (reason == "eof" and delivered) else self.backoff.next_delay()
                if forced_delay is not None:
                    delay = max(delay, forced_delay)
                self.metrics.reconnects.labels(reason).inc()
                log.warning(
                    "stream disconnected; reconnecting",
                    extra={"fields": {"reason": reason, "delay_seconds": round(delay, 3)}},
                )
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), delay)
        finally:
            if self._own_session:
                await session.close()

    async def _connection(
        self, session: aiohttp.ClientSession
    ) -> AsyncGenerator[list[RawEvent], None]:
        cfg = self.config
        headers = {"User-Agent": cfg.user_agent, "Accept": "text/event-stream"}
        params: dict[str, str] = {}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = resume_id(self.last_event_id, cfg.resume_overlap_ms)
        elif self.since is not None:
            params["since"] = self.since
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=cfg.connect_timeout_seconds,
            sock_connect=cfg.connect_timeout_seconds,
            sock_read=cfg.stall_timeout_seconds,
        )
        async with session.get(cfg.url, headers=headers, params=params, timeout=timeout) as resp:
            if resp.status != 200:
                await self._refused(resp)
            ctype = resp.headers.get("Content-Type", "")
            if not ctype.startswith("text/event-stream"):
                raise _Reconnect("protocol")
            self.connected = True
            self.connections += 1
            self.metrics.stream_connected.set(1)
            log.info(
                "stream connected",
                extra={"fields": {"url": cfg.url, "resumed": self.last_event_id is not None}},
            )
            decoder = SSEDecoder(cfg.max_event_bytes, self.last_event_id)
            stream_bytes = self.metrics.stream_bytes
            async for chunk in resp.content.iter_any():
                stream_bytes.inc(len(chunk))
                events = decoder.feed(chunk)
                if not events:
                    continue
                now_ns = time.time_ns()
                batch: list[RawEvent] = []
                server_error = False
                for ev in events:
                    if ev.event == "message":
                        if ev.oversized:
                            self.metrics.events_dropped.labels("oversized").inc()
                            log.error(
                                "event larger than max_event_bytes dropped",
                                extra={"fields": {"sse_id": ev.id, "limit": cfg.max_event_bytes}},
                            )
                        else:
                            batch.append(RawEvent(ev.id, ev.data, now_ns))
                    elif ev.event == "error":
                        server_error = True
                        self.metrics.stream_error_events.inc()
                        log.warning(
                            "server sent an error event",
                            extra={"fields": {"error": _error_summary(ev.data)}},
                        )
                    self.last_event_id = ev.id if ev.id is not None else self.last_event_id
                if batch:
                    yield batch
                if server_error:
                    raise _Reconnect("server_error")
                if self._stopping.is_set():
                    return

    async def _refused(self, resp: aiohttp.ClientResponse) -> None:
        status = resp.status
        try:
            body = (await resp.content.read(_MAX_ERROR_BODY)).decode("utf-8", "replace")
        except (aiohttp.ClientError, TimeoutError):
            body = ""
        detail = _error_summary(body.encode()) if body else resp.reason or ""
        if status == 429:
            raise _Reconnect("http_429", parse_retry_after(resp.headers.get("Retry-After")))
        if status >= 500 or status not in _FATAL_STATUSES:
            raise _Reconnect(f"http_{status // 100}xx" if status >= 500 else f"http_{status}")
        hint = ""
        if status == 403:
            hint = " (Wikimedia requires a descriptive User-Agent: set --user-agent)"
        elif status in (400, 404) and self.last_event_id is not None:
            hint = (
                " (the server rejected the saved stream position; if the stream URL changed "
                "or the position is too old, restart with --reset-checkpoint)"
            )
        raise FatalStreamError(f"HTTP {status} from {self.config.url}: {detail}{hint}", status)


def _error_summary(data: bytes) -> str:
    """A short, content-free description of an error payload."""
    try:
        d = orjson.loads(data)
    except orjson.JSONDecodeError:
        return data[:200].decode("utf-8", "replace")
    if isinstance(d, dict):
        parts = [str(d[k])[:200] for k in ("type", "title", "message", "detail") if d.get(k)]
        return "; ".join(parts)
    return str(d)[:200]
