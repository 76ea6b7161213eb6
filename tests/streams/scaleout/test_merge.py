"""The detect stage's merge, alone: partitions back into the ingest's order, and what may
not wait."""

from __future__ import annotations

from streams.scaleout.merge import SeqMerge


def _merge(partitions: int = 2, wait: float = 60.0, most: int = 1000) -> SeqMerge[str]:
    return SeqMerge(dict.fromkeys(range(partitions), 0), max_wait_seconds=wait, max_buffered=most)


def _take(m: SeqMerge[str], now: float = 0.0) -> list[tuple[str, str]]:
    return list(m.release(now))


def test_partitions_read_out_of_order_come_out_in_stream_order() -> None:
    m = _merge()
    # partition 1's worker was quicker: its events are read before partition 0's
    for off, seq in enumerate((2, 4, 6)):
        assert m.add(1, off, seq, f"e{seq}", 0.0) is None
    assert _take(m) == []  # partition 0 may still bring 1, 3 or 5
    assert m.add(0, 0, 1, "e1", 0.0) is None
    assert m.add(0, 1, 3, "e3", 0.0) is None
    assert [x for x, _ in _take(m)] == ["e1", "e2", "e3", "e4"]
    m.tick(0, 2, 10)  # partition 0 holds nothing more up to 10
    assert _take(m) == [("e6", "ordered")]
    assert m.counts["ordered"] == 5 and m.buffered == 0


def test_a_quiet_partition_holds_events_back_until_its_tick() -> None:
    m = _merge(3)
    m.add(0, 0, 5, "e5", 0.0)
    m.tick(1, 0, 7)
    assert _take(m) == []  # partition 2 has shown nothing yet
    m.tick(2, 0, 3)
    assert _take(m) == []  # ... and only up to 3: it may still bring 4
    m.tick(2, 1, 4)
    assert _take(m) == [("e5", "ordered")]


def test_a_redelivery_and_an_unnumbered_record_go_on_at_once() -> None:
    m = _merge()
    m.tick(1, 0, 100)
    for off, seq in enumerate((10, 11, 12)):
        m.add(0, off, seq, f"e{seq}", 0.0)
    assert [x for x, _ in _take(m)] == ["e10", "e11", "e12"]
    # a takeover: the new owner passes on again what the old one had not committed
    assert m.add(0, 3, 11, "again", 0.0) == ("again", "late")
    assert m.add(1, 1, None, "old", 0.0) == ("old", "unsequenced")
    assert m.counts == {"ordered": 3, "late": 1, "unsequenced": 1, "forced": 0}


def test_a_partition_silent_past_the_wait_no_longer_holds_the_others() -> None:
    m = _merge(wait=30.0)
    m.add(0, 0, 1, "e1", 100.0)
    m.add(0, 1, 2, "e2", 110.0)
    assert _take(m, 129.0) == []
    assert _take(m, 130.0) == [("e1", "forced")]  # e2 has waited 20 s only
    assert _take(m, 140.0) == [("e2", "forced")]
    # the silent partition's event, when it comes, is late: it goes on at once
    assert m.add(1, 0, 1, "slow", 141.0) == ("slow", "late")


def test_too_many_held_events_let_the_oldest_go() -> None:
    m = _merge(most=2)
    for off in range(4):
        m.add(0, off, off + 1, f"e{off + 1}", 0.0)
    assert [x for x, _ in _take(m)] == ["e1", "e2"]
    assert m.buffered == 2 and m.counts["forced"] == 2


def test_the_position_is_the_first_event_still_held() -> None:
    m: SeqMerge[str] = SeqMerge({0: 40, 1: 70}, max_wait_seconds=60.0, max_buffered=1000)
    m.add(0, 40, 2, "e2", 0.0)
    m.add(0, 41, 3, "e3", 0.0)
    m.add(1, 70, 5, "e5", 0.0)
    assert m.positions() == {0: 40, 1: 70}  # nothing passed on: a restart reads all again
    taken = []
    for item, _ in m.release(0.0):
        taken.append((item, m.positions()))
    # e5 waits: partition 0 may still bring 4
    assert taken == [("e2", {0: 41, 1: 70}), ("e3", {0: 42, 1: 70})]
    assert m.marks() == {0: 3, 1: -1}  # partition 1's mark before e5, which is read again
    m.tick(0, 42, 9)
    assert [(x, m.positions()) for x, _ in m.release(0.0)] == [("e5", {0: 43, 1: 71})]
    assert m.marks() == {0: 9, 1: 5}


def test_a_restarted_merge_knows_how_far_each_partition_had_got() -> None:
    """Reviewed defect: after a restart a quiet partition held every event back until
    its next tick (or the whole wait, when the stream had stopped)."""
    m: SeqMerge[str] = SeqMerge(
        {0: 43, 1: 71}, max_wait_seconds=60.0, max_buffered=1000, marks={0: 9, 1: 5}
    )
    m.add(1, 71, 10, "e10", 0.0)  # partition 0 showed 9 before the restart: nothing to wait for
    assert list(m.release(0.0)) == [("e10", "ordered")]


def test_the_longest_held_event_bounds_the_wait_whatever_its_number() -> None:
    m = _merge(3, wait=30.0)
    m.add(1, 0, 9, "e9", 100.0)  # held since 100, behind partition 2's silence
    m.add(0, 0, 4, "e4", 125.0)  # a smaller number, come later
    assert _take(m, 129.0) == []
    # e9 has waited 30 s: everything up to it goes on, in order
    assert _take(m, 130.0) == [("e4", "forced"), ("e9", "forced")]


def test_upto_holds_events_another_input_has_not_caught_up_with() -> None:
    """The detect stage with partitioned windows: an event waits for the window
    partitions' findings (``upto``: how far all of them have counted)."""
    m = _merge()
    m.add(0, 0, 1, "e1", 0.0)
    m.add(1, 0, 2, "e2", 0.0)
    m.tick(0, 1, 5)
    m.tick(1, 1, 5)
    assert [x for x, _ in m.release(0.0, upto=1)] == ["e1"]
    assert list(m.release(0.0, upto=1)) == []
    assert list(m.release(61.0, upto=1)) == [("e2", "forced")]  # the wait still bounds it


def test_frontier_and_first_held_of_lanes_sharing_one_partition() -> None:
    """A window partition merges lanes that share its offsets: its tick is the frontier,
    its commit the first offset held."""
    m = _merge(3)
    m.add(0, 10, 3, "a", 0.0)
    m.add(1, 11, 2, "b", 0.0)
    assert m.first_held() == 10
    assert m.frontier() == -1  # lane 2 has shown nothing: it may bring anything
    m.tick(2, 12, 1)
    assert [x for x, _ in m.release(0.0)] == ["b"]  # lane 2 may still bring 2: a waits
    assert m.first_held() == 10 and m.frontier() == 1
    m.tick(2, 13, 7)
    assert [x for x, _ in m.release(0.0)] == ["a"]
    assert m.first_held() is None and m.frontier() == 2  # lane 1 has shown only 2
