"""The Wikimedia EventStreams source: SSE over aiohttp, resuming exactly after any failure.

The reconnect loop owns the stream position (the SSE ``id``, see ``streams.source.position``) and
the retry policy:

- clean close (the server ends every connection after ~15 minutes): reconnect at once,
  with ``Last-Event-ID``;
- abrupt drop, refused connection, DNS or TLS failure, 5xx, a stall (no bytes for
  ``stall_timeout_seconds``), a server ``event: error``: reconnect after an exponential
  backoff with jitter;
- HTTP 429: wait at least ``Retry-After``;
- 400, 401, 403, 404, 405, 410, 451: will not heal by retrying; raise ``FatalStreamError``
  with the server's explanation.

Every id is checked before it becomes the position (one that could not be sent back is
counted and skipped; the last good position stays), and live-end entries (``offset`` -1)
are pinned to a timestamp no later than the connection's start, so a saved position can
never skip what a topic produced while rcwatch was away. Timestamp positions are resumed
with an overlap of ``resume_overlap_ms``: KafkaSSE stores "last timestamp + 1", so events
sharing the last millisecond would otherwise be skipped. What a resume delivers again is
recognised here (``_Redeliveries``) and neither yielded nor counted as an event; after a
restart, the pipeline drops it by event id. A clean close of a connection that brought
events, even only repeated ones (an idle stream), is the routine close.

Failures are diagnosable: the first failure and every change of cause is logged with the
host and the cause (DNS, refused, TLS, timeout, HTTP status and the server's message),
repeats are summarised, ``rcwatch_stream_consecutive_failures`` counts them, and after
``position_failure_hint_after`` identical 5xx answers to the same saved position the log
says that the position itself may be the cause.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import ssl
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from detectors.event import RawEvent
from sinks.metrics import Metrics
from sinks.retry import Backoff, parse_retry_after
from streams.logs import RateLimit, printable
from streams.source.position import (
    PositionError,
    check,
    next_position,
    resume_header,
    timestamps,
)
from streams.source.sse import SSEDecoder

__all__ = [
    "DEFAULT_STREAM_URL",
    "PLACEHOLDER_USER_AGENT",
    "RETENTION_DAYS",
    "EventStreamsConfig",
    "EventStreamsSource",
    "FatalStreamError",
    "ms_to_iso",
    "parse_since",
    "since_param",
    "stream_names",
    "user_agent_problem",
]

log = logging.getLogger(__name__)

DEFAULT_STREAM_URL = "https://stream.wikimedia.org/v2/stream/recentchange"
PLACEHOLDER_USER_AGENT = "rcwatch/0.1 (CHANGE-ME: your contact URL or email)"
# EventStreams keeps between 7 and 31 days of history, depending on the stream
RETENTION_DAYS = 31

_FATAL_STATUSES = frozenset({400, 401, 403, 404, 405, 410, 451})
_MAX_ERROR_BODY = 2048
_REPEAT_SUMMARY_SECONDS = 60.0


# -- since ----------------------------------------------------------------------------------

_RELATIVE = re.compile(r"-?(\d+(?:\.\d+)?)([smhd])", re.IGNORECASE)
_RELATIVE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(
    value: str, *, now: datetime | None = None, retention_days: float | None = RETENTION_DAYS
) -> int:
    """``since`` as milliseconds since the epoch. Takes ISO-8601 (``2026-05-05T11:17Z``;
    without a zone: UTC), an age (``90s``, ``15m``, ``2h``, ``1d``) or epoch milliseconds.
    Raises ValueError for anything else, for epoch *seconds* (which would silently mean
    1970), for a time in the future, and (unless ``retention_days`` is None) for a time
    older than the service keeps."""
    v = value.strip()
    base = now or datetime.now(UTC)
    now_ms = int(base.timestamp() * 1000)
    if v.isascii() and v.isdigit():
        if len(v) > 15:
            raise ValueError(f"since {value!r} is not a time: too many digits for epoch ms")
        ms = int(v)
        if retention_days is not None and 0 < ms < 100_000_000_000:  # before 1973
            raise ValueError(
                f"since {value!r} looks like seconds since the epoch; EventStreams takes "
                f"milliseconds (e.g. {ms * 1000}), an ISO-8601 time or an age such as 2h"
            )
    elif m := _RELATIVE.fullmatch(v):
        seconds = float(m.group(1)) * _RELATIVE_UNITS[m.group(2).lower()]
        ms = now_ms - int(seconds * 1000)
    else:
        try:
            parsed = datetime.fromisoformat(v.replace("Z", "+00:00") if v.endswith("Z") else v)
        except ValueError:
            raise ValueError(
                f"since {value!r} is not an ISO-8601 time, milliseconds since the epoch, "
                "or an age such as 15m, 2h, 1d"
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        ms = int(parsed.timestamp() * 1000)
    if retention_days is not None:
        if ms > now_ms + 60_000:
            raise ValueError(f"since {value!r} is in the future")
        oldest = now_ms - int(retention_days * 86_400_000)
        if ms < oldest:
            age = timedelta(milliseconds=now_ms - ms)
            raise ValueError(
                f"since {value!r} is {age.days} days ago; EventStreams keeps at most about "
                f"{retention_days:g} days of history (7 to 31, depending on the stream)"
            )
    return ms


def _check_since(value: str) -> str | None:
    try:
        parse_since(value)
    except ValueError as exc:
        return str(exc)
    return None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def since_param(ms: int) -> str:
    """The ``since`` query value for a time in epoch milliseconds: ISO-8601, UTC, with
    milliseconds (``2026-05-05T11:17:40.123Z``). The only form to send (FACTS.md): the
    service's code leaves a numeric value a string, which its Kafka client's offset lookup
    reads as timestamp 0, so reading starts at the beginning of retention. A time at or
    before the epoch is sent as 1 ms after it: a parsed 0 is false in the service's
    JavaScript and means the live end (no real event is that old, so nothing is skipped).
    Raises ValueError past the year 9999."""
    try:
        when = _EPOCH + timedelta(milliseconds=max(ms, 1))
    except OverflowError:
        raise ValueError(f"{ms} ms since the epoch is not a time") from None
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ms_to_iso(ms: int) -> str:
    """A time in epoch milliseconds for people (logs): ISO-8601 with milliseconds."""
    try:
        when = _EPOCH + timedelta(milliseconds=ms)
    except OverflowError:
        return f"{ms} ms since the epoch"
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- configuration ----------------------------------------------------------------------------


@dataclass(frozen=True)
class EventStreamsConfig:
    """How to reach the stream. Builds an ``EventStreamsSource``."""

    url: str = DEFAULT_STREAM_URL
    user_agent: str = PLACEHOLDER_USER_AGENT
    since: str | None = field(default=None, metadata={"check": _check_since})
    connect_timeout_seconds: float = field(default=10.0, metadata={"gt": 0})
    stall_timeout_seconds: float = field(default=30.0, metadata={"gt": 0})
    backoff_initial_seconds: float = field(default=0.5, metadata={"gt": 0})
    backoff_max_seconds: float = field(default=60.0, metadata={"gt": 0})
    max_event_bytes: int = field(default=16 << 20, metadata={"min": 1 << 20})
    resume_overlap_ms: int = field(default=1, metadata={"min": 0})
    # how far before a connection's start a live-end position is pinned (clock skew
    # between this host and the stream's producers; also the first start's margin)
    position_margin_seconds: float = field(default=10.0, metadata={"min": 0})
    # /healthz answers 503 after this long without a connection (and before the first)
    max_disconnected_seconds: float = field(default=120.0, metadata={"gt": 0})
    # this many identical 5xx answers to the same saved position: say it may be the cause
    position_failure_hint_after: int = field(default=5, metadata={"min": 1})


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


def endpoint(url: str) -> str:
    """``host:port`` of a URL, for logs (never its path or query)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.hostname}:{port}"


