"""Run a monitor in-process against a local EventStreams server and inspect its outputs."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import orjson

from sinks.archive import iter_lines
from sinks.metrics import Metrics
from streams.app import build_monitor
from streams.pipeline.runner import Monitor, RunSummary
from streams.settings import ArchiveConfig, JsonlSinkConfig, PipelineConfig, Settings
from streams.source.checkpoint import CheckpointStore
from streams.source.eventstreams import EventStreamsConfig, EventStreamsSource
from streams.source.start import resolve_start

TEST_UA = "rcwatch-tests/0.1 (https://example.org/rcwatch; tests@example.org)"


def fast_stream_config(url: str, **overrides: object) -> EventStreamsConfig:
    base = EventStreamsConfig(
        url=url,
        user_agent=TEST_UA,
        connect_timeout_seconds=2.0,
        stall_timeout_seconds=0.5,
        backoff_initial_seconds=0.02,
        backoff_max_seconds=0.2,
    )
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


def settings_for(state_dir: Path, stream: EventStreamsConfig) -> Settings:
    return Settings(
        stream=stream,
        state_dir=str(state_dir),
        sinks=(JsonlSinkConfig(),),
        archive=ArchiveConfig(enabled=True),
        pipeline=PipelineConfig(checkpoint_interval_seconds=0.05, shutdown_timeout_seconds=5),
    )


def make_monitor(
    settings: Settings,
    *,
    since: str | None = "0",
    metrics: Metrics | None = None,
    fetch_content: bool = False,
) -> tuple[Monitor, EventStreamsSource, Metrics]:
    metrics = metrics or Metrics()
    store = CheckpointStore(settings.state_dir)
    start = resolve_start(
        store,
        streams="recentchange",
        since=since,
        margin_seconds=settings.stream.position_margin_seconds,
        metrics=metrics,
    )
    source = EventStreamsSource(
        settings.stream, metrics, last_event_id=start.last_event_id, since=start.since
    )
    monitor = build_monitor(
        settings,
        source,
        metrics=metrics,
        checkpoint=store,
        streams_name="recentchange",
        fetch_content=fetch_content,
    )
    if start.checkpoint is not None:
        monitor.restore_state(store.load_state(start.checkpoint))
    return monitor, source, metrics


async def run_until(
    monitor: Monitor, done: Callable[[], bool], timeout: float = 30.0
) -> RunSummary:
    task = asyncio.create_task(monitor.run())
    deadline = time.monotonic() + timeout
    while not done():
        if task.done():
            break
        if time.monotonic() > deadline:
            monitor.request_stop()
            await task
            raise AssertionError("monitor did not reach the expected state in time")
        await asyncio.sleep(0.02)
    monitor.request_stop()
    return await task


def archived_ids(archive_dir: Path) -> Counter[str | None]:
    ids: Counter[str | None] = Counter()
    for path in sorted(archive_dir.glob("events-*.ndjson.gz")):
        for line in iter_lines(path):
            ids[orjson.loads(line)["event_id"]] += 1
    return ids


def alert_ids(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [orjson.loads(line)["id"] for line in path.read_bytes().splitlines() if line]


def event_ids(events: list[bytes]) -> list[str]:
    out = []
    for e in events:
        try:
            out.append(orjson.loads(e)["meta"]["id"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue
    return out


def expected_alert_ids(events: list[bytes], settings: Settings | None = None) -> set[str]:
    """Alert ids a fault-free run must produce: the pipeline alone over the same events."""
    from detectors.event import RawEvent
    from streams.app import build_detection
    from streams.pipeline.stages import Pipeline

    settings = settings or Settings()
    metrics = Metrics()
    pipeline = Pipeline(settings.scope.build(), build_detection(settings, metrics), metrics)
    result = pipeline.process([RawEvent(None, e, 0) for e in events])
    return {a.id for a in result.alerts}


def metric_total(metrics: Metrics, counter: str, **labels: str) -> float:
    """Sum of a counter's ``_total`` samples whose labels include ``labels``."""
    return sum(
        s.value
        for m in metrics.registry.collect()
        if m.name == counter
        for s in m.samples
        if s.name.endswith("_total") and labels.items() <= s.labels.items()
    )
