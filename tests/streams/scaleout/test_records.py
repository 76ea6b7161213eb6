"""Positions over a topic, written like EventStreams ids, read back strictly."""

from __future__ import annotations

import orjson
import pytest

from detectors.base import Category, Finding, Severity, Span
from streams.scaleout.records import (
    decode_evaluation,
    encode_evaluation,
    format_position,
    parse_marks,
    parse_position,
    raw_event,
    record_headers,
    record_seq,
)


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


def test_a_workers_answer_round_trips_and_anything_odd_is_dropped() -> None:
    finding = Finding(
        "privacy.email-in-summary", Category.PRIVACY, Severity.MEDIUM, "Email address",
        (Span("summary", 3, 17, "email", "j***@e***.org", 0.9, True),), "User:X", 0.75,
    )  # fmt: skip
    fps: tuple[frozenset[str], frozenset[str]] = (frozenset({"email:ab12"}), frozenset())
    blob = encode_evaluation("d1g3st", [finding], {"email"}, fps)
    assert decode_evaluation(blob) == ("d1g3st", [finding], ("email",), fps)
    assert decode_evaluation(encode_evaluation("d", [], (), None)) == ("d", [], (), None)
    ev = raw_event(b"{}", record_headers(None, 1, None, blob), "P")
    assert ev.evaluated == ("d1g3st", [finding], ("email",), fps)
    good = orjson.loads(blob)
    for bad in (
        b"{torn", b"[]", b'{"rules": 5}', orjson.dumps({**good, "f": "x"}),
        orjson.dumps({**good, "f": [["r", "spam", "low", "x", None, None, []]]}),  # category
        orjson.dumps({**good, "f": [["r", "privacy", "low", "x", None, True, []]]}),  # score
        orjson.dumps({**good, "f": [["r", "privacy", "low", "x", None, None,
                                      [["summary", 5, 2, "email", "x", 1.0, True]]]]}),  # span
        orjson.dumps({**good, "x": [1]}), orjson.dumps({**good, "p": [["a"]]}),
    ):  # fmt: skip
        assert decode_evaluation(bad) is None, bad
        assert raw_event(b"{}", [("evaluated", bad)], "P").evaluated is None


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"seq": b"1796026656231491972"}, (False, 1796026656231491972)),
        ({"tick": b"42"}, (True, 42)),
        ({}, (False, None)),
        ({"seq": b"-1"}, (False, None)),
        ({"seq": b"1e9"}, (False, None)),
        ({"seq": "١٢".encode()}, (False, None)),  # digits, but not ASCII ones
        ({"seq": b"9" * 20}, (False, None)),  # no ingest writes it: it would end ordering
        ({"seq": b"9" * 5000}, (False, None)),  # nor a number too long to convert
        ({"tick": b"99999999999999999999"}, (True, None)),
    ],
)
def test_a_records_number_is_one_an_ingest_could_have_written(
    headers: dict[str, bytes], expected: tuple[bool, int | None]
) -> None:
    assert record_seq(headers) == expected


def test_a_detect_position_carries_the_merges_marks() -> None:
    text = format_position("en", {0: 3, 1: 7}, {0: 41, 1: -1})
    assert parse_position(text, "en") == {0: 3, 1: 7}
    assert parse_marks(text, "en") == {0: 41}
    assert parse_marks(format_position("en", {0: 3}), "en") == {}  # written before marks
    forged = '[{"topic":"en","partition":0,"offset":3,"seq":99999999999999999999}]'
    assert parse_marks(forged, "en") == {}


def test_a_position_over_two_topics_reads_back_per_topic() -> None:
    from streams.scaleout.records import format_position, parse_marks, parse_position

    pos = format_position("en", {0: 3, 1: 4}, {0: 9}, also=("fi", {0: 1, 1: 2}))
    assert parse_position(pos, "en", also="fi") == {0: 3, 1: 4}
    assert parse_position(pos, "fi", also="en") == {0: 1, 1: 2}
    assert parse_marks(pos, "en", also="fi") == {0: 9}
    with pytest.raises(ValueError, match="not a position on en"):
        parse_position(pos, "en")  # a second topic only where it is expected
    bad = format_position("en", {0: 1}, also=("fi", {0: -1}))
    with pytest.raises(ValueError, match="non-negative"):
        parse_position(bad, "en", also="fi")


def test_partitioned_windows_add_their_topics_changelogs_compacted() -> None:
    from streams.scaleout.config import ScaleOutConfig
    from streams.scaleout.topics import topic_specs

    assert len(topic_specs(ScaleOutConfig())) == 4
    specs = {s.name: s for s in topic_specs(ScaleOutConfig(windows="partitioned"))}
    assert specs["rcwatch-observations"].partitions == 8
    assert specs["rcwatch-pages-changelog"].config["cleanup.policy"] == "compact"
    assert specs["rcwatch-windows-changelog"].config["cleanup.policy"] == "compact"
    assert specs["rcwatch-fired"].config["cleanup.policy"] == "delete"
