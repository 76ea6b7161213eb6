"""A local server that speaks Wikimedia EventStreams' protocol over recorded events.

It is what ``rcwatch demo`` runs against offline, and what the test suite uses as the real
peer of the stream client. It behaves like the upstream service (wikimedia/KafkaSSE behind
EventStreams) as FACTS.md describes it:

- ``GET /v2/stream/<name>``; ``text/event-stream; charset=utf-8``, ``cache-control:
  no-cache``; the body starts with ``:ok`` and a blank line; each event is exactly
  ``event: message``, ``id: <json array>``, ``data: <json>``, LF only; no heartbeats.
- Events live in per-datacenter topics (``eqiad.mediawiki.recentchange``, ...), each with
  its own offsets and Kafka timestamps, strictly increasing within a topic: the wall-clock
  time of publication (``clock="publish"``, as live traffic), or the event's own time
  (``clock="event"``: the same timestamps in every run, so a saved position stays
  meaningful across restarts of the server, as the demo needs). A connection is assigned
  every topic of the stream, or, with ``Last-Event-ID``, exactly the topics the id names
  (as KafkaSSE does).
- The id lists one entry per assigned topic, in three forms: ``{"timestamp": T+1}`` for a
  topic that delivered an event on this connection (T its Kafka timestamp; ``offset+1`` in
  ``id_mode="offset"``), ``{"offset": N}`` for a topic positioned by ``since``, by a
  timestamp or by an offset and not yet delivered, and ``{"offset": -1}`` for a topic
  assigned at its live end and not yet delivered. Sent back, a timestamp seeks to the first
  published event at or after it (none: the live end, shown as ``-1``), an offset seeks
  exactly, and ``-1`` means that topic's live end *at reconnect*.
- ``since`` is read as the upstream code reads it (mediawiki-services-eventstreams
  ``routes/stream.js``, KafkaSSE ``lib/utils.js``; FACTS.md): a value JavaScript takes for a
  number (``1777979860000``, ``0``, ``1e3``) stays a string, which the Kafka client's offset
  lookup reads as timestamp 0, so reading starts at the *beginning* of what the server holds;
  anything else goes through ``Date.parse`` (here: ISO-8601, UTC when no zone is given),
  and a parsed 0, like an empty value, means the live end (0 is false in JavaScript); a
  value that parses to nothing is 400 ``invalid_timestamp``. rcwatch sends ISO-8601.
- An unknown stream is 400 ``not_found``; a garbage ``Last-Event-ID`` 400; an id naming a
  topic outside the stream 404 ``TopicNotAvailableError``; one naming a partition that does
  not exist 500 "Local: Unknown partition" (every time, as upstream). Without ``since`` or
  an id, a connection starts at the live end of every topic.
- A missing or library-default User-Agent gets 403 (upstream this is Wikimedia's edge).
- ``Accept: application/json`` switches to newline-delimited JSON.

Events are "published" over time: at ``speed`` times real time by their event time, or all
at once (``speed=None``), or whenever a test calls ``publish``. Faults can be scripted per
connection (``Fault``) to test clients: HTTP errors, clean closes, abrupt drops mid-event,
stalls, error events.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from aiohttp import web

__all__ = ["EventStreamsServer", "Fault"]

_LIBRARY_AGENTS = ("python", "aiohttp", "curl/", "wget/", "go-http-client", "java/")


@dataclass
class Fault:
    """What to do to one connection. ``after_events`` counts events sent first. ``raw``
    writes ``body`` as it is (a hand-made frame: a hostile id, a torn line) and goes on
    serving."""

    kind: Literal["http", "close", "drop", "stall", "error_event", "raw"]
    after_events: int = 0
    status: int = 503
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(slots=True)
class _Event:
    seq: int  # publication order across all topics
    topic: int  # index into EventStreamsServer.topics
    offset: int  # index within its topic (the Kafka offset is base_offset + offset)
    ts_ms: int  # Kafka timestamp: publication wall time, strictly increasing per topic
    data: bytes
    publish_at: float  # monotonic time it becomes visible


@dataclass(slots=True)
class _Assignment:
    """One topic of one connection: where it reads next and how its id entry looks."""

    topic: int
    cursor: int  # index of the next event to send from this topic
    entry: dict[str, int]  # {"offset": N} or {"offset": -1} until an event is delivered


def _event_ms(data: bytes) -> int | None:
    try:
        dt = orjson.loads(data)["meta"]["dt"]
        return int(datetime.fromisoformat(dt).timestamp() * 1000)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


# what JavaScript's Number() accepts (after trimming white space; empty is 0)
_JS_NUMBER = re.compile(
    r"[+-]?(?:Infinity|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|0[xX][0-9a-fA-F]+|0[bB][01]+|0[oO][0-7]+"
)
_LIVE_END = -1  # where a since of "" or a parsed 0 starts


def _since_ms(value: str) -> int | None:
    """Where ``since`` starts reading, as the upstream service decides it: a timestamp to
    seek to (0 for "the beginning"), ``_LIVE_END``, or None for a 400.

    Upstream: ``if (since && isNaN(since)) since = Date.parse(since)``, then 400 if still
    ``isNaN``; KafkaSSE then takes a true ``since`` as a timestamp (a numeric *string*, which
    node-rdkafka's offsetsForTimes reads as 0) and a false one (``""``, a parsed ``0``) as
    the live end."""
    if value == "":
        return _LIVE_END
    v = value.strip()
    if v == "" or _JS_NUMBER.fullmatch(v):
        return 0  # left a string: read as timestamp 0, the beginning
    try:
        parsed = datetime.fromisoformat(v)  # Date.parse, for the forms rcwatch can send
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # the service runs in UTC
    ms = int(parsed.timestamp() * 1000)
    return _LIVE_END if ms == 0 else max(0, ms)


class _Refusal(Exception):
    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


class EventStreamsServer:
    def __init__(
        self,
        events: Iterable[bytes] = (),
        *,
        stream: str = "recentchange",
        datacenters: Sequence[str] = ("eqiad", "codfw"),
        id_mode: Literal["timestamp", "offset"] = "timestamp",
        clock: Literal["publish", "event"] = "publish",
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
        self.clock = clock
        self.speed = speed
        self.base_offset = base_offset
        self.require_user_agent = require_user_agent
        self.max_connection_seconds = max_connection_seconds
        self.host = host
        self.port = port
        self.faults: list[Fault] = []  # consumed one per connection
        self.connections = 0
        self.requests: list[dict[str, str]] = []  # headers and query of each request
        self.served = 0  # message frames written, over all connections
        self._events: list[_Event] = []  # in publication order, all topics
        self._by_topic: list[list[_Event]] = [[] for _ in self.topics]
        self._published = 0  # cursor: _events[:_published] are visible
        self._published_by_topic = [0] * len(self.topics)
        self._first_event_ms: int | None = None  # event time of the first paced event
        self._t0 = time.monotonic()
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._responses: set[web.StreamResponse] = set()
        self.publish(events)

    # -- data -----------------------------------------------------------------------------

    def publish(self, events: Iterable[bytes], *, topic: int = 0) -> None:
        """Append events to a topic (by index; 0 is the first datacenter). Paced by event
        time when the server has a ``speed``, else visible at once. Unparseable data is
        served as-is (for tests)."""
        now = time.monotonic()
        for data in events:
            at = now
            ms = _event_ms(data)
            if self.speed is not None and ms is not None:
                if self._first_event_ms is None:
                    self._first_event_ms = ms
                at = self._t0 + (ms - self._first_event_ms) / 1000 / self.speed
            if self._events:
                at = max(at, self._events[-1].publish_at)  # publication order is time order
            in_topic = self._by_topic[topic]
            ts = self._wall_ms(at) if self.clock == "publish" or ms is None else ms
            if in_topic:
                ts = max(ts, in_topic[-1].ts_ms + 1)
            ev = _Event(len(self._events), topic, len(in_topic), ts, data, at)
            self._events.append(ev)
            in_topic.append(ev)
        if self._runner is not None:
            asyncio.get_running_loop().create_task(self._notify())

    @staticmethod
    def _wall_ms(monotonic_at: float) -> int:
        return int((time.time() + (monotonic_at - time.monotonic())) * 1000)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def published_count(self) -> int:
        """Events visible now. Publication times never decrease, so a cursor that only
        moves forward answers this in amortized constant time."""
        now = time.monotonic()
        events = self._events
        n = self._published
        by_topic = self._published_by_topic
        while n < len(events) and events[n].publish_at <= now:
            by_topic[events[n].topic] += 1
            n += 1
        self._published = n
        return n

    def _visible(self, topic: int) -> int:
        self.published_count()
        return self._published_by_topic[topic]

    @property
    def total(self) -> int:
        return len(self._events)

    def topic_events(self, topic: int = 0) -> list[bytes]:
        return [e.data for e in self._by_topic[topic]]

    def published_in_order(self) -> list[bytes]:
        """Every event, all topics, in publication order (the order a client that kept up
        receives them)."""
        return [e.data for e in self._events]

    def kafka_timestamp(self, index: int, topic: int = 0) -> int:
        """The Kafka timestamp of a topic's ``index``-th event."""
        return self._by_topic[topic][index].ts_ms

    def caught_up(self, position: str | None) -> bool:
        """Whether a client holding ``position`` (an id as the client keeps it) has been
        served every event published in every topic. For tests: "the run reached the end"."""
        if position is None:
            return False
        if self.clock == "publish" and self.published_count() < self.total:
            return False
        try:
            entries = orjson.loads(position)
        except orjson.JSONDecodeError:
            return False
        named = {
            e.get("topic"): e for e in entries if isinstance(e, dict) and "topic" in e
        } if isinstance(entries, list) else {}  # fmt: skip
        for index, name in enumerate(self.topics):
            events = self._by_topic[index]
            if not events:
                continue
            entry = named.get(name)
            if entry is None:
                return False
            ts, offset = entry.get("timestamp"), entry.get("offset")
            if isinstance(ts, int) and not isinstance(ts, bool):
                if ts <= events[-1].ts_ms:
                    return False
            elif isinstance(offset, int) and offset >= 0:
                if offset - self.base_offset < len(events):
                    return False
            else:
                return False
        return True

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v2/stream/{self.stream}"

    async def start(self) -> None:
        if self.speed is not None and self._first_event_ms is not None:
            # re-base paced publication on the start; Kafka timestamps follow
            self._t0 = time.monotonic()
            self._published = 0
            self._published_by_topic = [0] * len(self.topics)
            last_at = self._t0
            last_ts = [0] * len(self.topics)
            for ev in self._events:
                ms = _event_ms(ev.data)
                at = last_at
                if ms is not None:
                    at = max(last_at, self._t0 + (ms - self._first_event_ms) / 1000 / self.speed)
                ev.publish_at = last_at = at
                if self.clock == "publish":
                    ev.ts_ms = max(self._wall_ms(at), last_ts[ev.topic] + 1)
                    last_ts[ev.topic] = ev.ts_ms
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

    def _kafka_error(self, message: str) -> web.Response:
        """KafkaSSE's way: a made-up status text and JSON without a JSON content type."""
        body = orjson.dumps({"type": "KafkaError", "message": message})
        return web.Response(status=500, reason=f"KafkaError: {message}", body=body)

    def _seek(self, topic: int, ms: int) -> _Assignment:
        """offsetsForTimes: the first published event at or after ``ms``; none: live end.
        With the event clock every timestamp is known in advance (a recording released over
        time), so unpublished events count too: a position stays exact across servers."""
        events = self._by_topic[topic]
        visible = self._visible(topic) if self.clock == "publish" else len(events)
        lo, hi = 0, visible
        while lo < hi:
            mid = (lo + hi) // 2
            if events[mid].ts_ms < ms:
                lo = mid + 1
            else:
                hi = mid
        if lo < visible:
            return _Assignment(topic, lo, {"offset": self.base_offset + lo})
        return _Assignment(topic, visible, {"offset": -1})

    def _live_end(self, topic: int) -> _Assignment:
        return _Assignment(topic, self._visible(topic), {"offset": -1})

    def _assign(self, request: web.Request) -> list[_Assignment]:
        last_id = request.headers.get("Last-Event-ID")
        if last_id is None:
            since = request.query.get("since")
            if since is None:
                return [self._live_end(t) for t in range(len(self.topics))]
            ms = _since_ms(since)
            if ms is None:
                raise _Refusal(
                    self._error(
                        400,
                        "invalid_timestamp",
                        "Invalid timestamp",
                        "since timestamp is not a UTC milliseconds unix epoch and was not "
                        f"parseable: {since!r}",
                    )
                )
            if ms == _LIVE_END:
                return [self._live_end(t) for t in range(len(self.topics))]
            return [self._seek(t, ms) for t in range(len(self.topics))]
        try:
            entries: Any = orjson.loads(last_id)
            if not isinstance(entries, list) or not all(
                isinstance(e, dict) and isinstance(e.get("topic"), str) for e in entries
            ):
                raise ValueError
        except (orjson.JSONDecodeError, ValueError):
            raise _Refusal(
                self._error(
                    400,
                    "InvalidAssignmentError",
                    "Invalid Last-Event-ID",
                    "Last-Event-ID must be a JSON array of topic assignments",
                )
            ) from None
        unknown = [e["topic"] for e in entries if e["topic"] not in self.topics]
        if unknown:
            raise _Refusal(
                self._error(
                    404,
                    "TopicNotAvailableError",
                    "Topic Not Available",
                    f"Topics {', '.join(unknown)} are not available for consumption.",
                )
            )
        if any(e.get("partition", 0) != 0 for e in entries):
            raise _Refusal(self._kafka_error("Local: Unknown partition"))
        out: list[_Assignment] = []
        for e in entries:
            topic = self.topics.index(e["topic"])
            offset, ts = e.get("offset"), e.get("timestamp")
            if isinstance(offset, int) and offset >= 0:
                cursor = min(max(0, offset - self.base_offset), self._visible(topic))
                out.append(_Assignment(topic, cursor, {"offset": offset}))
            elif isinstance(offset, int) or not isinstance(ts, int):
                out.append(self._live_end(topic))  # -1, or nothing usable: the live end
            else:
                out.append(self._seek(topic, ts))
        return out

    def _id(self, assignments: list[_Assignment]) -> bytes:
        return orjson.dumps(
            [{"topic": self.topics[a.topic], "partition": 0, **a.entry} for a in assignments]
        )

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
        try:
            assignments = self._assign(request)
        except _Refusal as refusal:
            return refusal.response
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
            await self._serve(resp, assignments, fault, ndjson)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._responses.discard(resp)
        return resp

    def _next(self, assignments: list[_Assignment]) -> _Assignment | None:
        """The assignment holding the earliest-published event not yet sent, if any."""
        self.published_count()
        best: _Assignment | None = None
        for a in assignments:
            if a.cursor < self._published_by_topic[a.topic] and (
                best is None
                or self._by_topic[a.topic][a.cursor].seq
                < self._by_topic[best.topic][best.cursor].seq
            ):
                best = a
        return best

    async def _serve(
        self,
        resp: web.StreamResponse,
        assignments: list[_Assignment],
        fault: Fault | None,
        ndjson: bool,
    ) -> None:
        opened = time.monotonic()
        sent = 0
        while True:
            if fault is not None and sent >= fault.after_events:
                if fault.kind == "raw":
                    await resp.write(fault.body)
                    fault = None
                    continue
                await self._apply(resp, fault, assignments)
                return
            if (
                self.max_connection_seconds is not None
                and time.monotonic() - opened > self.max_connection_seconds
            ):
                await resp.write_eof()  # the routine ~15-minute close
                return
            a = self._next(assignments)
            if a is None:
                await self._wait_for_more()
                continue
            ev = self._by_topic[a.topic][a.cursor]
            a.cursor += 1
            if self.id_mode == "timestamp":
                a.entry = {"timestamp": ev.ts_ms + 1}
            else:
                a.entry = {"offset": self.base_offset + ev.offset + 1}
            if ndjson:
                frame = ev.data + b"\n"
            else:
                frame = b"event: message\nid: %s\ndata: %s\n\n" % (self._id(assignments), ev.data)
            await resp.write(frame)
            sent += 1
            self.served += 1
            if sent % 64 == 0:
                await asyncio.sleep(0)  # a fast reader must not starve the loop

    async def _wait_for_more(self) -> None:
        available = self._published
        nxt = self._events[available].publish_at if available < len(self._events) else None
        timeout = 1.0 if nxt is None else max(0.0, min(1.0, nxt - time.monotonic()))
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)

    async def _apply(
        self, resp: web.StreamResponse, fault: Fault, assignments: list[_Assignment]
    ) -> None:
        if fault.kind == "close":
            await resp.write_eof()
        elif fault.kind == "drop":
            a = self._next(assignments)
            if a is not None:  # half an event, then the connection dies
                ev = self._by_topic[a.topic][a.cursor]
                await resp.write(
                    b"event: message\nid: %s\ndata: %s"
                    % (self._id(assignments), ev.data[: len(ev.data) // 2])
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
