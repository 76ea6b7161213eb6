"""A local server that speaks Wikimedia EventStreams' protocol over recorded events.

It is what ``rcwatch demo`` runs against offline, and what the test suite uses as the real
peer of the stream client. It behaves like the upstream service (wikimedia/KafkaSSE behind
EventStreams) as FACTS.md describes it:

- ``GET /v2/stream/<name>``; ``text/event-stream; charset=utf-8``, ``cache-control:
  no-cache``; the body starts with ``:ok`` and a blank line; each event is exactly
  ``event: message``, ``id: <json array>``, ``data: <json>``, LF only; no heartbeats.
- The id lists one entry per datacenter topic; the topic holding the events carries
  ``timestamp`` (Kafka timestamp + 1, as EventStreams does) or ``offset`` (offset + 1).
  ``Last-Event-ID`` resumes from it and overrides ``since``.
- ``since`` takes epoch milliseconds or ISO-8601; a bad value is 400 ``invalid_timestamp``;
  an unknown stream 400 ``not_found``; a garbage ``Last-Event-ID`` 400; an id naming a
  topic outside the stream 404 ``TopicNotAvailableError``. Without ``since`` or an id, a
  connection starts at the live end.
- A missing or library-default User-Agent gets 403 (upstream this is Wikimedia's edge).
- ``Accept: application/json`` switches to newline-delimited JSON.

Events are "published" over time: at ``speed`` times real time by their event time, or all
at once (``speed=None``). Faults can be scripted per connection (``Fault``) to test
clients: HTTP errors, clean closes, abrupt drops mid-event, stalls, error events.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import orjson
from aiohttp import web

__all__ = ["EventStreamsServer", "Fault"]

_LIBRARY_AGENTS = ("python", "aiohttp", "curl/", "wget/", "go-http-client", "java/")


@dataclass
class Fault:
    """What to do to one connection. ``after_events`` counts events sent first."""

    kind: Literal["http", "close", "drop", "stall", "error_event"]
    after_events: int = 0
    status: int = 503
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass
class _Event:
    ts_ms: int  # Kafka timestamp (monotonic, like log-append time)
    data: bytes
    publish_at: float  # monotonic time it becomes visible


def _event_ms(data: bytes) -> int | None:
    try:
        dt = orjson.loads(data)["meta"]["dt"]
        return int(datetime.fromisoformat(dt).timestamp() * 1000)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def _parse_since(value: str) -> int | None:
    """Milliseconds since the epoch from ``since``, or None when unparseable."""
    v = value.strip()
    if v.lstrip("-").isdigit():
        return int(v)
    try:
        parsed = datetime.fromisoformat(v)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


class EventStreamsServer:
    def __init__(
        self,
        events: Iterable[bytes] = (),
        *,
        stream: str = "recentchange",
        datacenters: Sequence[str] = ("eqiad", "codfw"),
        id_mode: Literal["timestamp", "offset"] = "timestamp",
        speed: float | None = None,
        base_offset: int = 6_101_423_904,
        require_user_agent: bool = True,
        max_connection_seconds: float | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.stream = stream
        self.topics = [f"{dc}.mediawiki.{stream}" for dc in datacenters]
        self.id_mode = id_mode
        self.speed = speed
        self.base_offset = base_offset
        self.require_user_agent = require_user_agent
        self.max_connection_seconds = max_connection_seconds
        self.host = host
        self.port = port
        self.faults: list[Fault] = []  # consumed one per connection
        self.connections = 0
        self.requests: list[dict[str, str]] = []  # headers and query of each request
        self._events: list[_Event] = []
        self._published = 0  # cursor: events[:_published] are visible
        self._first_ms: int | None = None
        self._t0 = time.monotonic()
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._responses: set[web.StreamResponse] = set()
        self.publish(events)

    # -- data -----------------------------------------------------------------------------

    def publish(self, events: Iterable[bytes]) -> None:
        """Append events to the topic. Unparseable data is served as-is (for tests)."""
        now = time.monotonic()
        for data in events:
            ms = _event_ms(data)
            last = self._events[-1].ts_ms if self._events else (ms or 0)
            ts = max(last, ms if ms is not None else last)
            if self._first_ms is None:
                self._first_ms = ts
            at = now if self.speed is None else self._t0 + (ts - self._first_ms) / 1000 / self.speed
            self._events.append(_Event(ts, data, at))
        if self._runner is not None:
            asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def published_count(self) -> int:
        """Events visible now. Publication times never decrease, so a cursor that only
        moves forward answers this in amortized constant time."""
        now = time.monotonic()
        events = self._events
        n = self._published
        while n < len(events) and events[n].publish_at <= now:
            n += 1
        self._published = n
        return n

    @property
    def total(self) -> int:
        return len(self._events)

    def event_id(self, index: int) -> str:
        """The SSE id sent with event ``index`` (the position after it)."""
        first = {"topic": self.topics[0], "partition": 0}
        if self.id_mode == "timestamp":
            first["timestamp"] = self._events[index].ts_ms + 1
        else:
            first["offset"] = self.base_offset + index + 1
        rest = [{"topic": t, "partition": 0, "offset": -1} for t in self.topics[1:]]
        return orjson.dumps([first, *rest]).decode()

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v2/stream/{self.stream}"

    async def start(self) -> None:
        self._t0 = time.monotonic() if self.speed is not None else self._t0
        if self.speed is not None:  # re-base publication times on the start
            self._published = 0
            for ev in self._events:
                assert self._first_ms is not None
                ev.publish_at = self._t0 + (ev.ts_ms - self._first_ms) / 1000 / self.speed
        app = web.Application()
        app.router.add_get("/v2/stream/{streams}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        await self._listen()

    async def _listen(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await self._site.start()
        if self.port == 0:
            server = self._site._server
            sockets = getattr(server, "sockets", None) or []
            self.port = sockets[0].getsockname()[1]

    async def pause(self, seconds: float) -> None:
        """Stop listening (connections are refused) and drop open streams, then resume."""
        await self.drop_all()
        if self._site is not None:
            await self._site.stop()
        await asyncio.sleep(seconds)
        await self._listen()

    async def drop_all(self) -> None:
        for resp in list(self._responses):
            _abort(resp)

    async def stop(self) -> None:
        await self.drop_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- protocol -------------------------------------------------------------------------

    def _error(self, status: int, kind: str, title: str, detail: str) -> web.Response:
        body = {"type": kind, "title": title, "status": status, "detail": detail}
        return web.json_response(body, status=status)

    def _start_index(self, request: web.Request) -> int | web.Response:
        last_id = request.headers.get("Last-Event-ID")
        if last_id is not None:
            try:
                entries = orjson.loads(last_id)
                if not isinstance(entries, list) or not all(
                    isinstance(e, dict) and isinstance(e.get("topic"), str) for e in entries
                ):
                    raise ValueError
            except (orjson.JSONDecodeError, ValueError):
                return self._error(
                    400,
                    "InvalidAssignmentError",
                    "Invalid Last-Event-ID",
                    "Last-Event-ID must be a JSON array of topic assignments",
                )
            unknown = [e["topic"] for e in entries if e["topic"] not in self.topics]
            if unknown:
                return self._error(
                    404,
                    "TopicNotAvailableError",
                    "Topic Not Available",
                    f"Topics {', '.join(unknown)} are not available for consumption.",
                )
            entry = next((e for e in entries if e["topic"] == self.topics[0]), None)
            if entry is None:
                return self.published_count()
            offset = entry.get("offset")
            if isinstance(offset, int):
                if offset < 0:
                    return self.published_count()
                return max(0, offset - self.base_offset)
            timestamp = entry.get("timestamp")
            if isinstance(timestamp, int):
                return self._index_at(timestamp)
            return self.published_count()
        since = request.query.get("since")
        if since is not None:
            ms = _parse_since(since)
            if ms is None:
                return self._error(
                    400,
                    "invalid_timestamp",
                    "Invalid timestamp",
                    f"since={since!r} is not milliseconds since the epoch or ISO-8601",
                )
            return self._index_at(ms)
        return self.published_count()

    def _index_at(self, ms: int) -> int:
        """First event whose Kafka timestamp is at least ``ms`` (like offsetsForTimes)."""
        lo, hi = 0, len(self._events)
        while lo < hi:
            mid = (lo + hi) // 2
            if self._events[mid].ts_ms < ms:
                lo = mid + 1
            else:
                hi = mid
        return lo

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.connections += 1
        self.requests.append({**request.headers, **{f"?{k}": v for k, v in request.query.items()}})
        ua = request.headers.get("User-Agent", "")
        if self.require_user_agent and (not ua or ua.lower().startswith(_LIBRARY_AGENTS)):
            return self._error(
                403,
                "forbidden",
                "Forbidden",
                "Please set a user-agent and respect our robot policy "
                "https://meta.wikimedia.org/wiki/User-Agent_policy",
            )
        names = request.match_info["streams"].split(",")
        if any(n != self.stream for n in names):
            return self._error(400, "not_found", "Stream Not Found", f"Stream(s) {names} not found")
        fault = self.faults.pop(0) if self.faults else None
        if fault is not None and fault.kind == "http":
            return web.Response(status=fault.status, headers=fault.headers, body=fault.body)
        start = self._start_index(request)
        if isinstance(start, web.Response):
            return start
        ndjson = "application/json" in request.headers.get("Accept", "")
        resp = web.StreamResponse(
            headers={
                "Content-Type": "application/json; charset=utf-8"
                if ndjson
                else "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
            }
        )
        await resp.prepare(request)
        self._responses.add(resp)
        try:
            if not ndjson:
                await resp.write(b":ok\n\n")
            await self._serve(resp, start, fault, ndjson)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._responses.discard(resp)
        return resp

    async def _serve(
        self, resp: web.StreamResponse, index: int, fault: Fault | None, ndjson: bool
    ) -> None:
        opened = time.monotonic()
        sent = 0
        while True:
            if fault is not None and sent >= fault.after_events:
                await self._apply(resp, fault, index)
                return
            if (
                self.max_connection_seconds is not None
                and time.monotonic() - opened > self.max_connection_seconds
            ):
                await resp.write_eof()  # the routine ~15-minute close
                return
            available = self.published_count()
            if index >= available:
                await self._wait_for_more(available)
                continue
            ev = self._events[index]
            if ndjson:
                frame = ev.data + b"\n"
            else:
                frame = b"event: message\nid: %s\ndata: %s\n\n" % (
                    self.event_id(index).encode(),
                    ev.data,
                )
            await resp.write(frame)
            index += 1
            sent += 1
            if sent % 64 == 0:
                await asyncio.sleep(0)  # a fast reader must not starve the loop

    async def _wait_for_more(self, available: int) -> None:
        nxt = self._events[available].publish_at if available < len(self._events) else None
        timeout = 1.0 if nxt is None else max(0.0, min(1.0, nxt - time.monotonic()))
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)

    async def _apply(self, resp: web.StreamResponse, fault: Fault, index: int) -> None:
        if fault.kind == "close":
            await resp.write_eof()
        elif fault.kind == "drop":
            if index < len(self._events):  # half an event, then the connection dies
                ev = self._events[index]
                await resp.write(
                    b"event: message\nid: %s\ndata: %s"
                    % (
                        self.event_id(index).encode(),
                        ev.data[: len(ev.data) // 2],
                    )
                )
            _abort(resp)
        elif fault.kind == "stall":
            await asyncio.sleep(3600)  # the client's stall timeout must notice
        elif fault.kind == "error_event":
            payload = orjson.dumps({"type": "KafkaError", "message": "simulated failure"})
            await resp.write(b"event: error\ndata: %s\n\n" % payload)
            await resp.write_eof()


def _abort(resp: web.StreamResponse) -> None:
    req = resp._req
    transport = req.transport if req is not None else None
    if transport is not None:
        transport.abort()
