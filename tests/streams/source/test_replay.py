"""Replay of recorded files: formats, torn archives, pacing, and the full pipeline."""

from __future__ import annotations

import gzip
import time
from pathlib import Path

import orjson
import pytest

from detectors.event import RawEvent
from sinks.metrics import Metrics
from streams.app import build_monitor
from streams.settings import JsonlSinkConfig, Settings
from streams.source.replay import ReplaySource, parse_speed
from tests.conftest import shared_data
from tests.harness import alert_ids, expected_alert_ids


async def _collect(source: ReplaySource) -> list[RawEvent]:
    return [ev async for batch in source.batches() for ev in batch]


def _wrap(events: list[bytes]) -> bytes:
    return b"".join(
        orjson.dumps({"data": e.decode(), "recv_ns": i}) + b"\n" for i, e in enumerate(events)
    )


@pytest.mark.parametrize("fmt", ["plain", "wrapper", "plain.gz", "wrapper.gz"])
async def test_formats_give_the_same_events(
    fmt: str, sample_events: list[bytes], tmp_path: Path
) -> None:
    body = _wrap(sample_events) if fmt.startswith("wrapper") else b"\n".join(sample_events)
    path = tmp_path / f"events.{fmt}"
    path.write_bytes(gzip.compress(body) if fmt.endswith(".gz") else body)
    got = await _collect(ReplaySource([path], batch_max_events=100))
    assert [e.data for e in got] == sample_events


async def test_torn_gzip_member_keeps_complete_lines(
    sample_events: list[bytes], tmp_path: Path
) -> None:
    first = gzip.compress(b"\n".join(sample_events[:100]) + b"\n")
    second = gzip.compress(b"\n".join(sample_events[100:200]) + b"\n")
    path = tmp_path / "torn.ndjson.gz"
    path.write_bytes(first + second[: len(second) // 2])
    source = ReplaySource([path])
    got = await _collect(source)
    assert [e.data for e in got[:100]] == sample_events[:100]
    assert all(e.data in sample_events[100:200] for e in got[100:])
    assert len(got) < 200
    assert source.progress.truncated_files == 1


async def test_recorded_capture_replays_through_the_pipeline(tmp_path: Path) -> None:
    path = shared_data("recentchange", "rts-recentchange-60s-2026-05-05.ndjson")
    settings = Settings(
        state_dir=str(tmp_path / "state"), sinks=(JsonlSinkConfig(path=str(tmp_path / "a.jsonl")),)
    )
    monitor = build_monitor(settings, ReplaySource([path]), metrics=Metrics(), archive=False)
    summary = await monitor.run()
    assert summary.events == 2476
    assert summary.dropped["malformed"] == 0
    assert summary.processed + summary.dropped["filtered"] == 2476
    raw = [orjson.loads(line)["data"].encode() for line in path.read_bytes().splitlines()]
    assert set(alert_ids(tmp_path / "a.jsonl")) == expected_alert_ids(raw)


async def test_paced_replay_follows_event_time(sample_events: list[bytes], tmp_path: Path) -> None:
    path = tmp_path / "e.ndjson"
    path.write_bytes(b"\n".join(sample_events[:200]))
    times = [orjson.loads(e)["meta"]["dt"] for e in sample_events[:200]]
    from datetime import datetime

    span = (datetime.fromisoformat(max(times)) - datetime.fromisoformat(times[0])).total_seconds()
    speed = span / 0.3  # the whole span should take about 0.3 s
    started = time.monotonic()
    got = await _collect(ReplaySource([path], speed=speed))
    assert len(got) == 200
    # sleeping never returns early, so a paced replay cannot finish before its schedule
    assert time.monotonic() - started >= 0.25


def test_parse_speed() -> None:
    assert parse_speed("max") is None and parse_speed(None) is None
    assert parse_speed("10") == 10.0 and parse_speed("2.5x") == 2.5
    for bad in ("0", "-1", "fast"):
        with pytest.raises(ValueError, match="speed"):
            parse_speed(bad)
