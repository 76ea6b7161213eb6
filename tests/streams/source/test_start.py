"""Where a run starts, and the edges of resuming: before the first checkpoint, topics that
have delivered nothing yet, and restarts that must not page twice."""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from pathlib import Path

import orjson
import pytest

from sinks.metrics import Metrics
from streams.pipeline.runner import Monitor
from streams.source.checkpoint import CheckpointError, CheckpointStore
from streams.source.start import resolve_start
from streams.standins.sse_server import EventStreamsServer
from tests.harness import (
    archived_ids,
    event_ids,
    fast_stream_config,
    make_monitor,
    metric_total,
    run_until,
    settings_for,
)

EQIAD, CODFW = "eqiad.mediawiki.recentchange", "codfw.mediawiki.recentchange"


async def _serve(**kwargs: object) -> EventStreamsServer:
    server = EventStreamsServer(**kwargs)  # type: ignore[arg-type]
    await server.start()
    return server


def _caught_up(server: EventStreamsServer, monitor: Monitor) -> bool:
    return server.caught_up(monitor.tracker.watermark_id)


def _entries(position: str | None) -> dict[str, dict[str, int]]:
    assert position is not None
    return {e["topic"]: e for e in orjson.loads(position)}


async def test_stopped_before_the_first_checkpoint_resumes_from_the_origin(
    sample_events: list[bytes], tmp_path: Path
) -> None:
    """Defect: with no checkpoint a restart began at the *new* live end."""
    server = await _serve()
    try:
        settings = settings_for(tmp_path, fast_stream_config(server.url))
        first, source, _ = make_monitor(settings, since=None)  # the live end
        await run_until(first, lambda: source.connected)
        assert CheckpointStore(tmp_path).load() is None, "no event yet: no checkpoint"
        server.publish(sample_events[:300])  # produced while rcwatch is down
        second, _, _ = make_monitor(settings, since=None)
        await run_until(second, lambda: server.caught_up(second.tracker.watermark_id))
    finally:
        await server.stop()
    assert sorted(k for k in archived_ids(tmp_path / "archive") if k) == sorted(
        event_ids(sample_events[:300])
    )


async def test_a_reconnect_before_the_first_event_skips_nothing(
    sample_events: list[bytes], tmp_path: Path
) -> None:
    """Defect: the same process reconnected at the live end when no event had arrived."""
    server = await _serve()
    try:
        settings = settings_for(tmp_path, fast_stream_config(server.url))
        monitor, source, metrics = make_monitor(settings, since=None)
        published = False

        async def outage() -> None:
            nonlocal published
            while not source.connected:
                await asyncio.sleep(0.01)
            pause = asyncio.create_task(server.pause(0.5))  # drops the stream, refuses
            await asyncio.sleep(0.1)
            server.publish(sample_events[:200])  # produced while disconnected
            published = True
            await pause

        task = asyncio.create_task(outage())
        try:
            await run_until(
                monitor, lambda: published and server.caught_up(monitor.tracker.watermark_id)
            )
        finally:
            task.cancel()
    finally:
        await server.stop()
    assert metric_total(metrics, "rcwatch_stream_reconnects") >= 1
    assert len([k for k in archived_ids(tmp_path / "archive") if k]) == 200


async def test_a_topic_that_delivered_nothing_is_never_saved_as_its_live_end(
    sample_events: list[bytes], tmp_path: Path
) -> None:
    """Defect: ``offset: -1`` was saved and sent back, which reads as "the live end at
    reconnect": everything the idle topic produced while rcwatch was away was lost."""
    server = await _serve()
    try:
        settings = settings_for(tmp_path, fast_stream_config(server.url))
        server.publish(sample_events[:100], topic=0)  # codfw idle
        first, _, _ = make_monitor(settings, since=None)
        await run_until(first, lambda: server.caught_up(first.tracker.watermark_id))
        saved = CheckpointStore(tmp_path).load()
        assert saved is not None
        codfw = _entries(saved.last_event_id)[CODFW]
        assert "offset" not in codfw and isinstance(codfw["timestamp"], int)
        # both topics produce while rcwatch is down
        server.publish(sample_events[100:300:2], topic=0)
        server.publish(sample_events[101:300:2], topic=1)
        second, _, _ = make_monitor(settings, since=None)
        await run_until(second, lambda: server.caught_up(second.tracker.watermark_id))
    finally:
        await server.stop()
    archived = archived_ids(tmp_path / "archive")
    assert set(event_ids(sample_events[101:300:2])) <= set(archived), "idle topic's events lost"
    assert sorted(k for k in archived if k) == sorted(event_ids(sample_events[:300]))


