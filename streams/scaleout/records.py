"""The records the scale-out processes pass on, and their positions.

An *enriched* record is a raw event exactly as EventStreams sent it (the value), keyed by
page, with headers: ``sse_id`` (its EventStreams position), ``recv_ns``, ``seq`` (its place
in the stream, which the ingest numbers: the detect stage merges the partitions back into
that order), when the text was fetched, ``content`` (JSON: status, added, removed, reason;
the enriched archive's format), and for an event in scope, ``evaluated``: the rules' answer
the fetch worker worked out (JSON: the digest of its rules, the findings with their
redacted spans, what ran out of budget, the personal-data fingerprints, which are hashes).
The detect stage uses that answer only when its own rules have the same digest, and
anything in it that does not check out makes it evaluate the event itself.

A *tick* is a record with no value and a ``tick`` header: the ingest's promise that every
event it numbered up to that ``seq`` is already in the partition before it. The ingest
writes one to every partition of the events topic each ``tick_interval_seconds`` while
events flow and when it ends; the workers pass each one on to the same partition of the
enriched topic, after the events before it.

A consumer's position over a topic is written like an EventStreams id, a JSON array with
one ``{"topic", "partition", "offset"}`` entry per partition (the offset of the next
record to read), so the checkpoint that holds it needs nothing new.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeGuard

import orjson

from detectors.base import Category, Finding, Severity, Span
from detectors.event import RawEvent
from detectors.windows import Observation

__all__ = [
    "decode_evaluation",
    "decode_fired",
    "decode_observations",
    "encode_evaluation",
    "encode_fired",
    "encode_observations",
    "format_position",
    "header_int",
    "header_text",
    "header_values",
    "parse_marks",
    "parse_position",
    "raw_event",
    "record_headers",
    "record_seq",
    "tick_headers",
]


def record_headers(
    sse_id: str | None,
    recv_ns: int,
    content: Mapping[str, Any] | None,
    evaluated: bytes | None = None,
    seq: int | None = None,
) -> list[tuple[str, bytes]]:
    headers = [("recv_ns", str(recv_ns).encode())]
    if seq is not None:
        headers.append(("seq", str(seq).encode()))
    if sse_id is not None:
        headers.append(("sse_id", sse_id.encode()))
    if content is not None:
        headers.append(("content", orjson.dumps(content)))
    if evaluated is not None:
        headers.append(("evaluated", evaluated))
    return headers


Fingerprints = tuple[frozenset[str], frozenset[str]] | None
Evaluated = tuple[str, list[Finding], tuple[str, ...], Fingerprints]


def _spans_out(spans: Iterable[Span]) -> list[list[object]]:
    return [[s.field, s.start, s.end, s.kind, s.redacted, s.confidence, s.sensitive] for s in spans]


def _finding_out(f: Finding) -> list[object]:
    return [f.rule, str(f.category), str(f.severity), f.reason, f.target, f.score,
            _spans_out(f.spans)]  # fmt: skip


def encode_evaluation(
    digest: str, findings: Sequence[Finding], exhausted: Iterable[str], fps: Fingerprints
) -> bytes:
    return orjson.dumps(
        {
            "rules": digest,
            "f": [_finding_out(f) for f in findings],
            "x": sorted(exhausted),
            "p": [sorted(fps[0]), sorted(fps[1])] if fps is not None else None,
        }
    )


def encode_observations(observations: Sequence[Observation]) -> bytes:
    """An event's observations for one window partition (an ``observations`` record)."""
    return orjson.dumps(
        [
            [o.rule, o.group, o.when, o.mark, o.event, o.seconds, o.threshold, o.distinct,
             str(o.category), str(o.severity), o.title, o.target, _spans_out(o.spans), o.index]
            for o in observations
        ]
    )  # fmt: skip


def decode_observations(blob: bytes) -> list[Observation] | None:
    """An ``observations`` record's value, checked field by field; None for anything else."""
    try:
        items = orjson.loads(blob)
        if not isinstance(items, list):
            return None
        return [_observation(o) for o in items]
    except (orjson.JSONDecodeError, IndexError, TypeError, ValueError):
        return None


