"""Hostile SSE ids: an id that cannot be sent back never becomes the position.

Issue 9.3 reproduced: (a) an ``id:`` holding a control character was checkpointed, then
every reconnect raised ``ValueError: Forbidden control character`` in aiohttp, exit 1, on
every restart; (c) a garbage id (``not-a-json-array``) was checkpointed unchecked, and every
start exited 3 until ``--reset-checkpoint``.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from streams.source.checkpoint import CheckpointStore
from streams.standins.sse_server import EventStreamsServer, Fault
from tests.harness import (
    archived_ids,
    event_ids,
    fast_stream_config,
    make_monitor,
    metric_total,
    run_until,
    settings_for,
)


def _frame(event_id: bytes, data: bytes) -> bytes:
    return b"event: message\nid: " + event_id + b"\ndata: " + data + b"\n\n"


@pytest.mark.parametrize(
    "bad_id",
    [
        b'[{"topic":"eqiad.mediawiki.recentchange","partition":0,"offset":5}]\x01',
        b'[{"topic":"eqiad.mediawiki.recentchange\x1b[2J","partition":0,"offset":5}]',
        b"not-a-json-array",
        b'[{"topic":"eqiad.mediawiki.recentchange","partition":0,"offset":"5"}]',
    ],
    ids=["control-char", "escape-in-topic", "garbage", "offset-not-a-number"],
)
async def test_an_id_that_cannot_be_sent_back_is_counted_and_skipped(
    bad_id: bytes, sample_events: list[bytes], tmp_path: Path
) -> None:
    hostile = orjson.loads(sample_events[10])
    hostile["meta"]["id"] = "hostile-1"
    server = EventStreamsServer(sample_events[:100])
    # after 50 events, a frame with a bad id, then the rest of the stream
    server.faults = [Fault("raw", after_events=50, body=_frame(bad_id, orjson.dumps(hostile)))]
    await server.start()
    try:
        settings = settings_for(tmp_path, fast_stream_config(server.url))
        monitor, _, metrics = make_monitor(settings)
        await run_until(monitor, lambda: server.caught_up(monitor.tracker.watermark_id))
        saved = CheckpointStore(tmp_path).load()
        assert saved is not None and bad_id.decode("latin-1") not in saved.last_event_id
        # a restart (and its reconnect) works: the position kept is the last good one
        again, _, _ = make_monitor(settings)
        await run_until(again, lambda: server.caught_up(again.tracker.watermark_id))
    finally:
        await server.stop()
    assert metric_total(metrics, "rcwatch_stream_bad_positions") == 1
    archived = archived_ids(tmp_path / "archive")
    assert archived["hostile-1"] == 1, "the event itself is still processed"
    assert set(event_ids(sample_events[:100])) <= set(archived)


async def test_an_id_naming_fewer_topics_does_not_forget_the_other(
    sample_events: list[bytes], tmp_path: Path
) -> None:
    """A buggy or hostile server sends an id naming one topic of two: the position kept
    (and checkpointed) still names both, the missing one at its last position, so a
    restart still reads it. Counted as rcwatch_stream_bad_positions_total{reason=
    "missing_topic"}."""
    server = EventStreamsServer(sample_events[:100])
    await server.start()
    try:
        settings = settings_for(tmp_path, fast_stream_config(server.url))
        monitor, _, metrics = make_monitor(settings)
        await run_until(monitor, lambda: server.caught_up(monitor.tracker.watermark_id))
        topics = {e["topic"] for e in orjson.loads(monitor.tracker.watermark_id or "[]")}
        assert len(topics) == 2, "the test server serves two topics"
        one_topic = orjson.dumps(
            [{"topic": sorted(topics)[0], "partition": 0, "timestamp": 4_000_000_000_000}]
        )
        last = orjson.loads(sample_events[100])
        server.faults = [Fault("raw", after_events=0, body=_frame(one_topic, orjson.dumps(last)))]
        again, _, metrics = make_monitor(settings)
        await run_until(again, lambda: metric_total(metrics, "rcwatch_events_processed") >= 1)
    finally:
        await server.stop()
    saved = CheckpointStore(tmp_path).load()
    assert saved is not None
    assert {e["topic"] for e in orjson.loads(saved.last_event_id)} == topics
    assert metric_total(metrics, "rcwatch_stream_bad_positions", reason="missing_topic") == 1
