"""The detect stage's source against a real broker (Tansu): the enriched topic's partitions
come out in the ingest's order whatever order the workers wrote them in, and a partition
that stays silent holds the others back no longer than the configured wait."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses

import orjson
import pytest

from detectors.event import RawEvent
from sinks.metrics import Metrics
from streams.scaleout.config import ScaleOutConfig
from streams.scaleout.kafka_source import KafkaSource
from streams.scaleout.records import parse_marks, parse_position
from streams.scaleout.topics import ensure_topics, topic_specs

pytestmark = pytest.mark.scaleout


def _cfg(broker: str, name: str, wait: float = 60.0) -> ScaleOutConfig:
    return ScaleOutConfig(
        bootstrap_servers=broker, events_topic=f"ev-{name}", enriched_topic=f"en-{name}",
        events_partitions=2, producer_max_batch_bytes=1, merge_max_wait_seconds=wait,
    )  # fmt: skip


async def _write(cfg: ScaleOutConfig, records: list[tuple[int, str, int]]) -> None:
    """(partition, "seq" | "tick", number) in the order a worker would write them."""
    from aiokafka import AIOKafkaProducer

    await ensure_topics(cfg.bootstrap_servers, topic_specs(cfg))
    p = AIOKafkaProducer(bootstrap_servers=cfg.bootstrap_servers, max_batch_size=1)
    await p.start()
    try:
        for partition, kind, n in records:
            value = b"" if kind == "tick" else orjson.dumps({"meta": {"id": f"e{n}"}})
            await p.send_and_wait(
                cfg.enriched_topic, value, headers=[(kind, str(n).encode())], partition=partition
            )
    finally:
        await p.stop()


async def _read(source: KafkaSource, n: int, within: float = 60.0) -> list[RawEvent]:
    got: list[RawEvent] = []

    async def collect() -> None:
        async for batch in source.batches():
            got.extend(batch)
            if len(got) >= n:
                return

    try:
        await asyncio.wait_for(collect(), within)
    except TimeoutError:
        pytest.fail(f"{len(got)} of {n} events came out: {[_id(e) for e in got]}")
    finally:
        source.stop()
    return got


def _id(event: RawEvent) -> str:
    return str(orjson.loads(event.data)["meta"]["id"])


async def test_partitions_written_out_of_order_come_out_in_stream_order(broker: str) -> None:
    """Defect: the source passed each partition on as it was read, so a slow worker's
    events reached the pattern windows after events that followed them in the stream."""
    cfg = _cfg(broker, "order")
    # partition 1's worker was ahead; partition 0's events come later, then its tick
    await _write(cfg, [(1, "seq", 2), (1, "seq", 4), (1, "seq", 5), (0, "seq", 1),
                       (0, "seq", 3), (0, "tick", 5), (1, "tick", 5)])  # fmt: skip
    metrics = Metrics()
    source = KafkaSource(cfg, cfg.enriched_topic, {}, 100, metrics)
    events = await _read(source, 5)
    assert [_id(e) for e in events] == ["e1", "e2", "e3", "e4", "e5"]
    # each event's position: what a restart after it reads again, never anything before it
    # the position after a batch rides on its last event: every event and tick read, and
    # how far each partition had got (a restart need not wait for their next ticks)
    assert events[-1].sse_id is not None
    assert parse_position(events[-1].sse_id, cfg.enriched_topic) == {0: 3, 1: 4}
    assert parse_marks(events[-1].sse_id, cfg.enriched_topic) == {0: 5, 1: 5}
    sample = metrics.registry.get_sample_value
    assert sample("rcwatch_merge_events_total", {"how": "ordered"}) == 5
    assert sample("rcwatch_merge_held_events") == 0


async def test_a_silent_partition_holds_the_others_back_only_so_long(broker: str) -> None:
    cfg = _cfg(broker, "silent", wait=1.0)
    await _write(cfg, [(1, "seq", 7), (1, "seq", 8)])  # partition 0: no worker, no tick
    metrics = Metrics()
    source = KafkaSource(cfg, cfg.enriched_topic, {}, 100, metrics)
    events = await _read(source, 2)
    assert [_id(e) for e in events] == ["e7", "e8"]
    sample = metrics.registry.get_sample_value
    assert sample("rcwatch_merge_events_total", {"how": "forced"}) == 2
    # held, the position stayed before them: a restart meanwhile would have read them again
    restart = KafkaSource(cfg, cfg.enriched_topic, {0: 0, 1: 1}, 100, Metrics())
    again = await _read(restart, 1)
    assert [_id(e) for e in again] == ["e8"]


async def test_stopping_while_events_are_held_ends_the_source(broker: str) -> None:
    cfg = _cfg(broker, "stop")
    await _write(cfg, [(1, "seq", 3)])
    source = KafkaSource(cfg, cfg.enriched_topic, {}, 100, Metrics())

    async def drain() -> list[RawEvent]:
        out: list[RawEvent] = []
        async for batch in source.batches():
            out.extend(batch)
        return out

    task = asyncio.create_task(drain())
    try:
        for _ in range(600):
            if source.merge is not None and source.merge.buffered == 1:
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the event was never held")
        source.stop()
        assert await asyncio.wait_for(task, 30) == []  # held, so never passed on
        assert source.offsets == {0: 0, 1: 0}
    finally:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task


async def test_partitioned_windows_findings_join_their_events_once_every_window_caught_up(
    broker: str,
) -> None:
    """With partitioned windows, an event goes on only when every window partition has
    counted it (a tick at least as far), carrying the findings the windows fired on it in
    the order of its candidates; a restart from the position reads the findings again."""
    from aiokafka import AIOKafkaProducer

    from detectors.base import Category, Finding, Severity
    from streams.scaleout.records import encode_fired

    cfg = dataclasses.replace(
        _cfg(broker, "join"), windows="partitioned", window_partitions=2,
        fired_topic="fi-join", observations_topic="ob-join",
        pages_changelog_topic="pc-join", windows_changelog_topic="wc-join",
    )  # fmt: skip
    # e2 twice: a worker's takeover wrote it again while the first copy waits for the
    # windows (review: the copy went on at once, without the findings, and the held one,
    # with them, was then dropped as a repeat)
    await _write(cfg, [(0, "seq", 1), (1, "seq", 2), (1, "seq", 2), (0, "seq", 3),
                       (0, "tick", 3), (1, "tick", 3)])  # fmt: skip

    def finding(rule: str) -> Finding:
        return Finding(rule, Category.HARASSMENT, Severity.HIGH, f"{rule} fired")

    source = KafkaSource(cfg, cfg.enriched_topic, {}, 100, Metrics())
    got: list[RawEvent] = []

    async def collect() -> None:
        async for batch in source.batches():
            got.extend(batch)

    task = asyncio.create_task(collect())
    p = AIOKafkaProducer(bootstrap_servers=cfg.bootstrap_servers, max_batch_size=1)
    await p.start()
    try:
        # window partition 1 fired on event 2 (its second candidate), and counted up to 2;
        # partition 0 fired on event 2 (its first candidate) and has counted up to 1 only
        # partition 0 wrote its finding twice (it counted again after a crash): joined once
        fired = [(1, encode_fired([(1, finding("pattern.b"))]), [("seq", b"2")]),
                 (1, b"", [("tick", b"2")]),
                 (0, encode_fired([(0, finding("pattern.a"))]), [("seq", b"2")]),
                 (0, encode_fired([(0, finding("pattern.a"))]), [("seq", b"2")]),
                 (0, b"", [("tick", b"1")])]  # fmt: skip
        for partition, value, headers in fired:
            await p.send_and_wait(cfg.fired_topic, value, headers=headers, partition=partition)
        for _ in range(600):  # event 1 goes on; event 2 waits for partition 1's tick
            if got:
                break
            await asyncio.sleep(0.05)
        assert [_id(e) for e in got] == ["e1"] and got[0].patterns == ()
        await p.send_and_wait(cfg.fired_topic, b"", headers=[("tick", b"3")], partition=0)
        await p.send_and_wait(cfg.fired_topic, b"", headers=[("tick", b"3")], partition=1)
        for _ in range(600):
            if len(got) == 3:
                break
            await asyncio.sleep(0.05)
        assert [_id(e) for e in got] == ["e1", "e2", "e3"]
        assert got[1].patterns is not None
        assert [f.rule for f in got[1].patterns] == ["pattern.a", "pattern.b"]
        assert got[2].patterns == ()
        # the position names both topics; on the fired topic, each partition's last tick
        # (offset 2 in both), so a restart reads again how far each window had counted
        position = got[-1].sse_id
        assert position is not None
        assert parse_position(position, cfg.enriched_topic, cfg.fired_topic) == {0: 3, 1: 3}
        assert source.repeats == 1
        assert parse_position(position, cfg.fired_topic, cfg.enriched_topic) == {0: 3, 1: 2}
    finally:
        source.stop()
        await p.stop()
        await asyncio.wait_for(task, 30)


async def test_without_window_stages_events_go_on_after_the_wait_with_an_error(
    broker: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Partitioned windows configured, no window stage running: nothing is lost; after
    merge_max_wait_seconds the events go on without pattern findings, and the log says why."""
    cfg = dataclasses.replace(
        _cfg(broker, "nowin", wait=1.0), windows="partitioned", window_partitions=2,
        fired_topic="fi-nowin", observations_topic="ob-nowin",
        pages_changelog_topic="pc-nowin", windows_changelog_topic="wc-nowin",
    )  # fmt: skip
    await _write(cfg, [(0, "seq", 1), (0, "tick", 2), (1, "seq", 2), (1, "tick", 2)])
    metrics = Metrics()
    with caplog.at_level("ERROR", logger="streams.scaleout.kafka_source"):
        events = await _read(KafkaSource(cfg, cfg.enriched_topic, {}, 100, metrics), 2)
    assert [_id(e) for e in events] == ["e1", "e2"]
    assert all(e.patterns == () for e in events)
    sample = metrics.registry.get_sample_value
    assert sample("rcwatch_merge_events_total", {"how": "forced"}) == 2
    assert "without the window stages' findings" in caplog.text
