"""Positions over a topic, written like EventStreams ids, read back strictly."""

from __future__ import annotations

import pytest

from streams.scaleout.records import format_position, parse_position, raw_event, record_headers


def test_a_position_round_trips() -> None:
    text = format_position("en", {1: 7, 0: 3})
    assert (
        text == '[{"topic":"en","partition":0,"offset":3},{"topic":"en","partition":1,"offset":7}]'
    )
    assert parse_position(text, "en") == {0: 3, 1: 7}


@pytest.mark.parametrize(
    "bad",
    [
        "not json", '{"topic": "en"}', '[{"topic": "other", "partition": 0, "offset": 1}]',
        '[{"topic": "en", "partition": -1, "offset": 1}]',
        '[{"topic": "en", "partition": 0, "offset": true}]',
        '[{"topic": "en", "partition": 0}]',
    ],
)  # fmt: skip
def test_anything_else_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (the message varies by case)
        parse_position(bad, "en")


def test_a_record_carries_the_text_and_a_bad_header_is_ignored() -> None:
    content = {"status": "ok", "added": "hi", "removed": None, "reason": None}
    headers = record_headers('[{"x":1}]', 5, content)
    ev = raw_event(b"{}", headers, "POS")
    assert (ev.sse_id, ev.recv_ns, ev.content) == ("POS", 5, content)
    ev = raw_event(b"{}", [("recv_ns", b"soon"), ("content", b"{torn")], "POS")
    assert (ev.recv_ns, ev.content) == (0, None)


def test_headers_of_any_shape_never_raise() -> None:
    """Defect: a null recv_ns header raised TypeError out of the detect stage's source, at
    the same offset on every restart."""
    ev = raw_event(
        b"{}", [("recv_ns", None), ("content", None), (None, b"x"), ("sse_id", b"\xff")], "P"
    )
    assert (ev.recv_ns, ev.content, ev.data) == (0, None, b"{}")
    assert raw_event(None, [], "P").data == b""  # type: ignore[arg-type]
