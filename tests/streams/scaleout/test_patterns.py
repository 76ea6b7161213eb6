"""Partitioned pattern windows give exactly what one process's windows give: page memory
sharded by page, group windows sharded by group key, the lanes arriving in any interleaving,
records repeated after a takeover, and a shard restored from its changelog halfway."""

from __future__ import annotations

import random
from collections import defaultdict

import orjson
import pytest

from detectors.base import Finding
from detectors.event import MalformedEvent, RawEvent, decode_event
from detectors.windows import Observation, WindowStore, page_key
from sinks.metrics import Metrics
from streams.app import build_detection
from streams.pipeline.stages import Pipeline, content_context
from streams.scaleout.patterns import MARKS_KEY, PageShard, WindowShard, window_partition
from streams.scaleout.records import (
    decode_fired,
    decode_observations,
    encode_fired,
    encode_observations,
)
from streams.settings import Settings
from tests import scenarios as sc

P, Q = 4, 3  # events partitions (lanes), window partitions


def _pipeline() -> Pipeline:
    metrics = Metrics()
    return Pipeline(Settings().scope.build(), build_detection(Settings(), metrics), metrics)


def _events() -> list[RawEvent]:
    events = sc.recorded()[:1500]
    # every scenario injected once, spread over the recorded events
    data: list[RawEvent] = [RawEvent(None, e, 0) for e in events]
    for i, (_rule, scenario) in enumerate(sc.scenarios()):
        injected = [RawEvent(None, e, 0, c) for e, c in scenario]
        at = 100 + i * 120  # between recorded events, stamped with the run's time
        data[at:at] = injected
    return data


def _alerts(pipeline: Pipeline, events: list[RawEvent]) -> list[tuple[str, str, str]]:
    out = []
    for i in range(0, len(events), 50):
        out += [(a.id, a.rule, a.reason) for a in pipeline.process(events[i : i + 50]).alerts]
    return out


def _shard_observations(
    events: list[RawEvent],
) -> tuple[dict[int, list[tuple[int, int, list[Observation]]]], dict[int, PageShard]]:
    """The workers' step: per window partition, the records (lane, seq, observations) in the
    order each lane produced them."""
    detection = build_detection(Settings(), Metrics())
    scope = Settings().scope.build()
    engine = detection.engine
    shards = {p: PageShard(WindowStore()) for p in range(P)}
    out: dict[int, list[tuple[int, int, list[Observation]]]] = defaultdict(list)
    for seq, raw in enumerate(events):
        try:
            change = decode_event(raw.data)
        except MalformedEvent:
            continue
        if change.domain == "canary" or not scope.accepts(change):
            continue
        ctx = content_context(None)
        if raw.content is not None:
            from streams.pipeline.stages import content_from_record

            ctx = content_context(content_from_record(raw.content))
        findings = engine.evaluate(change, ctx)
        lane = page_key(change) % P
        obs = shards[lane].observe(
            seq, change=change, ctx=ctx, findings=findings, fingerprints=None, engine=engine
        )
        by_q: dict[int, list[Observation]] = defaultdict(list)
        for o in obs:
            by_q[window_partition(o, Q)].append(o)
        for q, group in by_q.items():
            # through the record encoding, as the topic carries them
            decoded = decode_observations(encode_observations(group))
            assert decoded == group
            out[q].append((lane, seq, decoded))
    return out, shards


def _interleave(
    records: list[tuple[int, int, list[Observation]]], rng: random.Random
) -> list[tuple[int, int, list[Observation]]]:
    """The lanes' records in a random interleaving that keeps each lane's order."""
    lanes: dict[int, list[tuple[int, int, list[Observation]]]] = defaultdict(list)
    for r in records:
        lanes[r[0]].append(r)
    out = []
    while any(lanes.values()):
        lane = rng.choice([k for k, v in lanes.items() if v])
        out.append(lanes[lane].pop(0))
    return out


def _count(
    per_q: dict[int, list[tuple[int, int, list[Observation]]]], rng: random.Random
) -> dict[int, list[tuple[int, Finding]]]:
    fired: dict[int, list[tuple[int, Finding]]] = defaultdict(list)
    for q in range(Q):
        shard = WindowShard(WindowStore(), P, 0, max_wait_seconds=1e9, max_buffered=10**6)
        for offset, (lane, seq, obs) in enumerate(_interleave(per_q.get(q, []), rng)):
            for s, f in shard.add(lane, offset, seq, obs, 0.0) + shard.release(0.0):
                fired[s or 0] += decode_fired(encode_fired(f)) or []
        for lane in range(P):  # the final ticks
            shard.tick(lane, 10**6, 10**6)
        for s, f in shard.release(0.0):
            fired[s or 0] += f
        assert shard.frontier() == 10**6
    return fired