# -- failures -------------------------------------------------------------------------------


class _Reconnect(Exception):
    def __init__(self, reason: str, delay: float | None = None, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay
        self.detail = detail


def _os_detail(exc: BaseException) -> str:
    os_error = getattr(exc, "os_error", None)
    inner = os_error if isinstance(os_error, OSError) else exc.__cause__ or exc
    text = getattr(inner, "strerror", None) or str(inner) or type(inner).__name__
    return printable(str(text), 200)


def classify(exc: BaseException, connected: bool) -> tuple[str, str]:
    """(reconnect reason, human detail) of a failed or broken connection. Reasons are a
    fixed set: they are metric label values."""
    if isinstance(exc, aiohttp.ClientConnectorDNSError) or isinstance(
        getattr(exc, "os_error", None), socket.gaierror
    ):
        return "dns", "DNS lookup failed: " + _os_detail(exc)
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return "tls", "TLS certificate not accepted: " + printable(str(exc.certificate_error), 200)
    if isinstance(exc, (aiohttp.ClientSSLError, ssl.SSLError)):
        return "tls", "TLS handshake failed: " + _os_detail(exc)
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, ConnectionRefusedError):
            return "refused", "connection refused"
        return "refused", "cannot connect: " + _os_detail(exc)
    if isinstance(exc, (aiohttp.ServerTimeoutError, TimeoutError)):
        if connected:
            return "stall", "no bytes for stall_timeout_seconds"
        return "timeout", "no answer within connect_timeout_seconds"
    if isinstance(exc, (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError)):
        return "drop", "connection dropped: " + type(exc).__name__
    return "drop", "connection failed: " + type(exc).__name__


