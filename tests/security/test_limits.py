"""Limits that limit: the event size cap is per event, and every metric label comes from a
bounded set whatever the stream carries.

Issue 9.7 reproduced: ``max_event_bytes`` applied per ``data:`` line, so three 700 KiB
lines made a 2.1 MiB event; and ``rcwatch_events_received_total`` took its ``stream`` label
from the event, so 2,000 distinct ``meta.stream`` values made 2,001 series.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from detectors.event import RawEvent
from sinks.metrics import Metrics
from streams.app import build_detection
from streams.pipeline.stages import Pipeline
from streams.settings import Settings
from streams.source.sse import SSEDecoder
from streams.standins.sse_server import EventStreamsServer, Fault
from tests.harness import (
    archived_ids,
    fast_stream_config,
    make_monitor,
    metric_total,
    run_until,
    settings_for,
)


def test_the_size_cap_is_on_the_whole_event_not_on_each_line() -> None:
    limit = 1 << 20
    decoder = SSEDecoder(limit)
    line = b"data: " + b"x" * (700 << 10) + b"\n"
    [big, small] = decoder.feed(b"event: message\nid: [1]\n" + line * 3 + b"\ndata: {}\n\n")
    assert big.oversized and big.data == b"", "2.1 MiB of data lines is over a 1 MiB cap"
    assert not small.oversized and small.data == b"{}"
    [fits] = SSEDecoder(limit).feed(line + line[:-1][: 200 << 10] + b"\n\n")
    assert not fits.oversized


async def test_an_event_of_many_lines_over_the_cap_is_counted_and_skipped(
    sample_events: list[bytes], tmp_path: Path
) -> None:
    server = EventStreamsServer(sample_events[:20])
    chunk = b"data: " + b"y" * (700 << 10) + b"\n"
    server.faults = [
        Fault("raw", after_events=10, body=b"event: message\nid: [9]\n" + chunk * 3 + b"\n")
    ]
    await server.start()
    try:
        settings = settings_for(tmp_path, fast_stream_config(server.url, max_event_bytes=1 << 20))
        monitor, _, metrics = make_monitor(settings)
        await run_until(monitor, lambda: server.caught_up(monitor.tracker.watermark_id))
    finally:
        await server.stop()
    assert metric_total(metrics, "rcwatch_events_dropped", reason="oversized") == 1
    assert len([i for i in archived_ids(tmp_path / "archive") if i]) == 20


def test_metric_labels_stay_bounded_whatever_the_events_name() -> None:
    base = {
        "meta": {"dt": "2026-05-05T11:17:40Z", "domain": "en.wikipedia.org"},
        "type": "edit", "namespace": 0, "title": "X", "wiki": "enwiki",
        "server_name": "en.wikipedia.org", "user": "U",
    }  # fmt: skip
    events = []
    for i in range(2000):
        e = orjson.loads(orjson.dumps(base))
        e["meta"].update(id=f"e{i}", stream=f"mediawiki.flood-{i}")
        e["type"] = f"kind-{i}"
        e["server_name"] = f"wiki{i}.example-{i}.org"
        events.append(RawEvent(None, orjson.dumps(e), 0))
    settings = Settings()
    metrics = Metrics()
    pipeline = Pipeline(settings.scope.build(), build_detection(settings, metrics), metrics)
    pipeline.process(events)
    for family in metrics.registry.collect():
        if family.name in ("rcwatch_events_received", "rcwatch_events_by_family"):
            series = {tuple(sorted(s.labels.items())) for s in family.samples}
            assert len(series) <= 4, f"{family.name}: {len(series)} series"
    assert metric_total(metrics, "rcwatch_events_received", stream="other") == 2000
