"""Replay source: recorded NDJSON files (plain or gzip) as if they were the stream.

A file holds either plain events, one per line, or capture wrappers
``{"data": "<event json>", "recv_ns": N, ...}`` as in ``../shared/data`` and in rcwatch's
own archive (which adds ``event_id`` and the SSE ``id``). The format is decided per file
from its first line. Speed is ``max`` (as fast as the pipeline goes) or a multiple of
real time, paced by event time (``meta.dt``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from detectors.event import RawEvent
from sinks.archive import ArchiveStats, iter_lines

__all__ = ["ReplayProgress", "ReplaySource", "parse_speed"]

log = logging.getLogger(__name__)


def parse_speed(value: str | float | None) -> float | None:
    """``max`` (None: no pacing) or a positive multiple of real time."""
    if value is None:
        return None
    if isinstance(value, str):
        if value.strip().lower() in ("max", "inf", ""):
            return None
        value = value.strip().rstrip("xX")
    try:
        speed = float(value)
    except ValueError:
        raise ValueError(f"speed must be 'max' or a positive number, got {value!r}") from None
    if not speed > 0:
        raise ValueError(f"speed must be 'max' or a positive number, got {value!r}")
    return speed


def _is_wrapper(obj: Any) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get("data"), str) and "meta" not in obj


@dataclass
class ReplayProgress:
    files_done: int = 0
    files_total: int = 0
    bytes_done: int = 0
    bytes_total: int = 0
    lines: int = 0
    unreadable_lines: int = 0
    truncated_files: int = 0


class ReplaySource:
    def __init__(
        self,
        paths: Sequence[str | Path],
        *,
        speed: float | None = None,
        batch_max_events: int = 512,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.speed = speed
        self.batch_max_events = batch_max_events
        self.progress = ReplayProgress(files_total=len(self.paths))
        for p in self.paths:
            with contextlib.suppress(OSError):
                self.progress.bytes_total += p.stat().st_size
        self._stopping = False
        self._current = ArchiveStats()

    def stop(self) -> None:
        self._stopping = True

    @property
    def bytes_read(self) -> int:
        return self.progress.bytes_done + self._current.bytes_read

    def _raw_events(self, path: Path) -> Iterator[RawEvent]:
        stats = self._current = ArchiveStats()
        wrapper: bool | None = None
        progress = self.progress
        now_ns = time.time_ns
        for line in iter_lines(path, stats):
            progress.lines += 1
            if wrapper is None:
                try:
                    wrapper = _is_wrapper(orjson.loads(line))
                except orjson.JSONDecodeError:
                    wrapper = False
            if not wrapper:
                yield RawEvent(None, line, now_ns())
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                obj = None
            if not _is_wrapper(obj):
                yield RawEvent(None, line, now_ns())  # the pipeline counts it as malformed
                continue
            sse_id = obj.get("id")
            content = obj.get("content")
            # recv_ns in a capture is relative to its start; latency is measured from now
            yield RawEvent(
                sse_id if isinstance(sse_id, str) else None,
                obj["data"].encode(),
                now_ns(),
                content if isinstance(content, dict) and content.get("status") else None,
            )
        if stats.truncated:
            progress.truncated_files += 1
            log.warning(
                "file has a torn gzip member; its complete lines were replayed, reading "
                "resumed at the next member",
                extra={"fields": {"file": str(path), "members": stats.damaged_members}},
            )

    async def batches(self) -> AsyncIterator[list[RawEvent]]:
        for path in self.paths:
            if self._stopping:
                return
            try:
                events = self._raw_events(path)
                if self.speed is None:
                    async for batch in self._fast(events):
                        yield batch
                else:
                    async for batch in self._paced(events, self.speed):
                        yield batch
            except OSError as exc:
                log.error(
                    "cannot read replay file",
                    extra={"fields": {"file": str(path), "error": exc.strerror or str(exc)}},
                )
            self.progress.files_done += 1
            self.progress.bytes_done += self._current.bytes_read
            self._current = ArchiveStats()

    async def _fast(self, events: Iterator[RawEvent]) -> AsyncIterator[list[RawEvent]]:
        batch: list[RawEvent] = []
        n = self.batch_max_events
        for ev in events:
            batch.append(ev)
            if len(batch) >= n:
                yield batch
                batch = []
                if self._stopping:
                    return
                await asyncio.sleep(0)  # let the metrics endpoint and signals run
        if batch:
            yield batch

    async def _paced(
        self, events: Iterator[RawEvent], speed: float
    ) -> AsyncIterator[list[RawEvent]]:
        start_wall: float | None = None
        first_event: float | None = None
        batch: list[RawEvent] = []
        for ev in events:
            t = _event_time(ev.data)
            if t is not None:
                if first_event is None:
                    first_event, start_wall = t, time.monotonic()
                assert start_wall is not None
                due = start_wall + max(0.0, t - first_event) / speed
                wait = due - time.monotonic()
                if wait > 0.001:
                    if batch:
                        yield batch
                        batch = []
                    await asyncio.sleep(wait)
            batch.append(ev)
            if len(batch) >= self.batch_max_events:
                yield batch
                batch = []
            if self._stopping:
                return
        if batch:
            yield batch


def _event_time(data: bytes) -> float | None:
    try:
        obj = orjson.loads(data)
        dt = obj["meta"]["dt"]
        return datetime.fromisoformat(dt).timestamp()
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