async def test_a_saved_live_end_entry_is_resumed_by_time(
    sample_events: list[bytes], tmp_path: Path
) -> None:
    """A checkpoint written by an older rcwatch holds ``offset: -1``: resumed from the
    checkpoint's event time minus the margin, never from the live end."""
    server = await _serve()
    try:
        server.publish(sample_events[:50], topic=0)
        eqiad = {"topic": EQIAD, "partition": 0, "timestamp": server.kafka_timestamp(49) + 1}
        idle = {"topic": CODFW, "partition": 0, "offset": -1}
        CheckpointStore(tmp_path).save(
            orjson.dumps([eqiad, idle]).decode(),
            "recentchange",
            _iso(server.kafka_timestamp(49)),  # the checkpointed event's time
        )
        server.publish(sample_events[50:150], topic=1)  # codfw, while rcwatch was away
        settings = settings_for(tmp_path, fast_stream_config(server.url))
        monitor, _, _ = make_monitor(settings, since=None)
        await run_until(monitor, lambda: server.caught_up(monitor.tracker.watermark_id))
        sent = _entries(server.requests[0]["Last-Event-ID"])
    finally:
        await server.stop()
    assert "offset" not in sent[CODFW]
    archived = archived_ids(tmp_path / "archive")
    assert set(event_ids(sample_events[50:150])) <= set(archived), "the idle topic lost events"


def _iso(ms: int) -> str:
    from streams.source.eventstreams import ms_to_iso

    return ms_to_iso(ms)


async def test_graceful_restarts_never_page_twice(
    sample_events: list[bytes], tmp_path: Path
) -> None:
    """Defect: the resume overlap re-delivered the last event, whose alert was counted again
    by the restored throttle: x2 ... x10 and escalated to critical after ten restarts."""
    events = sample_events[:61]  # ends with an edit whose summary holds an email
    assert b"jane.roe@example.org" in events[-1]
    server = await _serve()
    try:
        server.publish(events)
        settings = settings_for(tmp_path, fast_stream_config(server.url))
        for _ in range(10):
            monitor, _, metrics = make_monitor(settings, since="0")
            await run_until(monitor, partial(_caught_up, server, monitor))
    finally:
        await server.stop()
    lines = [orjson.loads(x) for x in (tmp_path / "alerts.jsonl").read_bytes().splitlines()]
    assert [(a["count"], a["severity"]) for a in lines] == [(1, "medium")]
    # the last restart saw the overlap's event again and dropped it by its id
    assert metric_total(metrics, "rcwatch_events_dropped", reason="duplicate") >= 1


async def test_since_starts_at_that_time_on_the_first_start_and_its_reconnects(
    sample_events: list[bytes], tmp_path: Path
) -> None:
    """Defect (issue 20, item 11): ``since`` went out as epoch milliseconds, which the
    upstream service reads as the beginning of its retention: a first start replayed (and
    alerted on) days of history. Sent as ISO-8601 it starts at that time, on the first
    connection and on every reconnect before the first event."""
    from streams.source.eventstreams import ms_to_iso
    from streams.standins.sse_server import Fault

    server = await _serve(events=sample_events[:200], clock="event")
    server.faults = [Fault("http", status=503), Fault("close")]  # two reconnects, no event
    try:
        since = ms_to_iso(server.kafka_timestamp(120))
        settings = settings_for(tmp_path, fast_stream_config(server.url))
        monitor, _, _ = make_monitor(settings, since=since)
        await run_until(monitor, lambda: server.caught_up(monitor.tracker.watermark_id))
    finally:
        await server.stop()
    archived = archived_ids(tmp_path / "archive")
    assert sorted(k for k in archived if k) == sorted(event_ids(sample_events[120:200]))
    sent = [r.get("?since") for r in server.requests]
    assert sent == [since] * 3, "every connection before the first event sends the ISO time"


