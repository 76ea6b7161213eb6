"""Stream positions: checked before use, live-end entries pinned so nothing can be skipped."""

from __future__ import annotations

import orjson
import pytest

from streams.source.position import (
    MAX_POSITION_BYTES,
    PositionError,
    check,
    has_live_end,
    pin_live_ends,
    resume_header,
)

EQIAD = '{"topic":"eqiad.mediawiki.recentchange","partition":0,"timestamp":1000}'
IDLE = '{"topic":"codfw.mediawiki.recentchange","partition":0,"offset":-1}'


def test_live_end_entries_are_pinned_to_the_floor() -> None:
    raw = f"[{EQIAD},{IDLE}]"
    assert has_live_end(raw)
    pinned = orjson.loads(pin_live_ends(raw, 500))
    assert pinned[0] == orjson.loads(EQIAD), "real positions are kept as they are"
    assert pinned[1] == {"topic": "codfw.mediawiki.recentchange", "partition": 0, "timestamp": 500}
    assert not has_live_end(pin_live_ends(raw, 500))


def test_positions_without_live_ends_are_kept_verbatim() -> None:
    raw = f'[{EQIAD},{{"partition":0,"offset":17,"topic":"codfw.mediawiki.recentchange"}}]'
    assert pin_live_ends(raw, 500) == raw  # key order and all: sent back as received
    assert check(raw) == raw


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("not-a-json-array", "not_json"),
        ('{"topic":"t"}', "not_an_array_of_entries"),
        ("[]", "not_an_array_of_entries"),
        ("[1]", "entry_not_an_object"),
        ('[{"topic":"t\\u0007","partition":0,"offset":1}]', "bad_topic"),
        ('[{"topic":"a/../b","partition":0,"offset":1}]', "bad_topic"),
        ('[{"topic":"t","partition":-1,"offset":1}]', "bad_partition"),
        ('[{"topic":"t","partition":0}]', "no_position"),
        ('[{"topic":"t","partition":0,"timestamp":"soon"}]', "bad_timestamp"),
        ('[{"topic":"t","partition":0,"offset":true}]', "bad_offset"),
        ('[{"topic":"t","partition":0,"offset":1}]\r\nX-Injected: yes', "control_or_non_ascii"),
        ('[{"topic":"t","partition":0,"offset":1,"x":"\x1b[2J"}]', "control_or_non_ascii"),
        ('[{"topic":"t","partition":0,"offset":1,"x":"é"}]', "control_or_non_ascii"),
        ("[" + ",".join([IDLE] * 65) + "]", "not_an_array_of_entries"),
        ('[{"topic":"t","partition":0,"offset":1,"pad":"' + "x" * MAX_POSITION_BYTES + '"}]',
         "too_long"),
    ],
)  # fmt: skip
def test_ids_that_cannot_be_positions_are_refused(raw: str, reason: str) -> None:
    with pytest.raises(PositionError) as err:
        pin_live_ends(raw, 0)
    assert err.value.reason == reason
    with pytest.raises(PositionError):
        check(raw)


def test_resume_header_moves_timestamps_back_by_the_overlap() -> None:
    raw = f'[{EQIAD},{{"topic":"codfw.mediawiki.recentchange","partition":0,"offset":5}}]'
    moved = orjson.loads(resume_header(raw, 1))
    assert moved[0]["timestamp"] == 999 and moved[1]["offset"] == 5
    assert resume_header(raw, 0) == raw


def test_an_earliest_offset_is_kept_not_pinned() -> None:
    """-2 is Kafka's *earliest*: sent back it replays the backlog, which skips nothing.
    Pinning it to the connection's start (as for -1) would skip that backlog."""
    raw = f'[{EQIAD},{{"topic":"codfw.mediawiki.recentchange","partition":0,"offset":-2}}]'
    assert not has_live_end(raw)
    assert pin_live_ends(raw, 500) == raw


def test_a_topic_missing_from_the_servers_id_keeps_its_last_position() -> None:
    """An id naming fewer topics than the last one, sent back, would make the service
    assign only those: the other topic would never be read again."""
    from streams.source.position import next_position

    both = f'[{EQIAD},{{"topic":"codfw.mediawiki.recentchange","partition":0,"timestamp":900}}]'
    one = '[{"topic":"eqiad.mediawiki.recentchange","partition":0,"timestamp":2000}]'
    kept, carried = next_position(one, 500, both)
    assert carried == 1
    assert orjson.loads(kept) == [
        {"topic": "eqiad.mediawiki.recentchange", "partition": 0, "timestamp": 2000},
        {"topic": "codfw.mediawiki.recentchange", "partition": 0, "timestamp": 900},
    ]
    # the usual case: same topics, the id is kept verbatim; no previous: nothing to carry
    same = f'[{EQIAD},{{"topic":"codfw.mediawiki.recentchange","partition":0,"offset":4}}]'
    assert next_position(same, 500, both) == (same, 0)
    assert next_position(one, 500, None) == (one, 0)
    # live ends are pinned on the way
    idle = f"[{EQIAD},{IDLE}]"
    kept, carried = next_position(idle, 500, both)
    assert carried == 0 and not has_live_end(kept)
