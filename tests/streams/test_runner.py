"""The runner's delivery and checkpoint guarantees, with sinks that misbehave."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from sinks.alert import Alert
from sinks.base import Sink, SinkError
from sinks.metrics import Metrics
from streams.app import build_monitor
from streams.checkpoint import CheckpointStore
from streams.event import RawEvent
from streams.settings import PipelineConfig, Settings


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


def _monitor(tmp_path: Path, source: ListSource, sink: FlakySink, metrics: Metrics):  # type: ignore[no-untyped-def]
    m = build_monitor(
        _settings(tmp_path),
        source,
        metrics=metrics,
        sinks=[sink],
        archive=False,
        checkpoint=CheckpointStore(tmp_path),
        streams_name="recentchange",
    )
    m._sinks[0].sink  # noqa: B018 - the handle exists
    return m


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
