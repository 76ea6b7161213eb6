"""Stream positions: the SSE ``id`` EventStreams sends, checked and made safe to send back.

An id is a JSON array with one entry per topic-partition (one topic per datacenter), each
``{"topic", "partition"}`` plus a position in one of three forms (FACTS.md):

- ``{"timestamp": T}``: the topic delivered an event on this connection; sent back, the
  service seeks to the first event at or after ``T``;
- ``{"offset": N}`` (N >= 0): positioned but not yet delivered; sent back, exact;
- ``{"offset": -1}``: assigned at the live end and not yet delivered. Sent back, it means
  the live end *at the next connection*: everything that topic produced in between is
  skipped. Such an entry names no real position, so it is never kept as it is:
  ``pin_live_ends`` replaces it with a timestamp no later than the moment the topic was
  assigned (the connection's start, minus a margin), which can skip nothing.
  (``{"offset": -2}``, Kafka's *earliest*, is kept: sent back it replays the backlog.)

Every id is checked before it is used or saved (``check``): an id that cannot be sent back
as an HTTP header, or that is not such an array, is refused with ``PositionError`` and the
caller keeps its last good position. Pure functions; no I/O.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

__all__ = [
    "MAX_POSITION_BYTES",
    "PositionError",
    "check",
    "has_live_end",
    "next_position",
    "pin_live_ends",
    "resume_header",
    "timestamps",
]

# an id holds one entry (~80 bytes) per topic-partition; real ones are a few hundred bytes
MAX_POSITION_BYTES = 8192
_MAX_ENTRIES = 64
# what an HTTP header value may carry without surprises: printable ASCII only
_HEADER_SAFE = re.compile(r"[\x20-\x7e]*\Z")
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}\Z")  # Kafka's topic name rule


class PositionError(ValueError):
    """An id that must not be used as a position. ``reason`` is short and content-free."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _entries(raw: str) -> list[dict[str, Any]]:
    if len(raw) > MAX_POSITION_BYTES:
        raise PositionError("too_long")
    if not _HEADER_SAFE.match(raw):
        raise PositionError("control_or_non_ascii")
    try:
        entries = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise PositionError("not_json") from None
    if not isinstance(entries, list) or not entries or len(entries) > _MAX_ENTRIES:
        raise PositionError("not_an_array_of_entries")
    for e in entries:
        if not isinstance(e, dict):
            raise PositionError("entry_not_an_object")
        topic = e.get("topic")
        if not isinstance(topic, str) or not _TOPIC.match(topic):
            raise PositionError("bad_topic")
        if not _int(e.get("partition", 0)) or e.get("partition", 0) < 0:
            raise PositionError("bad_partition")
        ts, offset = e.get("timestamp"), e.get("offset")
        if ts is None and offset is None:
            raise PositionError("no_position")
        if ts is not None and (not _int(ts) or ts < 0):
            raise PositionError("bad_timestamp")
        if offset is not None and (not _int(offset) or offset < -2):
            raise PositionError("bad_offset")
    return entries


def check(raw: str) -> str:
    """``raw`` itself if it is a usable position; else ``PositionError``."""
    _entries(raw)
    return raw


def _is_live_end(entry: dict[str, Any]) -> bool:
    # only -1 (latest): -2 (Kafka's earliest) sent back replays the topic's whole backlog,
    # which skips nothing, so it is kept as it is
    return entry.get("timestamp") is None and entry.get("offset", -1) == -1


def has_live_end(raw: str) -> bool:
    """Whether some entry of a (checked) position names no real position."""
    return any(_is_live_end(e) for e in _entries(raw))


def pin_live_ends(raw: str, floor_ms: int) -> str:
    """Checks ``raw``, and replaces every live-end entry (``offset`` -1) with
    ``timestamp: floor_ms``. ``floor_ms`` must be no later than the moment the topic was
    assigned (connection start minus a margin), so the result skips nothing; events it
    re-delivers that were seen before are dropped by event id downstream."""
    if "-" not in raw:  # fast path: no negative offset anywhere
        return check(raw)
    entries = _entries(raw)
    changed = False
    for e in entries:
        if _is_live_end(e):
            e.pop("offset", None)
            e["timestamp"] = max(0, floor_ms)
            changed = True
    return orjson.dumps(entries).decode() if changed else raw


def next_position(raw: str, floor_ms: int, previous: str | None) -> tuple[str, int]:
    """The position to keep after the server sent id ``raw``: checked, live ends pinned
    (``pin_live_ends``), and every topic-partition the last kept position ``previous``
    named but ``raw`` does not carried over with its last position. Sent back, an id
    naming fewer topics would make the service assign only those: the others would never
    be read again. Returns the position and how many entries were carried over."""
    kept = pin_live_ends(raw, floor_ms)
    if previous is None:
        return kept, 0
    names = {(e["topic"], e.get("partition", 0)) for e in _entries(kept)}
    old = _entries(previous)
    if len(names) >= len(old) and all((e["topic"], e.get("partition", 0)) in names for e in old):
        return kept, 0
    missing = [e for e in old if (e["topic"], e.get("partition", 0)) not in names]
    merged = _entries(kept) + missing
    if len(merged) > _MAX_ENTRIES:
        raise PositionError("not_an_array_of_entries")
    return orjson.dumps(merged).decode(), len(missing)


def resume_header(raw: str, overlap_ms: int) -> str:
    """The ``Last-Event-ID`` to send: timestamp entries moved back by ``overlap_ms``
    (KafkaSSE stores "last timestamp + 1", so events sharing the last millisecond would
    otherwise be skipped; the one re-delivered is dropped by event id)."""
    if overlap_ms <= 0:
        return raw
    entries = _entries(raw)
    changed = False
    for e in entries:
        ts = e.get("timestamp")
        if isinstance(ts, int):
            e["timestamp"] = max(0, ts - overlap_ms)
            changed = True
    return orjson.dumps(entries).decode() if changed else raw


def timestamps(raw: str) -> dict[tuple[str, int], int]:
    """The timestamp entries of an id, by (topic, partition); empty for an id that is not a
    position. For telling which topic an event came from (the entry that moved)."""
    try:
        entries = _entries(raw)
    except PositionError:
        return {}
    return {
        (e["topic"], e.get("partition", 0)): e["timestamp"]
        for e in entries
        if e.get("timestamp") is not None
    }