def _error_summary(data: bytes) -> str:
    """A short, printable description of an error payload (the server's words, bounded)."""
    try:
        d = orjson.loads(data)
    except orjson.JSONDecodeError:
        return printable(data[:200].decode("utf-8", "replace"), 200)
    if isinstance(d, dict):
        parts = [
            printable(str(d[k]), 200) for k in ("type", "title", "message", "detail") if d.get(k)
        ]
        return "; ".join(parts)
    return printable(str(d), 200)


@dataclass
class _FailureLog:
    """What the reconnect loop says about failures: the first one and each change of
    cause at once, repeats of the same cause summarised once a minute."""

    host: str
    cause: str | None = None  # reason + detail of the current run of failures
    reason: str | None = None
    count: int = 0  # consecutive failures
    since: float = 0.0  # monotonic time of the first failure of this run
    last_summary: float = 0.0
    position_repeats: int = 0  # identical 5xx answers to the same position
    position_key: tuple[str, str | None] | None = None
    hinted: bool = False

    def failed(self, reason: str, detail: str, delay: float) -> None:
        now = time.monotonic()
        cause = f"{reason}: {detail}"
        self.count += 1
        fields: dict[str, Any] = {
            "host": self.host,
            "reason": reason,
            "cause": detail,
            "retry_in_s": round(delay, 3),
        }
        if cause != self.cause:
            if self.count == 1:
                self.since = now
            self.cause, self.reason, self.last_summary = cause, reason, now
            fields["failures"] = self.count
            if reason == "eof":
                log.info("stream closed by the server; reconnecting", extra={"fields": fields})
            else:
                log.warning("stream connection failed; retrying", extra={"fields": fields})
        elif now - self.last_summary >= _REPEAT_SUMMARY_SECONDS:
            self.last_summary = now
            fields["failures"] = self.count
            fields["failing_for_s"] = round(now - self.since, 1)
            log.warning("stream still failing; retrying", extra={"fields": fields})
        else:
            log.debug("stream connection failed again", extra={"fields": fields})

    def server_error(
        self, status: int, message: str, position: str | None, hint_after: int
    ) -> None:
        """Count identical 5xx answers to the same position; say when it may be the cause."""
        key = (f"{status} {message}", position)
        if key != self.position_key:
            self.position_key, self.position_repeats, self.hinted = key, 0, False
        self.position_repeats += 1
        if position is not None and self.position_repeats >= hint_after and not self.hinted:
            self.hinted = True
            log.error(
                "the server keeps refusing the saved stream position; the checkpoint may be "
                "the cause (a partition or topic that no longer exists). rcwatch keeps "
                "retrying; if this persists, restart with --reset-checkpoint (and --since "
                "to choose where to start)",
                extra={
                    "fields": {
                        "host": self.host,
                        "status": status,
                        "server_message": message,
                        "identical_answers": self.position_repeats,
                    }
                },
            )

    def connected(self) -> None:
        if self.count and self.reason != "eof":
            log.info(
                "stream connected after failures",
                extra={
                    "fields": {
                        "host": self.host,
                        "failures": self.count,
                        "failing_for_s": round(time.monotonic() - self.since, 1),
                    }
                },
            )
        self.cause = self.reason = None
        self.count = 0
        self.position_repeats, self.position_key, self.hinted = 0, None, False