def _partitioned(
    events: list[RawEvent], fired: dict[int, list[tuple[int, Finding]]]
) -> list[RawEvent]:
    return [
        r._replace(patterns=tuple(f for _, f in sorted(fired.get(i, []), key=lambda x: x[0])))
        for i, r in enumerate(events)
    ]


@pytest.mark.parametrize("seed", [1, 2])
def test_partitioned_windows_fire_what_one_process_fires(seed: int) -> None:
    events = _events()
    expected = _alerts(_pipeline(), events)
    assert {r for _, r, _ in expected if r.startswith("pattern.")} >= {"pattern.brigading"}, (
        expected
    )
    per_q, _ = _shard_observations(events)
    fired = _count(per_q, random.Random(seed))
    assert _alerts(_pipeline(), _partitioned(events, fired)) == expected


def test_a_record_read_again_is_never_counted_twice() -> None:
    """A takeover re-reads what was not committed: the lanes bring records again."""
    events = _events()
    expected = _alerts(_pipeline(), events)
    per_q, _ = _shard_observations(events)
    repeated = {q: recs + recs[len(recs) // 2 :] for q, recs in per_q.items()}
    fired = _count(repeated, random.Random(3))
    assert _alerts(_pipeline(), _partitioned(events, fired)) == expected


def test_a_window_shard_restored_from_its_changelog_halfway_goes_on_the_same() -> None:
    events = _events()
    expected = _alerts(_pipeline(), events)
    per_q, _ = _shard_observations(events)
    fired: dict[int, list[tuple[int, Finding]]] = defaultdict(list)
    for q in range(Q):
        records = per_q.get(q, [])
        half = len(records) // 2
        first = WindowShard(WindowStore(), P, 0, max_wait_seconds=1e9, max_buffered=10**6)
        changelog: list[tuple[bytes, bytes | None]] = []
        for offset, (lane, seq, obs) in enumerate(records[:half]):
            for s, f in first.add(lane, offset, seq, obs, 0.0) + first.release(0.0):
                fired[s or 0] += f
            changelog += first.changelog()
        committed = first.position() - min(5, half)  # the commit lagged the changelog
        store, marks = WindowStore(), dict[int, int]()
        for key, value in changelog:
            assert WindowShard.restore_into(store, marks, key, value)
        second = WindowShard(
            store, P, committed, marks=marks, max_wait_seconds=1e9, max_buffered=10**6
        )
        for offset, (lane, seq, obs) in enumerate(records):
            if offset < committed:
                continue
            for s, f in second.add(lane, offset, seq, obs, 0.0) + second.release(0.0):
                fired[s or 0] += f
        for lane in range(P):
            second.tick(lane, 10**6, 10**6)
        for s, f in second.release(0.0):
            fired[s or 0] += f
    assert _alerts(_pipeline(), _partitioned(events, fired)) == expected


def test_a_page_shard_restored_from_its_changelog_passes_over_what_it_did() -> None:
    """A worker taking a partition over re-reads events its predecessor worked out: those
    whose page already went past them give nothing again; the rest give the same."""
    events = _events()
    detection = build_detection(Settings(), Metrics())
    engine = detection.engine
    changes = []
    for seq, raw in enumerate(events):
        try:
            change = decode_event(raw.data)
        except MalformedEvent:
            continue
        ctx = content_context(None)
        if raw.content is not None:
            from streams.pipeline.stages import content_from_record

            ctx = content_context(content_from_record(raw.content))
        changes.append((seq, change, ctx, engine.evaluate(change, ctx)))
    whole = PageShard(WindowStore())
    want = [
        whole.observe(s, change=c, ctx=x, findings=f, fingerprints=None, engine=engine)
        for s, c, x, f in changes
    ]
    first = PageShard(WindowStore())
    half = len(changes) // 2
    got = [
        first.observe(s, change=c, ctx=x, findings=f, fingerprints=None, engine=engine)
        for s, c, x, f in changes[:half]
    ]
    changelog = first.changelog()
    assert changelog and first.changelog() == []  # drained
    second = PageShard(WindowStore())
    for key, value in changelog:
        assert second.restore(key, value)
    again = [
        second.observe(s, change=c, ctx=x, findings=f, fingerprints=None, engine=engine)
        for s, c, x, f in changes[half - 40 :]
    ]
    assert all(o == [] for o in again[:40])  # re-read: passed over
    assert got + again[40:] == want
    assert second.replayed > 0


def test_changelog_records_a_version_did_not_write_are_refused() -> None:
    shard = PageShard(WindowStore())
    assert not shard.restore(b"not a page", b"[null, 1]")
    assert not shard.restore(b"12", b"{")
    assert not shard.restore(b"12", orjson.dumps([[["x", 1.0], {}], "7"]))
    store, marks = WindowStore(), dict[int, int]()
    assert not WindowShard.restore_into(store, marks, MARKS_KEY, b"[1]")
    assert not WindowShard.restore_into(store, marks, MARKS_KEY, b'{"0": "x"}')
    assert not WindowShard.restore_into(store, marks, b'["r"]', b"[]")
    assert not WindowShard.restore_into(store, marks, b'["r", "g"]', b"[[1]]")
    assert store.size == 0 and marks == {}
    assert decode_observations(b'[["r"]]') is None
    assert decode_fired(b"[[-1, []]]") is None


def _obs(rule: str, group: str, when: float, event: str, threshold: int = 2) -> Observation:
    from detectors.base import Category, Severity

    return Observation(
        rule, group, when, "", event, 3600.0, threshold, None, Category.HARASSMENT,
        Severity.HIGH, "title", "target", (),
    )  # fmt: skip


def test_an_observation_out_of_order_counts_and_only_a_held_copy_is_passed_over() -> None:
    """Review: a late record whose seq was above the last released was dropped as a repeat
    without checking that a copy was held, so a reordered first copy was never counted."""
    shard = WindowShard(WindowStore(), 2, 0, max_wait_seconds=1e9, max_buffered=10**6)
    assert shard.add(0, 0, 12, [_obs("r", "g", 12.0, "e12")], 0.0) == []  # held: lane 1
    assert shard.add(0, 1, 12, [_obs("r", "g", 12.0, "e12")], 0.0) == []  # its copy
    assert shard.repeats == 1 and shard.counted == 0
    shard.add(0, 2, 10, [_obs("r", "g", 10.0, "e10")], 0.0)  # reordered: late, not held
    assert shard.repeats == 1 and shard.counted == 1
    shard.tick(1, 3, 20)
    fired = shard.release(0.0)
    assert [(s, [f.rule for _, f in fs]) for s, fs in fired] == [(12, ["r"])]  # 2 in window


def test_window_shards_keep_the_key_cap_and_tombstone_what_they_forget() -> None:
    """Review: window stages never applied the key cap, and their changelogs never forgot."""
    shard = WindowShard(WindowStore(max_keys=100), 1, 0, max_wait_seconds=1e9, max_buffered=10)
    for i in range(500):
        shard.add(0, i, i, [_obs("r", f"g{i}", float(i), f"e{i}", threshold=5)], 0.0)
        shard.release(0.0)
    assert shard.store.size <= 100 and shard.store.evictions >= 400
    records = shard.changelog()
    forgotten = [k for k, v in records if v is None]
    assert len(forgotten) >= 400  # tombstones: compaction drops them in time
    store, marks = WindowStore(max_keys=100), dict[int, int]()
    for key, value in records:
        assert WindowShard.restore_into(store, marks, key, value)
    assert store.size == shard.store.size and marks == {0: 499}


def test_page_memory_past_its_horizon_is_tombstoned_and_its_seq_forgotten() -> None:
    detection = build_detection(Settings(), Metrics())
    shard = PageShard(WindowStore(page_memory_seconds=60.0, pii_memory_seconds=60.0))
    base = orjson.loads(sc.recorded()[0])
    pages = []
    for i, t in enumerate((0.0, 30.0, 200.0)):
        e = dict(base, title=f"Page {i}", user=f"Editor {i}", type="edit", bot=False,
                 timestamp=int(1_700_000_000 + t))  # fmt: skip
        e["meta"] = dict(base["meta"], id=f"id-{i}", dt="")
        change = decode_event(orjson.dumps(e))
        pages.append(page_key(change))
        shard.observe(i, change=change, ctx=content_context(None), findings=[],
                      fingerprints=None, engine=detection.engine)  # fmt: skip
    records = dict(shard.changelog())
    # the first two pages left the 60 s memory when the third edit came: forgotten
    assert records[str(pages[0]).encode()] is None
    assert records[str(pages[1]).encode()] is None
    assert records[str(pages[2]).encode()] is not None