async def test_a_restart_that_only_receives_duplicates_keeps_the_event_time(
    sample_events: list[bytes], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Defect (issue 20, item 12): the restart re-received the last event (the resume
    overlap), dropped it as a duplicate, and rewrote the checkpoint with ``"event_time":
    null``; the next start logged ``resuming from checkpoint event_time=None``."""
    server = await _serve(events=sample_events[:40])
    try:
        settings = settings_for(tmp_path, fast_stream_config(server.url))
        first, _, _ = make_monitor(settings, since="0")
        await run_until(first, partial(_caught_up, server, first))
        before = CheckpointStore(tmp_path).load()
        assert before is not None and before.event_time is not None
        second, _, metrics = make_monitor(settings, since="0")
        await run_until(second, partial(_caught_up, server, second))
    finally:
        await server.stop()
    assert metric_total(metrics, "rcwatch_events_dropped", reason="duplicate") >= 1
    after = CheckpointStore(tmp_path).load()
    assert after is not None and after.updated_at != before.updated_at, "rewritten"
    assert after.event_time == before.event_time
    with caplog.at_level(logging.INFO):
        resolve_start(
            CheckpointStore(tmp_path), streams="recentchange", since=None, margin_seconds=1,
            metrics=Metrics(),
        )  # fmt: skip
    resumed = [r for r in caplog.records if r.getMessage() == "resuming from checkpoint"]
    assert [r.fields["event_time"] for r in resumed] == [before.event_time]  # type: ignore[attr-defined]


# -- the decision itself ----------------------------------------------------------------------


def test_the_first_start_writes_its_origin_before_connecting(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    start = resolve_start(
        store, streams="recentchange", since=None, margin_seconds=10, metrics=Metrics(),
        now_ms=1_000_000,
    )  # fmt: skip
    # sent as ISO-8601 with milliseconds: the service reads a number as "the beginning"
    assert (start.last_event_id, start.since) == (None, "1970-01-01T00:16:30.000Z")
    origin = store.load_origin()
    assert origin is not None and origin.since_ms == 990_000 and origin.started_from == "live end"
    later = resolve_start(
        store, streams="recentchange", since="2h", margin_seconds=10, metrics=Metrics(),
        now_ms=5_000_000,
    )  # fmt: skip
    assert later.since == "1970-01-01T00:16:30.000Z", "every start resumes there until a checkpoint"
    again = resolve_start(
        store, streams="recentchange", since="0", margin_seconds=10, metrics=Metrics(),
        reset=True,
    )  # fmt: skip
    # 1 ms, not 0: a parsed 0 is false in the service's JavaScript and means the live end
    assert again.since == "1970-01-01T00:00:00.001Z", "--reset-checkpoint forgets the origin too"


def test_a_start_from_the_beginning_says_so_without_an_epoch_date(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 20, item 16: every demo started with "origin recorded
    since=1970-01-01T00:00:00.000Z chosen='since 0'"."""
    with caplog.at_level(logging.INFO, logger="streams.source.start"):
        resolve_start(
            CheckpointStore(tmp_path), streams="recentchange", since="0", margin_seconds=10,
            metrics=Metrics(),
        )  # fmt: skip
    assert [r.getMessage() for r in caplog.records] == [
        "first start: from the beginning of what the stream holds"
    ]
    assert not any(hasattr(r, "fields") for r in caplog.records), "no epoch date"


def test_a_state_directory_of_other_streams_is_refused(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    resolve_start(store, streams="recentchange", since=None, margin_seconds=1, metrics=Metrics())
    with pytest.raises(CheckpointError, match="belongs to stream"):
        resolve_start(store, streams="page-create", since=None, margin_seconds=1, metrics=Metrics())


@pytest.mark.parametrize("content", [b"{torn", b'{"last_event_id": "not-a-json-array", '
                                     b'"streams": "recentchange"}'])  # fmt: skip
def test_a_corrupt_checkpoint_is_set_aside_and_the_origin_used(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    store = CheckpointStore(tmp_path)
    store.save_origin(1234, "recentchange", "live end")
    store.path.write_bytes(content)
    metrics = Metrics()
    with caplog.at_level(logging.ERROR):
        start = resolve_start(
            store, streams="recentchange", since=None, margin_seconds=1, metrics=metrics
        )
    assert (start.last_event_id, start.since) == (None, "1970-01-01T00:00:01.234Z")
    assert not store.path.exists() and list(tmp_path.glob("checkpoint.json.corrupt-*"))
    assert metric_total(metrics, "rcwatch_state_corrupt", file="checkpoint") == 1
    assert "moved aside" in caplog.text


@pytest.mark.parametrize("damage", ["torn", "missing"])
def test_a_corrupt_checkpoint_falls_back_to_the_one_before(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Not to the first start's origin, which may be weeks back: the previous checkpoint
    (one interval older) and its pattern state. 'missing' is a crash between the two
    renames of a save."""
    store = CheckpointStore(tmp_path)
    store.save_origin(1234, "recentchange", "live end")
    older = '[{"topic":"t","partition":0,"offset":7}]'
    store.save(older, "recentchange", "2026-05-05T11:17:40Z", state=b'{"older": 1}')
    store.save('[{"topic":"t","partition":0,"offset":9}]', "recentchange", None, state=b"{}")
    if damage == "torn":
        store.path.write_bytes(b'{"last_event_id": ')
    else:
        store.path.unlink()
    metrics = Metrics()
    with caplog.at_level(logging.WARNING):
        start = resolve_start(
            store, streams="recentchange", since=None, margin_seconds=1, metrics=metrics
        )
    assert (start.last_event_id, start.since) == (older, None)
    assert start.checkpoint is not None and store.load_state(start.checkpoint) == b'{"older": 1}'
    assert "resuming from the one before it" in caplog.text
    corrupt = 1 if damage == "torn" else 0
    assert metric_total(metrics, "rcwatch_state_corrupt", file="checkpoint") == corrupt