# -- events a resume delivers again ---------------------------------------------------------------

_TAIL_MAX_EVENTS = 1024  # per topic and millisecond: beyond, repeats are left to the pipeline

_Key = tuple[str, int]  # topic, partition


class _Redeliveries:
    """What a resume delivers again, recognised so that it is neither yielded nor counted twice.

    A timestamp position is resumed ``resume_overlap_ms`` early, so each topic's events of
    its last milliseconds come again after every reconnect (about one event per topic every
    ~15 minutes, at each routine close). The events yielded in each topic's last
    ``overlap_ms`` milliseconds are kept; after a resume, an event whose topic entry is no
    later than the position resumed from and that is byte for byte one kept is dropped here.

    An event's topic is the id entry it moved (KafkaSSE writes ``timestamp: T+1`` for the
    topic that delivered it); one that moves none shares its millisecond with the event
    before and is taken to be of that topic. Whatever is not recognised is passed on, and
    the pipeline drops it by event id: this can miss a repeat, never drop a new event."""

    def __init__(self, overlap_ms: int) -> None:
        self.overlap_ms = overlap_ms
        self._tails: dict[_Key, dict[int, set[bytes]]] = {}  # topic -> entry -> data
        self._resumed: dict[_Key, int] = {}  # timestamp entries resumed from
        self._entries: dict[_Key, int] = {}  # the last id's, on this connection
        self._topic: _Key | None = None

    def connect(self, resumed_from: str | None) -> None:
        """A new connection, resuming from this position (None: positioned by ``since``)."""
        self._resumed = timestamps(resumed_from) if resumed_from is not None else {}
        self._entries, self._topic = {}, None

    def again(self, raw_id: str | None, data: bytes) -> bool:
        """True for an event yielded before (drop it); else it is remembered."""
        if raw_id is None or self.overlap_ms <= 0:
            return False
        entries = timestamps(raw_id)
        moved = [k for k, ts in entries.items() if self._entries.get(k) != ts]
        self._entries = entries
        if len(moved) == 1:
            self._topic = moved[0]
        elif moved:
            self._topic = None
        topic = self._topic
        if topic is None or topic not in entries:
            return False
        at = entries[topic]
        tail = self._tails.setdefault(topic, {})
        resumed = self._resumed.get(topic)
        if resumed is not None and at <= resumed and data in tail.get(at, ()):
            return True
        kept = tail.setdefault(at, set())
        if len(kept) < _TAIL_MAX_EVENTS:
            kept.add(data)
        if len(tail) > 1:
            newest = max(tail)
            for old in [t for t in tail if t <= newest - self.overlap_ms]:
                del tail[old]
        return False


