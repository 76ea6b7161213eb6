"""The EventStreams client against a real local server speaking the same protocol.

For every fault the server can inject, the run must lose no event (each one archived
exactly once) and write no alert id twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import orjson
import pytest

from sinks.metrics import Metrics
from streams.source.eventstreams import (
    EventStreamsSource,
    FatalStreamError,
    parse_since,
    since_param,
    stream_names,
    user_agent_problem,
)
from streams.source.position import PositionError
from streams.standins.sse_server import EventStreamsServer, Fault
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
    await run_until(monitor, lambda: server.caught_up(monitor.tracker.watermark_id))
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


async def test_what_a_resume_delivers_again_is_not_counted_twice(
    sample_events: list[bytes], tmp_path: Path
) -> None:
    """Defect (issue 20, item 15): every reconnect re-delivers each topic's last event (the
    resume overlap); the pipeline dropped it by event id but counted it as an event, so a
    run's summary counted more events than the stream holds (614 for 612 in ``demo
    --hold``). The source now recognises what it yielded before."""
    events = sample_events[:240]
    server = EventStreamsServer()
    server.publish(events[0::2], topic=0)
    server.publish(events[1::2], topic=1)
    server.faults = [
        Fault("close", after_events=50),
        Fault("drop", after_events=40),
        Fault("error_event", after_events=60),
    ]
    await server.start()
    try:
        settings = settings_for(tmp_path, fast_stream_config(server.url))
        monitor, _source, metrics = make_monitor(settings)
        summary = await run_until(monitor, lambda: server.caught_up(monitor.tracker.watermark_id))
    finally:
        await server.stop()
    assert server.connections == 4 and server.served > len(events), "events came again"
    assert summary.events == len(events)
    assert summary.dropped["duplicate"] == 0
    again = metric_total(metrics, "rcwatch_events_dropped", reason="duplicate")
    assert again == server.served - len(events), "each one again is counted as dropped"
    _assert_nothing_lost_or_repeated(events, tmp_path)


def test_an_event_of_the_same_millisecond_not_yet_seen_is_passed_on() -> None:
    """Several events can share a topic's last millisecond; the overlap re-delivers all of
    them, and only those yielded before are dropped (the unit: the stand-in's timestamps
    never repeat within a topic)."""
    from streams.source.eventstreams import _Redeliveries

    def pos(x: int | None, y: int | None) -> str:
        entries = [{"topic": "x", "partition": 0, "timestamp": x}] if x else []
        entries += [{"topic": "y", "partition": 0, "timestamp": y}] if y else []
        entries += [] if x else [{"topic": "x", "partition": 0, "offset": 7}]
        entries += [] if y else [{"topic": "y", "partition": 0, "offset": 9}]
        return orjson.dumps(entries).decode()

    r = _Redeliveries(overlap_ms=1)
    r.connect(None)
    assert not r.again(pos(None, 51), b"y1")  # y's last event, long before
    assert not r.again(pos(100, 51), b"x1")
    assert not r.again(pos(101, 51), b"x2")
    assert not r.again(pos(101, 51), b"x3")  # same millisecond as x2: moves nothing
    # the connection ends; resumed from x: 101, y: 51 (sent 1 ms earlier)
    r.connect(pos(101, 51))
    assert r.again(pos(None, 51), b"y1"), "y's last event again"
    assert r.again(pos(101, 51), b"x2") and r.again(pos(101, 51), b"x3")
    assert not r.again(pos(101, 51), b"x4"), "same millisecond, never yielded: new"
    assert not r.again(pos(102, 51), b"x5")
    assert not r.again(pos(102, 51), b"x2"), "after the resumed position nothing is dropped"
    r.connect(None)  # positioned by since: nothing is taken for a repeat
    assert not r.again(pos(101, None), b"x2")


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
    sent = orjson.loads(server.requests[1]["Last-Event-ID"])
    eqiad, codfw = sent
    if id_mode == "timestamp":  # moved back by the overlap so same-ms events are not lost
        assert eqiad["timestamp"] == server.kafka_timestamp(199) + 1 - 1
    else:
        assert eqiad["offset"] == server.base_offset + 200
    # the idle topic was at its live end: pinned to a time before the first connection
    assert "offset" not in codfw and codfw["timestamp"] <= server.kafka_timestamp(0)
    assert "?since" not in server.requests[1], "Last-Event-ID must replace since"
    _assert_nothing_lost_or_repeated(sample_events, state)


async def test_refused_connection_is_retried(sample_events: list[bytes], tmp_path: Path) -> None:
    server = EventStreamsServer(sample_events, speed=20.0)
    await server.start()
    settings = settings_for(tmp_path, fast_stream_config(server.url))
    monitor, _source, metrics = make_monitor(settings)
    paused = False

    async def pause_midway() -> None:
        nonlocal paused
        while monitor.pipeline.events < 100:
            await asyncio.sleep(0.01)
        await server.pause(0.6)  # listener closed: new connections are refused
        paused = True

    pauser = asyncio.create_task(pause_midway())
    try:
        await run_until(monitor, lambda: paused and server.caught_up(monitor.tracker.watermark_id))
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
        comment="write to jane.roe@example.org " + "x" * (1 << 20),
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
    # the 1 MiB event went through the detectors: its email raised an alert, and the part
    # of its summary past what the rules look at was counted, not skipped silently
    alerts = [orjson.loads(x) for x in (state / "alerts.jsonl").read_bytes().splitlines()]
    assert any(a["event_id"] == "big-1" for a in alerts)
    assert metric_total(metrics, "rcwatch_detector_truncated", what="text") == 1
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
        ("0", None, 400),  # the server refuses the since (scripted: rcwatch sends none it would)
        (None, '[{"topic":"eqiad.mediawiki.page-create","partition":0,"offset":5}]', 404),
    ],
)
async def test_unhealable_errors_stop_with_a_message(
    es_server: EventStreamsServer, since: str | None, last_id: str | None, status: int
) -> None:
    if status == 400:
        body = orjson.dumps({"type": "invalid_timestamp", "title": "Invalid timestamp"})
        es_server.faults.append(Fault("http", status=400, body=body))
    source = EventStreamsSource(
        fast_stream_config(es_server.url), Metrics(), last_event_id=last_id, since=since
    )
    with pytest.raises(FatalStreamError) as err:
        async for _ in source.batches():
            pass
    assert err.value.status == status
    assert f"HTTP {status}" in str(err.value)
    assert es_server.connections == 1, "a fatal error must not be retried"


@pytest.mark.parametrize(
    "position",
    ["not json", '[{"topic":"x","partition":0,"offset":1}]\r\nX-Injected: 1', "[]", "[1]"],
)
def test_a_position_that_cannot_be_sent_back_is_refused_before_connecting(position: str) -> None:
    with pytest.raises(PositionError):
        EventStreamsSource(fast_stream_config("http://127.0.0.1:9/v2/stream/recentchange"),
                           Metrics(), last_event_id=position)  # fmt: skip


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


def test_since_is_sent_as_iso_8601_with_milliseconds() -> None:
    """Whatever form it came in: the service reads a numeric since as the beginning of its
    retention (FACTS.md), and a parsed 0 as the live end."""
    url = "http://127.0.0.1:9/v2/stream/recentchange"
    for given in ("1777979860123", "2026-05-05T11:17:40.123Z", "2026-05-05T13:17:40.123+02:00"):
        source = EventStreamsSource(fast_stream_config(url), Metrics(), since=given)
        assert source._request()[1] == {"since": "2026-05-05T11:17:40.123Z"}
    assert since_param(0) == "1970-01-01T00:00:00.001Z"
    assert since_param(1777979860000) == "2026-05-05T11:17:40.000Z"
    with pytest.raises(ValueError, match="not a time"):
        since_param(10**15)
    with pytest.raises(ValueError, match="ISO-8601"):
        EventStreamsSource(fast_stream_config(url), Metrics(), since="yesterday-ish")


def test_since_forms() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 5, 5, 12, 0, tzinfo=UTC)
    at = int(now.timestamp() * 1000)
    assert parse_since(str(at - 5000), now=now) == at - 5000
    assert parse_since("2026-05-05T11:17:40Z", now=now) == at - 2540 * 1000
    assert parse_since("2026-05-05T13:17:40+02:00", now=now) == at - 2540 * 1000
    assert parse_since("2026-05-05T11:17:40", now=now) == at - 2540 * 1000  # no zone: UTC
    assert parse_since("15m", now=now) == at - 15 * 60_000
    assert parse_since("-2h", now=now) == at - 2 * 3_600_000
    assert parse_since("90S", now=now) == at - 90_000
    with pytest.raises(ValueError, match="ISO-8601"):
        parse_since("last tuesday", now=now)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1777983460", "looks like seconds"),  # epoch seconds would mean 1970
        ("99999999999999999999", "too many digits"),
        ("40d", "EventStreams keeps at most about 31 days"),
        ("2026-01-01T00:00:00Z", "124 days ago"),
        ("2026-05-06T00:00:00Z", "in the future"),
        ("0", "EventStreams keeps"),
    ],
)
def test_since_outside_the_service_retention_is_refused(value: str, message: str) -> None:
    from datetime import UTC, datetime

    with pytest.raises(ValueError, match=message):
        parse_since(value, now=datetime(2026, 5, 5, 12, 0, tzinfo=UTC))


# -- a position the server can never satisfy, and a stream that cannot be reached --------------


async def _fail_a_few_times(source: EventStreamsSource, attempts: int) -> None:
    """Run the source until it has failed ``attempts`` times in a row, then stop it."""

    async def consume() -> None:
        async for _ in source.batches():
            pass

    task = asyncio.create_task(consume())
    gauge = source.metrics.stream_consecutive_failures
    deadline = time.monotonic() + 20
    try:
        while gauge._value.get() < attempts:
            assert not task.done(), "the source gave up instead of retrying"
            assert time.monotonic() < deadline, "the source did not fail as expected"
            await asyncio.sleep(0.01)
    finally:
        source.stop()
        await asyncio.wait_for(task, 5)


async def test_an_unsatisfiable_position_is_reported_and_retried(
    es_server: EventStreamsServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Defect: HTTP 500 "Local: Unknown partition" on every try was retried forever without
    a word about the server's message or the checkpoint."""
    position = '[{"topic":"eqiad.mediawiki.recentchange","partition":7,"offset":5}]'
    config = fast_stream_config(es_server.url, position_failure_hint_after=4)
    source = EventStreamsSource(config, Metrics(), last_event_id=position)
    with caplog.at_level(logging.DEBUG, logger="streams.source.eventstreams"):
        await _fail_a_few_times(source, 6)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, "the same failure is said once, then summarised"
    fields = warnings[0].fields  # type: ignore[attr-defined]
    assert fields["host"] == f"127.0.0.1:{es_server.port}"
    assert "HTTP 500" in fields["cause"] and "Local: Unknown partition" in fields["cause"]
    hints = [r for r in caplog.records if "--reset-checkpoint" in r.getMessage()]
    assert len(hints) == 1 and hints[0].levelno == logging.ERROR
    assert hints[0].fields["identical_answers"] == 4  # type: ignore[attr-defined]
    assert es_server.connections >= 6, "a 5xx can be transient: keep retrying"


