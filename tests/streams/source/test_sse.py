"""SSE decoding per the WHATWG event-stream rules, as Wikimedia frames it."""

from __future__ import annotations

import pytest

from streams.source.sse import SSEDecoder, SSEEvent

WIKIMEDIA = (
    b":ok\n\n"
    b'event: message\nid: [{"topic":"eqiad.mediawiki.recentchange","partition":0,'
    b'"timestamp":1}]\ndata: {"a": 1}\n\n'
    b'event: message\nid: [2]\ndata: {"b": 2}\n\n'
)


def _all(decoder: SSEDecoder, chunks: list[bytes]) -> list[SSEEvent]:
    out: list[SSEEvent] = []
    for c in chunks:
        out.extend(decoder.feed(c))
    return out


def test_wikimedia_framing() -> None:
    d = SSEDecoder()
    events = d.feed(WIKIMEDIA)
    assert [(e.event, e.data) for e in events] == [
        ("message", b'{"a": 1}'),
        ("message", b'{"b": 2}'),
    ]
    assert events[1].id == "[2]"
    assert d.comments == 1


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64])
def test_any_chunking_gives_the_same_events(size: int) -> None:
    whole = SSEDecoder().feed(WIKIMEDIA)
    chunks = [WIKIMEDIA[i : i + size] for i in range(0, len(WIKIMEDIA), size)]
    assert _all(SSEDecoder(), chunks) == whole


@pytest.mark.parametrize("eol", [b"\r\n", b"\r"])
def test_other_line_endings(eol: bytes) -> None:
    text = WIKIMEDIA.replace(b"\n", eol)
    whole = SSEDecoder().feed(WIKIMEDIA)
    assert SSEDecoder().feed(text) == whole
    # a CR at the end of one chunk and LF at the start of the next is one line end
    chunks = [text[i : i + 1] for i in range(len(text))]
    assert _all(SSEDecoder(), chunks) == whole


def test_multiline_data_and_single_leading_space() -> None:
    d = SSEDecoder()
    [ev] = d.feed(b"data:  two spaces\ndata:none\ndata\n\n")
    assert ev.data == b" two spaces\nnone\n"


def test_id_persists_and_null_id_is_ignored() -> None:
    d = SSEDecoder(last_id="start")
    a, b, c = d.feed(b"data: 1\n\nid: x\ndata: 2\n\nid: a\x00b\ndata: 3\n\n")
    assert (a.id, b.id, c.id) == ("start", "x", "x")


def test_event_type_resets_after_dispatch_and_retry_is_read() -> None:
    d = SSEDecoder()
    a, b = d.feed(b"event: error\ndata: {}\n\nretry: 1500\ndata: 2\n\n")
    assert (a.event, b.event) == ("error", "message")
    assert d.retry_ms == 1500


def test_incomplete_event_is_not_dispatched() -> None:
    d = SSEDecoder()
    assert d.feed(b'event: message\nid: 1\ndata: {"half') == []
    assert d.buffered_bytes > 0


def test_oversized_line_is_skipped_and_marked() -> None:
    d = SSEDecoder(max_line_bytes=100)
    big = b"data: " + b"x" * 500 + b"\n\n"
    events = _all(d, [b"id: 7\n", big[:50], big[50:300], big[300:], b"data: ok\n\n"])
    assert [(e.oversized, e.id) for e in events] == [(True, "7"), (False, "7")]
    assert events[1].data == b"ok"
    assert d.buffered_bytes == 0


def test_oversized_within_one_chunk() -> None:
    d = SSEDecoder(max_line_bytes=10)
    events = d.feed(b"id: 1\ndata: 0123456789ABCDEF\n\ndata: fine\n\n")
    assert [(e.oversized, e.data) for e in events] == [(True, b""), (False, b"fine")]


def test_one_mebibyte_event_is_accepted_by_default() -> None:
    payload = b'{"comment": "' + b"z" * (1 << 20) + b'"}'
    d = SSEDecoder()
    chunks = [b"event: message\nid: 1\ndata: " + payload[:4096]]
    chunks += [payload[i : i + 65536] for i in range(4096, len(payload), 65536)]
    chunks.append(b"\n\n")
    [ev] = _all(d, chunks)
    assert ev.data == payload and not ev.oversized