# -- the source -------------------------------------------------------------------------------


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
        # a position that could not be sent back is refused here (PositionError), never
        # sent: the start resolver has already set such a checkpoint aside
        self.last_event_id = check(last_event_id) if last_event_id is not None else None
        # sent while there is no position, as ISO-8601 whatever form it came in (an age is
        # resolved once, here: every reconnect before the first event starts there too);
        # a value parse_since refuses raises ValueError
        self.since = None if since is None else since_param(parse_since(since, retention_days=None))
        self._session = session
        self._own_session = session is None
        self._stopping = asyncio.Event()
        self.backoff = Backoff(config.backoff_initial_seconds, config.backoff_max_seconds)
        self.connected = False
        self.connections = 0
        self.disconnected_since = time.monotonic()
        self._failures = _FailureLog(endpoint(config.url))
        self._bad_ids = RateLimit(10.0)
        self._redeliveries = _Redeliveries(config.resume_overlap_ms)
        self._received = False  # the current connection brought an event (even one again)

    def stop(self) -> None:
        self._stopping.set()

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Ready while connected, or briefly disconnected; never before the first connect."""
        details: dict[str, Any] = {"connected": self.connected, "stream_host": self._failures.host}
        if self.connected:
            return True, details
        away = time.monotonic() - self.disconnected_since
        details["disconnected_seconds"] = round(away, 3)
        f = self._failures
        if f.cause is not None:
            details["last_failure"] = f.cause
            details["consecutive_failures"] = f.count
        if self.connections == 0:
            details["reason"] = "never connected to the stream"
            return False, details
        if away > self.config.max_disconnected_seconds:
            details["reason"] = (
                f"disconnected for more than {self.config.max_disconnected_seconds:g} s"
            )
            return False, details
        return True, details

    async def batches(self) -> AsyncIterator[list[RawEvent]]:
        session = self._session
        if session is None:
            session = aiohttp.ClientSession(read_bufsize=1 << 20, trust_env=True)
        m = self.metrics
        try:
            while not self._stopping.is_set():
                delivered = False
                self._received = False
                detail = ""
                try:
                    async with aclosing(self._connection(session)) as connection:
                        async for batch in connection:
                            delivered = True
                            yield batch
                    raise _Reconnect("eof", detail="the server ended the stream")
                except _Reconnect as r:
                    reason, forced_delay, detail = r.reason, r.delay, r.detail
                except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                    reason, detail = classify(exc, self.connected)
                    forced_delay = None
                finally:
                    if self.connected:
                        self.connected = False
                        self.disconnected_since = time.monotonic()
                        m.stream_connected.set(0)
                if self._stopping.is_set():
                    break
                # a connection that brought events, even only ones it had already (an idle
                # stream after a resume), worked: its close is the routine one
                delivered = delivered or self._received
                if delivered:
                    self.backoff.reset()
                delay = 0.0 if (reason == "eof" and delivered) else self.backoff.next_delay()
                if forced_delay is not None:
                    delay = max(delay, forced_delay)
                m.reconnects.labels(reason).inc()
                if delivered and reason == "eof":  # the routine close, not a failure
                    log.info(
                        "stream closed by the server; reconnecting",
                        extra={"fields": {"host": self._failures.host}},
                    )
                else:
                    self._failures.failed(reason, detail, delay)
                m.stream_consecutive_failures.set(self._failures.count)
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), delay)
        finally:
            if self._own_session:
                await session.close()

    def _request(self) -> tuple[dict[str, str], dict[str, str]]:
        cfg = self.config
        headers = {"User-Agent": cfg.user_agent, "Accept": "text/event-stream"}
        params: dict[str, str] = {}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = resume_header(self.last_event_id, cfg.resume_overlap_ms)
        elif self.since is not None:
            params["since"] = self.since
        return headers, params

    async def _connection(
        self, session: aiohttp.ClientSession
    ) -> AsyncGenerator[list[RawEvent], None]:
        cfg = self.config
        m = self.metrics
        headers, params = self._request()
        redeliveries = self._redeliveries
        redeliveries.connect(self.last_event_id)
        # a live-end entry of this connection names the live end at assignment, which is
        # after this moment: pinned to it (minus the margin) it can skip nothing
        floor_ms = int(time.time() * 1000 - cfg.position_margin_seconds * 1000)
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=cfg.connect_timeout_seconds,
            sock_connect=cfg.connect_timeout_seconds,
            sock_read=cfg.stall_timeout_seconds,
        )
        async with session.get(
            cfg.url, headers=headers, params=params, timeout=timeout, allow_redirects=False
        ) as resp:
            if resp.status != 200:
                await self._refused(resp)
            ctype = resp.headers.get("Content-Type", "")
            if not ctype.startswith("text/event-stream"):
                raise _Reconnect("protocol", detail="not an event stream: " + printable(ctype, 100))
            self.connected = True
            self.connections += 1
            m.stream_connected.set(1)
            log.info(
                "stream connected",
                extra={
                    "fields": {
                        "host": self._failures.host,
                        "resumed": self.last_event_id is not None,
                    }
                },
            )
            decoder = SSEDecoder(cfg.max_event_bytes, self.last_event_id)
            stream_bytes = m.stream_bytes
            raw_id: str | None = None  # the last id as the server sent it, and as kept
            kept_id: str | None = self.last_event_id
            async for chunk in resp.content.iter_any():
                stream_bytes.inc(len(chunk))
                events = decoder.feed(chunk)
                if not events:
                    continue
                now_ns = time.time_ns()
                batch: list[RawEvent] = []
                server_error = False
                for ev in events:
                    if ev.id is not None and ev.id != raw_id:
                        raw_id = ev.id
                        try:
                            kept_id, carried = next_position(ev.id, floor_ms, self.last_event_id)
                        except PositionError as exc:
                            kept_id = None
                            self._bad_position(exc.reason, len(ev.id))
                        else:
                            if carried:  # a topic missing from the server's id: kept
                                self._bad_position("missing_topic", len(ev.id))
                    event_id = kept_id if ev.id is not None else None
                    if event_id is not None:
                        self.last_event_id = event_id
                    if ev.event == "message":
                        self._received = True
                        if not ev.oversized:
                            if redeliveries.again(ev.id, ev.data):
                                m.events_dropped.labels("duplicate").inc()
                                continue
                            batch.append(RawEvent(event_id, ev.data, now_ns))
                            continue
                        m.events_dropped.labels("oversized").inc()
                        log.error(
                            "event larger than max_event_bytes dropped",
                            extra={"fields": {"position": event_id, "limit": cfg.max_event_bytes}},
                        )
                    elif ev.event == "error":
                        server_error = True
                        m.stream_error_events.inc()
                        log.warning(
                            "server sent an error event",
                            extra={"fields": {"error": _error_summary(ev.data)}},
                        )
                if self._received and self._failures.count:
                    # a connection that brings events (even only ones again) ends a failure run
                    self._failures.connected()
                    m.stream_consecutive_failures.set(0)
                if batch:
                    yield batch
                if server_error:
                    raise _Reconnect("server_error", detail="the server sent an error event")
                if self._stopping.is_set():
                    return

    def _bad_position(self, reason: str, length: int) -> None:
        self.metrics.stream_bad_positions.labels(reason).inc()
        suppressed = self._bad_ids.allow(reason)
        if suppressed is not None:
            log.warning(
                "the server sent an event id without a topic the last one named; that "
                "topic keeps its last position"
                if reason == "missing_topic"
                else "the server sent an event id that cannot be a stream position; the event "
                "is processed, the position stays at the last good id",
                extra={
                    "fields": {
                        "reason": reason,
                        "id_bytes": length,
                        "suppressed_since_last": suppressed,
                    }
                },
            )

    async def _refused(self, resp: aiohttp.ClientResponse) -> None:
        status = resp.status
        try:
            body = await resp.content.read(_MAX_ERROR_BODY)
        except (aiohttp.ClientError, TimeoutError):
            body = b""
        detail = _error_summary(body) if body else printable(resp.reason or "", 200)
        if status == 429:
            raise _Reconnect(
                "http_429",
                parse_retry_after(resp.headers.get("Retry-After")),
                detail=f"HTTP 429 (rate limited): {detail}",
            )
        if status >= 500 or status not in _FATAL_STATUSES:
            if status >= 500:
                self._failures.server_error(
                    status,
                    detail,
                    self.last_event_id,
                    self.config.position_failure_hint_after,
                )
            reason = f"http_{status // 100}xx" if status >= 500 else "http_other"
            raise _Reconnect(reason, detail=f"HTTP {status}: {detail}")
        hint = ""
        if status == 403:
            hint = " (Wikimedia requires a descriptive User-Agent: set --user-agent)"
        elif status in (400, 404) and self.last_event_id is not None:
            hint = (
                " (the server rejected the saved stream position; if the stream URL changed "
                "or the position is too old, restart with --reset-checkpoint)"
            )
        raise FatalStreamError(f"HTTP {status} from {self._failures.host}: {detail}{hint}", status)