def _observation(o: object) -> Observation:
    if not isinstance(o, list) or len(o) != 14:
        raise TypeError("not an observation")
    rule, group, when, mark, event, seconds, threshold, distinct = o[:8]
    category, severity, title, target, spans, index = o[8:]
    texts = (rule, group, mark, event, title, target)
    if not all(isinstance(t, str) for t in texts) or not isinstance(spans, list):
        raise TypeError("not an observation")
    if distinct is not None and not isinstance(distinct, str):
        raise TypeError("distinct")
    if not (_number(when) and _number(seconds) and _count(threshold) and _count(index)):
        raise TypeError("not an observation")
    return Observation(
        rule, group, float(when), mark, event, float(seconds), threshold, distinct,
        Category(category), Severity(severity), title, target, tuple(_span(s) for s in spans),
        index,
    )  # fmt: skip


def encode_fired(fired: Sequence[tuple[int, Finding]]) -> bytes:
    """The findings a window partition's windows fired on one event, each with its place
    among the event's candidates (a ``fired`` record)."""
    return orjson.dumps([[i, _finding_out(f)] for i, f in fired])


def decode_fired(blob: bytes) -> list[tuple[int, Finding]] | None:
    """A ``fired`` record's value, checked; None for anything else."""
    try:
        items = orjson.loads(blob)
        if not isinstance(items, list):
            return None
        out = []
        for item in items:
            if not isinstance(item, list) or len(item) != 2 or not _count(item[0]):
                return None
            out.append((item[0], _finding(item[1])))
        return out
    except (orjson.JSONDecodeError, IndexError, TypeError, ValueError):
        return None


def _number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def decode_evaluation(blob: bytes) -> Evaluated | None:
    """The ``evaluated`` header, checked field by field; None for anything else."""
    try:
        d = orjson.loads(blob)
        if not isinstance(d, dict) or not isinstance(d.get("rules"), str):
            return None
        findings = [_finding(f) for f in d["f"]]
        exhausted = tuple(_strs(d["x"]))
        p = d["p"]
        fps = None if p is None else (frozenset(_strs(p[0])), frozenset(_strs(p[1])))
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError):
        return None
    return d["rules"], findings, exhausted, fps


def _strs(values: object) -> list[str]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise TypeError("not a list of strings")
    return values


def _finding(f: object) -> Finding:
    if not isinstance(f, list) or len(f) != 7:
        raise TypeError("not a finding")
    rule, category, severity, reason, target, score, spans = f
    if not (isinstance(rule, str) and isinstance(reason, str) and isinstance(spans, list)):
        raise TypeError("not a finding")
    if target is not None and not isinstance(target, str):
        raise TypeError("target")
    if score is not None and (isinstance(score, bool) or not isinstance(score, int | float)):
        raise TypeError("score")
    return Finding(
        rule, Category(category), Severity(severity), reason, tuple(_span(s) for s in spans),
        target, None if score is None else float(score),
    )  # fmt: skip


def _span(s: object) -> Span:
    if not isinstance(s, list) or len(s) != 7:
        raise TypeError("not a span")
    fld, start, end, kind, redacted, confidence, sensitive = s
    ok = (
        isinstance(fld, str) and isinstance(kind, str) and isinstance(redacted, str)
        and type(start) is int and type(end) is int and 0 <= start <= end
        and isinstance(confidence, int | float) and not isinstance(confidence, bool)
        and isinstance(sensitive, bool)
    )  # fmt: skip
    if not ok:
        raise TypeError("not a span")
    return Span(fld, start, end, kind, redacted, float(confidence), sensitive)


def header_values(headers: Sequence[tuple[Any, Any]]) -> dict[str, bytes]:
    """The headers that are (str, bytes) pairs; anything else a producer wrote is ignored."""
    return {k: v for k, v in headers if isinstance(k, str) and isinstance(v, bytes)}


def header_int(h: Mapping[str, bytes], name: str) -> int:
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        return int(h.get(name, b"0").decode("ascii"))
    return 0


def tick_headers(seq: int, lane: int | None = None) -> list[tuple[str, bytes]]:
    """A tick; ``lane``: the events partition it stands for (the observations topic)."""
    headers = [("tick", str(seq).encode())]
    if lane is not None:
        headers.append(("lane", str(lane).encode()))
    return headers


