"""The runner's delivery and checkpoint guarantees, with sinks that misbehave."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from detectors.event import RawEvent
from sinks.alert import Alert
from sinks.base import Sink, SinkError
from sinks.delivery import DeliveryConfig, SpooledSink, read_dead_letters
from sinks.memory import MemoryTransport
from sinks.metrics import Metrics
from sinks.routing import RouteConfig
from streams.app import build_monitor
from streams.pipeline.runner import Monitor
from streams.settings import PipelineConfig, Settings
from streams.source.checkpoint import CheckpointStore
from tests.harness import metric_total
from tests.privatedata import SECRETS, pii_event


class ListSource:
    """Batches from memory, each event with an SSE id so the checkpoint can move."""

    def __init__(self, events: list[bytes], batch: int = 50) -> None:
        self.events, self.batch, self.stopped = events, batch, False
        self.produced = 0

    async def batches(self) -> AsyncIterator[list[RawEvent]]:
        for i in range(0, len(self.events), self.batch):
            if self.stopped:
                return
            chunk = self.events[i : i + self.batch]
            self.produced += len(chunk)
            yield [RawEvent(f"[{i + j}]", e, 0) for j, e in enumerate(chunk)]

    def stop(self) -> None:
        self.stopped = True


class FlakySink(Sink):
    def __init__(self, fail_sends: int = 0, retryable: bool = True, delay: float = 0.0) -> None:
        super().__init__("flaky")
        self.fail_sends, self.retryable, self.delay = fail_sends, retryable, delay
        self.got: list[str] = []
        self.rules: list[str] = []
        self.fail_flush = False

    async def send(self, alerts: Sequence[Alert]) -> None:
        await asyncio.sleep(self.delay)
        if self.fail_sends > 0:
            self.fail_sends -= 1
            raise SinkError("target unavailable", retryable=self.retryable)
        self.got.extend(a.id for a in alerts)
        self.rules.extend(a.rule for a in alerts)

    async def flush(self) -> None:
        if self.fail_flush:
            raise SinkError("cannot sync")


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        state_dir=str(tmp_path),
        pipeline=PipelineConfig(checkpoint_interval_seconds=0.01, queue_max_batches=2),
    )


def _monitor(
    tmp_path: Path, source: ListSource, sink: Sink | list[Sink], metrics: Metrics
) -> Monitor:
    return build_monitor(
        _settings(tmp_path),
        source,
        metrics=metrics,
        sinks=sink if isinstance(sink, list) else [sink],
        archive=False,
        checkpoint=CheckpointStore(tmp_path),
        streams_name="recentchange",
    )


async def test_retryable_failures_are_retried_and_delivered_once(
    sample_events: list[bytes], tmp_path: Path
) -> None:
    metrics = Metrics()
    sink = FlakySink(fail_sends=2)
    monitor = _monitor(tmp_path, ListSource(sample_events), sink, metrics)
    monitor._sink_backoff = (0.01, 0.02)
    await monitor.run()
    assert len(sink.got) == 3 == len(set(sink.got))
    assert metrics.registry.get_sample_value("rcwatch_sink_failures_total", {"sink": "flaky"}) == 2
    cp = CheckpointStore(tmp_path).load()
    assert cp is not None and cp.last_event_id == f"[{len(sample_events) - 1}]"


async def test_refused_alerts_are_counted(sample_events: list[bytes], tmp_path: Path) -> None:
    metrics = Metrics()
    sink = FlakySink(fail_sends=1, retryable=False)
    monitor = _monitor(tmp_path, ListSource(sample_events), sink, metrics)
    await monitor.run()
    dropped = metrics.registry.get_sample_value(
        "rcwatch_sink_dropped_total", {"sink": "flaky", "reason": "error"}
    )
    assert dropped == 1 and len(sink.got) == 2


async def test_checkpoint_waits_for_a_durable_flush(
    sample_events: list[bytes], tmp_path: Path
) -> None:
    sink = FlakySink()
    sink.fail_flush = True
    monitor = _monitor(tmp_path, ListSource(sample_events), sink, Metrics())
    await monitor.run()
    assert CheckpointStore(tmp_path).load() is None


async def test_slow_sink_holds_the_source_back(sample_events: list[bytes], tmp_path: Path) -> None:
    metrics = Metrics()
    many = sample_events * 5
    source = ListSource(many, batch=10)
    sink = FlakySink(delay=0.02)
    monitor = _monitor(tmp_path, source, sink, metrics)
    depths: list[float] = []

    async def watch() -> None:
        while True:
            depths.append(metrics.registry.get_sample_value("rcwatch_queue_batches") or 0)
            # the source can run at most queue size + one batch in hand ahead
            ahead = source.produced - monitor.pipeline.events
            assert ahead <= (2 + 2) * 10
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())
    summary = await monitor.run()
    watcher.cancel()
    assert summary.events == len(many)
    assert max(depths) <= 2


async def test_stop_finishes_what_was_received(sample_events: list[bytes], tmp_path: Path) -> None:
    source = ListSource(sample_events * 20, batch=25)
    sink = FlakySink(delay=0.001)
    monitor = _monitor(tmp_path, source, sink, Metrics())
    task = asyncio.create_task(monitor.run())
    while monitor.pipeline.events < 300:
        await asyncio.sleep(0.005)
    monitor.request_stop()
    summary = await task
    assert summary.interrupted
    assert summary.events == source.produced, "every batch taken from the source is processed"
    cp = CheckpointStore(tmp_path).load()
    assert cp is not None and cp.last_event_id == f"[{summary.events - 1}]"


# -- remote sinks: routing, spool backpressure, checkpoint ---------------------------------


def _private_stream(sample_events: list[bytes], n: int = 24) -> list[bytes]:
    """The recorded events with ``n`` edits carrying private data spread among them."""
    summaries = [
        f"contact me at {SECRETS[0]} please",
        f"his phone is {SECRETS[1]}, call him",
        f"card number {SECRETS[2]} exp 12/29",
    ]
    out = list(sample_events[:600])
    step = len(out) // n
    for i in range(n):
        out.insert(i * (step + 1), pii_event(i, summaries[i % len(summaries)]))
    return out


def _remote(tmp_path: Path, name: str, route: RouteConfig, **delivery: Any) -> SpooledSink:
    transport = MemoryTransport()
    cfg = DeliveryConfig(backoff_initial_seconds=0.01, backoff_max_seconds=0.05, **delivery)
    sink = SpooledSink(name, transport, state_dir=tmp_path / "sinks" / name, config=cfg)
    sink.route = route
    return sink


def _got(sink: SpooledSink) -> list[dict[str, Any]]:
    assert isinstance(sink.transport, MemoryTransport)
    return sink.transport.received


async def test_alerts_are_routed_by_category_and_severity(
    sample_events: list[bytes], tmp_path: Path
) -> None:
    events = _private_stream(sample_events)
    pager = _remote(
        tmp_path, "pager", RouteConfig(categories=("privacy",), min_severity="critical")
    )
    queue = _remote(tmp_path, "queue", RouteConfig())
    phones = _remote(tmp_path, "phones", RouteConfig(rules=("privacy.phone-*",)))
    monitor = _monitor(tmp_path, ListSource(events), [pager, queue, phones], Metrics())
    await monitor.run()
    everything = _got(queue)
    assert len(everything) >= 24
    assert {a["severity"] for a in _got(pager)} == {"critical"}
    assert [a["id"] for a in _got(pager)] == [
        a["id"] for a in everything if a["severity"] == "critical" and a["category"] == "privacy"
    ]
    assert {a["rule"] for a in _got(phones)} == {"privacy.phone-in-summary"}


async def test_checkpoint_never_passes_alerts_neither_delivered_nor_spooled(
    sample_events: list[bytes], tmp_path: Path
) -> None:
    """The target is down and the spool fills: the stream waits (nothing dropped) and the
    checkpoint stays before the first alert the sink could not take. When the target
    returns, everything is delivered once and the checkpoint reaches the end."""
    events = _private_stream(sample_events)
    sink = _remote(tmp_path, "queue", RouteConfig(), spool_max_bytes=4096, max_attempts=1_000_000)
    transport = sink.transport
    assert isinstance(transport, MemoryTransport)
    transport.down = True
    metrics = Metrics()
    source = ListSource(events, batch=10)
    monitor = _monitor(tmp_path, source, sink, metrics)
    task = asyncio.create_task(monitor.run())
    while metric_total(metrics, "rcwatch_sink_failures", sink="queue") < 3:
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)
    # stalled: the spool is full, so the sink has not accepted every alert
    accepted = {r["alert"]["event_id"] for r in sink.spool.peek(10_000)}
    accepted |= {d["alert"]["event_id"] for d in read_dead_letters(sink.dead_letter_path)}
    private = {i: orjson.loads(e)["meta"]["id"] for i, e in enumerate(events) if b"private-" in e}
    assert set(private.values()) - accepted, "the spool should be full by now"
    cp = CheckpointStore(tmp_path).load()
    assert cp is not None
    position = int(cp.last_event_id.strip("[]"))
    # every alert at or before the checkpoint is in the spool
    assert all(eid in accepted for i, eid in private.items() if i <= position)
    assert position < len(events) - 1
    _, details = monitor.health()
    assert details["sinks"]["queue"]["up"] is False
    assert details["sinks"]["queue"]["spooled"] == len(sink.spool) > 0
    transport.down = False
    await asyncio.wait_for(task, 30)
    ids = [a["id"] for a in transport.received]
    assert len(ids) == len(set(ids)) >= 24
    cp = CheckpointStore(tmp_path).load()
    assert cp is not None and cp.last_event_id == f"[{len(events) - 1}]"


class BuggySink(FlakySink):
    """Raises a plain exception (a bug, not a SinkError) on its first sends."""

    def __init__(self, bugs: int) -> None:
        super().__init__()
        self.bugs = bugs

    async def send(self, alerts: Sequence[Alert]) -> None:
        if self.bugs:
            self.bugs -= 1
            raise KeyError("unexpected")
        await super().send(alerts)

    async def close(self) -> None:
        raise RuntimeError("close bug")


async def test_a_sink_bug_is_retried_and_does_not_stop_the_others(
    sample_events: list[bytes], tmp_path: Path
) -> None:
    events = _private_stream(sample_events, n=6)
    buggy, healthy = BuggySink(2), FlakySink()
    healthy.name = "healthy"
    metrics = Metrics()
    summary = await _monitor(tmp_path, ListSource(events), [buggy, healthy], metrics).run()
    assert summary.fatal is None
    assert buggy.got == healthy.got and len(healthy.got) >= 6
    assert metric_total(metrics, "rcwatch_sink_failures", sink="flaky") == 2
