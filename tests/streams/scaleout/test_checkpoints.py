"""The detect stage's checkpoint copies on a real broker (Tansu): a standby takes the newest
complete copy, never one a crash cut short, and never an older one over its own."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from sinks.metrics import Metrics
from streams.scaleout.checkpoints import (
    BrokerCheckpoint,
    CheckpointCopier,
    checkpoint_records,
    latest_checkpoint,
)
from streams.scaleout.config import ScaleOutConfig
from streams.scaleout.produce import Record, produce_all
from streams.scaleout.topics import ensure_topics, topic_specs
from streams.source.checkpoint import CheckpointStore

pytestmark = pytest.mark.scaleout


def _cfg(broker: str, name: str) -> ScaleOutConfig:
    return ScaleOutConfig(
        bootstrap_servers=broker, detect_checkpoints_topic=f"cp-{name}",
        events_topic=f"ev-{name}", enriched_topic=f"en-{name}",
        ingest_positions_topic=f"pos-{name}", producer_max_batch_bytes=1,
        max_record_bytes=10_000,  # parts of 5,000 bytes
    )  # fmt: skip


async def test_the_newest_complete_copy_is_taken_and_a_cut_short_one_passed_over(
    broker: str, tmp_path: Path
) -> None:
    from aiokafka import AIOKafkaProducer

    cfg = _cfg(broker, "copies")
    await ensure_topics(broker, topic_specs(cfg))
    store = CheckpointStore(tmp_path / "active")
    state = bytes(range(256)) * 100  # 25,600 bytes: six parts
    store.save('[{"topic": "en-copies", "partition": 0, "offset": 7}]', "kafka:en-copies",
               "2026-11-30T08:00:00Z", state)  # fmt: skip
    producer = AIOKafkaProducer(bootstrap_servers=broker, max_batch_size=1)
    await producer.start()
    try:
        metrics = Metrics()
        copier = CheckpointCopier(cfg, store, metrics.registry)
        await copier.copy(producer)
        await copier.copy(producer)  # nothing new: not copied again
        sample = metrics.registry.get_sample_value
        assert sample("rcwatch_detect_checkpoint_copies_total") == 1
        # a newer copy whose writer died after its head and two parts
        newer = BrokerCheckpoint("[]", "kafka:en-copies", "2026-11-30T09:00:00Z", state)
        cut = checkpoint_records(cfg, newer)[:3]
        await produce_all(producer, cfg, cfg.detect_checkpoints_topic, cut, asyncio.Event(),
                          on_retry=lambda: None, on_dropped=lambda: None)  # fmt: skip
    finally:
        await producer.stop()
    got = await latest_checkpoint(cfg)
    assert got is not None
    assert got.state == state and got.event_time == "2026-11-30T08:00:00Z"
    assert got.position == '[{"topic": "en-copies", "partition": 0, "offset": 7}]'
    # a standby with no state of its own takes it, whole
    standby = CheckpointStore(tmp_path / "standby")
    assert standby.adopt_if_newer(got.position, got.streams, got.event_time, got.state)
    cp = standby.load()
    assert cp is not None and standby.load_state(cp) == state


async def test_records_no_detect_stage_wrote_are_passed_over(broker: str) -> None:
    """A part number too long to convert crashed every standby at takeover; a head of no
    parts counted as a whole copy with an empty state."""
    from aiokafka import AIOKafkaProducer

    cfg = _cfg(broker, "junk")
    await ensure_topics(broker, topic_specs(cfg))
    good = BrokerCheckpoint("[]", "kafka:en-junk", "2026-11-30T08:00:00Z", b"state")
    producer = AIOKafkaProducer(bootstrap_servers=broker, max_batch_size=1)
    await producer.start()
    try:
        records = checkpoint_records(cfg, good)
        junk: list[Record] = [
            (b"detect", b"x", [("cp", b"j1"), ("part", b"9" * 5000)], 0),
            (b"detect", b'{"position": "[]", "streams": "s", "event_time": null, "parts": 0}',
             [("cp", b"j2"), ("part", b"0")], 0),
            (b"detect", b"not json", [("cp", b"j3"), ("part", b"0")], 0),
            (b"detect", b"orphan part", [("cp", b"j4"), ("part", b"1")], 0),
            (b"detect", b"no headers", [], 0),
        ]  # fmt: skip
        topic, stop = cfg.detect_checkpoints_topic, asyncio.Event()
        await produce_all(producer, cfg, topic, records + junk, stop,
                          on_retry=lambda: None, on_dropped=lambda: None)  # fmt: skip
    finally:
        await producer.stop()
    assert await latest_checkpoint(cfg) == good