@pytest.mark.parametrize("cause", ["refused", "dns", "tls"])
async def test_an_unreachable_stream_names_host_and_cause_and_is_not_ready(
    cause: str, es_server: EventStreamsServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Defect: an unreachable host logged ``reason=refused`` forever without the host or the
    cause, and /healthz said 200 "ok" although it had never connected."""
    url, expected_host, expected = {
        "refused": ("http://127.0.0.1:9/v2/stream/recentchange", "127.0.0.1:9", "refused"),
        "dns": ("http://stream.invalid/v2/stream/recentchange", "stream.invalid:80", "DNS"),
        # TLS spoken to a plain-HTTP server: the handshake fails
        "tls": (
            f"https://127.0.0.1:{es_server.port}/v2/stream/recentchange",
            f"127.0.0.1:{es_server.port}",
            "TLS",
        ),
    }[cause]
    metrics = Metrics()
    source = EventStreamsSource(fast_stream_config(url), metrics, since="0")
    ready, details = source.health()
    assert not ready and details["reason"] == "never connected to the stream"
    with caplog.at_level(logging.DEBUG, logger="streams.source.eventstreams"):
        await _fail_a_few_times(source, 3)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    fields = warnings[0].fields  # type: ignore[attr-defined]
    assert fields["host"] == expected_host and fields["reason"] == cause
    assert expected in fields["cause"]
    ready, details = source.health()
    assert not ready and expected in details["last_failure"]
    assert details["consecutive_failures"] >= 3
    assert metric_total(metrics, "rcwatch_stream_reconnects", reason=cause) >= 3


async def test_healthz_is_503_until_connected_then_200(
    sample_events: list[bytes], tmp_path: Path
) -> None:
    import socket

    import aiohttp

    from sinks.metrics import MetricsServer

    with socket.socket() as probe:  # a free port, for a server that starts later
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = EventStreamsServer(port=port)
    settings = settings_for(tmp_path, fast_stream_config(server.url))
    monitor, source, metrics = make_monitor(settings)  # the server is not started yet
    http = MetricsServer(metrics, "127.0.0.1", 0, monitor.health)
    await http.start()

    async def healthz() -> tuple[int, dict[str, object]]:
        async with aiohttp.ClientSession() as s, s.get(http.url + "/healthz") as r:
            return r.status, await r.json()

    task = asyncio.create_task(monitor.run())
    try:
        while metric_total(metrics, "rcwatch_stream_reconnects") < 1:
            await asyncio.sleep(0.01)
        status, body = await healthz()
        assert status == 503 and body["reason"] == "never connected to the stream"
        await server.start()  # same port: the client's retries reach it now
        while not source.connected:
            await asyncio.sleep(0.01)
        status, body = await healthz()
        assert status == 200 and body["connected"] is True
    finally:
        monitor.request_stop()
        await task
        await http.stop()
        await server.stop()
