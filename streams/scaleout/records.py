"""The records the scale-out processes pass on, and their positions.

An *enriched* record is a raw event exactly as EventStreams sent it (the value), keyed by
page, with headers: ``sse_id`` (its EventStreams position), ``recv_ns`` and, when the text
was fetched, ``content`` (JSON: status, added, removed, reason; the enriched archive's
format). A consumer's position over a topic is written like an EventStreams id, a JSON
array with one ``{"topic", "partition", "offset"}`` entry per partition (the offset of the
next record to read), so the checkpoint that holds it needs nothing new.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard

import orjson

from detectors.event import RawEvent

__all__ = [
    "format_position",
    "header_int",
    "header_text",
    "header_values",
    "parse_position",
    "raw_event",
    "record_headers",
]


def record_headers(
    sse_id: str | None, recv_ns: int, content: Mapping[str, Any] | None
) -> list[tuple[str, bytes]]:
    headers = [("recv_ns", str(recv_ns).encode())]
    if sse_id is not None:
        headers.append(("sse_id", sse_id.encode()))
    if content is not None:
        headers.append(("content", orjson.dumps(content)))
    return headers


def header_values(headers: Sequence[tuple[Any, Any]]) -> dict[str, bytes]:
    """The headers that are (str, bytes) pairs; anything else a producer wrote is ignored."""
    return {k: v for k, v in headers if isinstance(k, str) and isinstance(v, bytes)}


def header_int(h: Mapping[str, bytes], name: str) -> int:
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        return int(h.get(name, b"0").decode("ascii"))
    return 0


def header_text(h: Mapping[str, bytes], name: str) -> str | None:
    with contextlib.suppress(UnicodeDecodeError):
        return h[name].decode() if name in h else None
    return None


def raw_event(value: bytes, headers: Sequence[tuple[Any, Any]], position: str) -> RawEvent:
    """The RawEvent of an enriched record; ``position`` (this consumer's, after the record)
    takes the place of the SSE id. A header that does not decode is ignored (the event then
    goes on without it: no content means detection on metadata only). A record with no value
    becomes an empty event, which the pipeline counts as malformed."""
    h = header_values(headers)
    content = None
    if "content" in h:
        try:
            parsed = orjson.loads(h["content"])
        except orjson.JSONDecodeError:
            parsed = None
        content = parsed if isinstance(parsed, dict) else None
    data = value if isinstance(value, bytes) else b""
    return RawEvent(position, data, header_int(h, "recv_ns"), content)


def format_position(topic: str, offsets: Mapping[int, int]) -> str:
    return orjson.dumps(
        [{"topic": topic, "partition": p, "offset": o} for p, o in sorted(offsets.items())]
    ).decode()


def parse_position(position: str, topic: str) -> dict[int, int]:
    """partition -> next offset; raises ValueError for anything rcwatch did not write."""
    try:
        entries = orjson.loads(position)
    except orjson.JSONDecodeError as exc:
        raise ValueError("not JSON") from exc
    if not isinstance(entries, list):
        raise ValueError("not a list")
    out: dict[int, int] = {}
    for e in entries:
        if not isinstance(e, dict) or e.get("topic") != topic:
            raise ValueError(f"not a position on {topic}")
        p, o = e.get("partition"), e.get("offset")
        if not (_count(p) and _count(o)):
            raise ValueError("partition and offset must be non-negative integers")
        out[p] = o
    return out


def _count(x: object) -> TypeGuard[int]:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0