def record_seq(h: Mapping[str, bytes]) -> tuple[bool, int | None]:
    """(is a tick, its ``tick`` or ``seq`` number); the number is None when absent or not
    a non-negative decimal (a record from before the numbering, or a stranger's)."""
    tick = "tick" in h
    raw = h.get("tick" if tick else "seq")
    if raw is None or not raw.isdigit() or len(raw) > 19 or int(raw) > _MAX_SEQ:
        return tick, None  # a number no ingest writes cannot move the merge's marks
    return tick, int(raw)


_MAX_SEQ = 2**63 - 1  # an ingest numbers from time_ns(): about 1.8e18 now


def header_text(h: Mapping[str, bytes], name: str) -> str | None:
    with contextlib.suppress(UnicodeDecodeError):
        return h[name].decode() if name in h else None
    return None


def raw_event(
    value: bytes,
    headers: Sequence[tuple[Any, Any]] | Mapping[str, bytes],
    position: str | None,
) -> RawEvent:
    """The RawEvent of an enriched record (``headers`` as the record has them, or as
    ``header_values`` gave them); ``position`` (this consumer's, after the record) takes
    the place of the SSE id. A header that does not decode is ignored (the event then
    goes on without it: no content means detection on metadata only). A record with no value
    becomes an empty event, which the pipeline counts as malformed."""
    h = headers if isinstance(headers, Mapping) else header_values(headers)
    evaluated = decode_evaluation(h["evaluated"]) if "evaluated" in h else None
    content = None
    if "content" in h:
        try:
            parsed = orjson.loads(h["content"])
        except orjson.JSONDecodeError:
            parsed = None
        content = parsed if isinstance(parsed, dict) else None
    data = value if isinstance(value, bytes) else b""
    return RawEvent(position, data, header_int(h, "recv_ns"), content, evaluated)


def format_position(
    topic: str,
    offsets: Mapping[int, int],
    marks: Mapping[int, int] | None = None,
    also: tuple[str, Mapping[int, int]] | None = None,
) -> str:
    """The position; with ``marks`` (the detect stage's merge), each entry also carries its
    partition's mark as ``seq``; ``also``: a second topic's offsets (the fired topic)."""
    entries: list[dict[str, object]] = []
    for p, o in sorted(offsets.items()):
        entry: dict[str, object] = {"topic": topic, "partition": p, "offset": o}
        mark = marks.get(p, -1) if marks else -1
        if mark >= 0:
            entry["seq"] = mark
        entries.append(entry)
    if also is not None:
        other, more = also
        entries += [{"topic": other, "partition": p, "offset": o} for p, o in sorted(more.items())]
    return orjson.dumps(entries).decode()


def parse_marks(position: str, topic: str, also: str | None = None) -> dict[int, int]:
    """partition -> the merge's mark saved in a position ({} for one without marks);
    raises ValueError as ``parse_position`` does."""
    parse_position(position, topic, also)
    out: dict[int, int] = {}
    for e in orjson.loads(position):
        seq = e.get("seq")
        if e["topic"] == topic and _count(seq) and seq < 2**63:
            out[e["partition"]] = seq
    return out


def parse_position(position: str, topic: str, also: str | None = None) -> dict[int, int]:
    """partition -> next offset on ``topic``; entries on ``also`` are allowed (read them
    with ``parse_position(position, also, topic)``); raises ValueError for anything rcwatch
    did not write."""
    try:
        entries = orjson.loads(position)
    except orjson.JSONDecodeError as exc:
        raise ValueError("not JSON") from exc
    if not isinstance(entries, list):
        raise ValueError("not a list")
    out: dict[int, int] = {}
    for e in entries:
        if isinstance(e, dict) and also is not None and e.get("topic") == also:
            p, o = e.get("partition"), e.get("offset")
            if not (_count(p) and _count(o)):
                raise ValueError("partition and offset must be non-negative integers")
            continue
        if not isinstance(e, dict) or e.get("topic") != topic:
            raise ValueError(f"not a position on {topic}")
        p, o = e.get("partition"), e.get("offset")
        if not (_count(p) and _count(o)):
            raise ValueError("partition and offset must be non-negative integers")
        out[p] = o
    return out


def _count(x: object) -> TypeGuard[int]:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0
