"""The EventStreams client against a real local server speaking the same protocol.

For every fault the server can inject, the run must lose no event (each one archived
exactly once) and write no alert id twice.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
import pytest

from sinks.metrics import Metrics
from streams.eventstreams import (
    EventStreamsSource,
    FatalStreamError,
    normalize_since,
    resume_id,
    stream_names,
    user_agent_problem,
)
from streams.sse_server import EventStreamsServer, Fault
from tests.harness import (
    alert_ids,
    archived_ids,
    event_ids,
    expected_alert_ids,
    fast_stream_config,
    make_monitor,
    metric_total,
    run_until,
    settings_for,
)


def _reconnects(metrics: Metrics, reason: str) -> float:
    value = metrics.registry.get_sample_value("rcwatch_stream_reconnects_total", {"reason": reason})
    return value or 0.0


async def _run_to_end(
    server: EventStreamsServer, tmp_path: Path, **stream_overrides: object
) -> tuple[Metrics, Path]:
    settings = settings_for(tmp_path, fast_stream_config(server.url, **stream_overrides))
    monitor, _source, metrics = make_monitor(settings)
    last = server.event_id(server.total - 1)
    await run_until(monitor, lambda: monitor.tracker.watermark_id == last)
    return metrics, tmp_path


def _assert_nothing_lost_or_repeated(events: list[bytes], state: Path) -> None:
    archived = archived_ids(state / "archive")
    expected = event_ids(events)
    assert sorted(k for k in archived if k is not None) == sorted(expected)
    assert max(archived.values()) == 1, "an event was archived twice"
    alerts = alert_ids(state / "alerts.jsonl")
    assert len(alerts) == len(set(alerts)), "an alert id was written twice"
    assert set(alerts) == expected_alert_ids(events)


def _assert_resumed_not_restarted(metrics: Metrics) -> None:
    """Resuming re-delivers at most the overlap (about one event per reconnect)."""
    duplicates = metric_total(metrics, "rcwatch_events_dropped", reason="duplicate")
    assert duplicates <= 2 * metric_total(metrics, "rcwatch_stream_reconnects")


FAULTS = {
    "clean_close": (Fault("close", after_events=150), "eof"),
    "abrupt_drop": (Fault("drop", after_events=150), "drop"),
    "http_503": (Fault("http", status=503), "http_5xx"),
    "stall": (Fault("stall", after_events=150), "stall"),
    "error_event": (Fault("error_event", after_events=150), "server_error"),
}


@pytest.mark.parametrize("name", sorted(FAULTS))
async def test_fault_loses_nothing_and_repeats_nothing(
    name: str, sample_events: list[bytes], tmp_path: Path
) -> None:
    fault, reason = FAULTS[name]
    server = EventStreamsServer(sample_events)
    server.faults = [fault, Fault("close", after_events=300)]  # and a second, routine close
    await server.start()
    try:
        metrics, state = await _run_to_end(server, tmp_path)
    finally:
        await server.stop()
    assert _reconnects(metrics, reason) >= 1
    assert server.connections >= 3
    _assert_nothing_lost_or_repeated(sample_events, state)
    _assert_resumed_not_restarted(metrics)


@pytest.mark.parametrize("id_mode", ["timestamp", "offset"])
async def test_resume_sends_back_the_last_id(
    id_mode: str, sample_events: list[bytes], tmp_path: Path
) -> None:
    server = EventStreamsServer(sample_events, id_mode=id_mode)  # type: ignore[arg-type]
    server.faults = [Fault("close", after_events=200)]
    await server.start()
    try:
        _metrics, state = await _run_to_end(server, tmp_path)
    finally:
        await server.stop()
    sent = server.requests[1]["Last-Event-ID"]
    expected = server.event_id(199)
    if id_mode == "timestamp":  # moved back by the overlap so same-ms events are not lost
        expected = resume_id(expected, 1)
        assert (
            orjson.loads(sent)[0]["timestamp"]
            == orjson.loads(server.event_id(199))[0]["timestamp"] - 1
        )
    assert sent == expected
    assert "?since" not in server.requests[1], "Last-Event-ID must replace since"
    _assert_nothing_lost_or_repeated(sample_events, state)


async def test_refused_connection_is_retried(sample_events: list[bytes], tmp_path: Path) -> None:
    server = EventStreamsServer(sample_events, speed=20.0)
    await server.start()
    settings = settings_for(tmp_path, fast_stream_config(server.url))
    monitor, _source, metrics = make_monitor(settings)
    last = server.event_id(server.total - 1)
    paused = False

    async def pause_midway() -> None:
        nonlocal paused
        while monitor.pipeline.events < 100:
            await asyncio.sleep(0.01)
        await server.pause(0.6)  # listener closed: new connections are refused
        paused = True

    pauser = asyncio.create_task(pause_midway())
    try:
        await run_until(monitor, lambda: paused and monitor.tracker.watermark_id == last)
    finally:
        pauser.cancel()
        await server.stop()
    assert _reconnects(metrics, "refused") >= 1
    _assert_nothing_lost_or_repeated(sample_events, tmp_path)


async def test_429_waits_for_retry_after(sample_events: list[bytes], tmp_path: Path) -> None:
    server = EventStreamsServer(sample_events)
    server.faults = [Fault("http", status=429, headers={"Retry-After": "1"})]
    await server.start()
    started = time.monotonic()
    try:
        metrics, state = await _run_to_end(server, tmp_path)
    finally:
        await server.stop()
    assert _reconnects(metrics, "http_429") == 1
    assert time.monotonic() - started >= 1.0, "Retry-After: 1 was not honoured"
    _assert_nothing_lost_or_repeated(sample_events, state)


async def test_bad_input_is_counted_and_skipped(sample_events: list[bytes], tmp_path: Path) -> None:
    base = next(orjson.loads(e) for e in sample_events if b'"type":"edit"' in e)
    canary = dict(base, meta=dict(base["meta"], domain="canary", id="canary-1"))
    big = dict(
        base,
        meta=dict(base["meta"], id="big-1"),
        comment="x" * (1 << 20) + " write to jane.roe@example.org",
    )
    huge = dict(base, meta=dict(base["meta"], id="huge-1"), comment="y" * (3 << 20))
    events = [
        *sample_events[:50],
        b"{not json",
        b'{"meta": "not an object"}',
        b'{"meta": {"id": "bad-ns"}, "namespace": "zero"}',
        orjson.dumps(canary),
        orjson.dumps(big),
        orjson.dumps(huge),
        *sample_events[50:100],
    ]
    server = EventStreamsServer(events)
    await server.start()
    try:
        metrics, state = await _run_to_end(server, tmp_path, max_event_bytes=2 << 20)
    finally:
        await server.stop()

    def dropped(reason: str) -> float:
        v = metrics.registry.get_sample_value("rcwatch_events_dropped_total", {"reason": reason})
        return v or 0.0

    assert dropped("malformed") == 3
    assert dropped("canary") == 1
    assert dropped("oversized") == 1
    archived = archived_ids(state / "archive")
    assert archived[None] == 3, "malformed events are archived as received"
    assert archived["big-1"] == 1 and archived["canary-1"] == 1
    assert "huge-1" not in archived
    # the 1 MiB event went through the detectors: its email raised an alert
    alerts = [orjson.loads(x) for x in (state / "alerts.jsonl").read_bytes().splitlines()]
    assert any(a["event_id"] == "big-1" for a in alerts)
    assert len({a["id"] for a in alerts}) == len(alerts)


async def test_missing_user_agent_is_fatal(es_server: EventStreamsServer) -> None:
    config = fast_stream_config(es_server.url, user_agent="")
    source = EventStreamsSource(config, Metrics(), since="0")
    with pytest.raises(FatalStreamError) as err:
        async for _ in source.batches():
            pass
    assert err.value.status == 403
    assert "User-Agent" in str(err.value)


@pytest.mark.parametrize(
    ("since", "last_id", "status"),
    [
        ("yesterday-ish", None, 400),
        (None, "not json", 400),
        (None, '[{"topic":"eqiad.mediawiki.page-create","partition":0,"offset":5}]', 404),
    ],
)
async def test_unhealable_errors_stop_with_a_message(
    es_server: EventStreamsServer, since: str | None, last_id: str | None, status: int
) -> None:
    source = EventStreamsSource(
        fast_stream_config(es_server.url), Metrics(), last_event_id=last_id, since=since
    )
    with pytest.raises(FatalStreamError) as err:
        async for _ in source.batches():
            pass
    assert err.value.status == status
    assert f"HTTP {status}" in str(err.value)
    assert es_server.connections == 1, "a fatal error must not be retried"


async def test_joined_streams_unknown_to_server_is_fatal(es_server: EventStreamsServer) -> None:
    url = es_server.url + ",page-create"
    source = EventStreamsSource(fast_stream_config(url), Metrics(), since="0")
    with pytest.raises(FatalStreamError, match="Stream Not Found"):
        async for _ in source.batches():
            pass
    assert stream_names(url) == "recentchange,page-create"


def test_user_agent_rules() -> None:
    live = "https://stream.wikimedia.org/v2/stream/recentchange"
    assert user_agent_problem(live, "rcwatch/0.1 (CHANGE-ME: contact)") is not None
    assert user_agent_problem(live, "") is not None
    assert user_agent_problem(live, "Python/3.11 aiohttp/3.9") is not None
    assert user_agent_problem(live, "rcwatch/0.1 (https://x.example; me@x.example)") is None
    assert user_agent_problem("http://127.0.0.1:9/v2/stream/recentchange", "anything") is None


def test_since_forms() -> None:
    assert normalize_since("1596207527001") == "1596207527001"
    assert normalize_since("2026-05-05T11:17:40Z") == "2026-05-05T11:17:40.000Z"
    assert normalize_since("2026-05-05T13:17:40+02:00") == "2026-05-05T11:17:40.000Z"
    from datetime import UTC, datetime

    now = datetime(2026, 5, 5, 12, 0, tzinfo=UTC)
    assert normalize_since("15m", now) == "2026-05-05T11:45:00.000Z"
    assert normalize_since("-2h", now) == "2026-05-05T10:00:00.000Z"
    with pytest.raises(ValueError, match="ISO-8601"):
        normalize_since("last tuesday")


def test_resume_id_moves_only_timestamps() -> None:
    raw = (
        '[{"topic":"eqiad.mediawiki.recentchange","partition":0,"timestamp":1000},'
        '{"topic":"codfw.mediawiki.recentchange","partition":0,"offset":-1}]'
    )
    moved = orjson.loads(resume_id(raw, 1))
    assert moved[0]["timestamp"] == 999 and moved[1]["offset"] == -1
    assert resume_id(raw, 0) == raw
    assert resume_id("opaque", 1) == "opaque"
