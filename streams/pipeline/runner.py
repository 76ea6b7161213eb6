"""The runner: source -> bounded queue -> stage 1 -> ordered stage 2 -> sinks.

- Stage 1 (``Pipeline.prepare``) decodes and runs the detectors on events that need no
  content, and starts fetching the text for events a content rule is in scope for. It
  runs ahead: events waiting for content are processed out of order, so the stream never
  stalls behind a slow wiki API (up to ``reorder_max_events`` held events; each fetch
  gives up ``max_wait_seconds`` after its first request, and metadata rules still run). A
  fetch queued behind the politeness limits waits its turn: a backlog fills the held-event
  budget and the reader waits, so a catch-up gives the alerts steady state gives.
- Stage 2 (``Pipeline.complete``) takes batches strictly in stream order once their
  fetches are done: archive, pattern rules, alerts, throttle, delivery, then the batch's
  position is done. Every ``checkpoint_interval_seconds``, between two batches, the
  archive and every sink are flushed (durable) and the checkpoint is written together
  with the pattern state as of that position, so a restart neither loses nor repeats.
- Backpressure: queues and the held-event budget are bounded; a slow sink slows stage 2,
  which stops stage 1, which stops the reader; TCP does the rest. Nothing is dropped.
- Idempotent delivery: each sink is given only delivery ids (alert id, or id and count
  for updates) it has not delivered before.
- Shutdown (SIGINT/SIGTERM -> ``request_stop``): stop reading, finish what was received,
  flush, write the checkpoint. Past ``shutdown_timeout_seconds`` unfinished events are
  left for the next run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import orjson

from detectors.event import RawEvent, RecentChange
from sinks.alert import Alert
from sinks.archive import EventArchive
from sinks.base import Sink, SinkError
from sinks.dedup import RecentIds
from sinks.metrics import Metrics
from sinks.retry import Backoff
from streams.fetch.content import Content, ContentFetcher
from streams.pipeline.rules_reload import RulesReloader
from streams.pipeline.stages import BatchResult, BatchWork, Pipeline
from streams.source.checkpoint import CheckpointStore, CommitTracker
from streams.source.eventstreams import FatalStreamError

__all__ = ["Monitor", "RunSummary", "Source"]

log = logging.getLogger(__name__)


class Source(Protocol):
    def batches(self) -> AsyncIterator[list[RawEvent]]: ...

    def stop(self) -> None: ...


@dataclass
class RunSummary:
    events: int = 0
    processed: int = 0
    alerts: int = 0  # new alerts (what the alert store lists)
    updates: int = 0  # repeats of them delivered as updates (count > 1)
    alerts_by_rule: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    checkpoint: str | None = None
    fatal: str | None = None
    interrupted: bool = False

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _SinkHandle:
    sink: Sink
    seen: RecentIds


class Monitor:
    def __init__(
        self,
        *,
        source: Source,
        pipeline: Pipeline,
        sinks: Sequence[Sink],
        metrics: Metrics,
        archive: EventArchive | None = None,
        checkpoint: CheckpointStore | None = None,
        streams_name: str = "",
        checkpoint_interval_seconds: float = 1.0,
        queue_max_batches: int = 64,
        reorder_max_events: int = 20_000,
        shutdown_timeout_seconds: float = 30.0,
        sink_backoff_initial_seconds: float = 0.5,
        sink_backoff_max_seconds: float = 30.0,
        on_batch: Callable[[BatchResult], None] | None = None,
        background: Sequence[Callable[[], Coroutine[Any, Any, None]]] = (),
        fetcher: ContentFetcher | None = None,
    ) -> None:
        self.source = source
        self._background = list(background)
        self.pipeline = pipeline
        self.metrics = metrics
        self.archive = archive
        self.checkpoint = checkpoint
        self.streams_name = streams_name
        self.checkpoint_interval = checkpoint_interval_seconds
        self.queue_max_batches = queue_max_batches
        self.reorder_max_events = reorder_max_events
        self.shutdown_timeout = shutdown_timeout_seconds
        self._sink_backoff = (sink_backoff_initial_seconds, sink_backoff_max_seconds)
        self._on_batch = on_batch
        self._sinks = [_SinkHandle(s, RecentIds(100_000)) for s in sinks]
        self.fetcher = fetcher
        self.tracker = CommitTracker()
        self._committed: str | None = None
        self._last_commit = time.monotonic()
        self._stop = asyncio.Event()
        self._fatal: FatalStreamError | None = None
        self._alive = 0
        self._last_event_wall: float | None = None
        self._held = 0  # events between stage 1 and the end of stage 2
        self._room = asyncio.Event()
        self._room.set()
        self._fetching = 0
        self._mid_batch = False  # stage 2 completed a batch it has not delivered yet
        self.summary = RunSummary()
        self.reloader: RulesReloader | None = None  # set by the composition root

    # -- control --------------------------------------------------------------------------

    def request_stop(self) -> None:
        if not self._stop.is_set():
            log.info("stopping: finishing events in flight")
        self._stop.set()
        self.source.stop()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Ready (200) or not (503, with a ``reason``): the source's own readiness (a stream
        never connected, or disconnected for too long, is not ready) and a live pipeline."""
        source_health = getattr(self.source, "health", None)
        ok, details = source_health() if callable(source_health) else (True, {})
        details.update(
            {
                "events": self.pipeline.events,
                "in_flight": self._held,
                "content_pending": self._fetching,
                "checkpoint": self._committed is not None,
                # a failing sink spools and is alerted on by its metrics; health stays ok
                "sinks": {h.sink.name: h.sink.status() for h in self._sinks},
            }
        )
        if self._last_event_wall is not None:
            details["last_event_age_seconds"] = round(time.time() - self._last_event_wall, 3)
        if self._fatal is not None:
            ok = False
            details["reason"] = "the stream server refused us for good"
        elif self._alive != 2 and not self._stop.is_set():
            ok = False
            details.setdefault("reason", "the pipeline is not running")
        return ok, details

    # -- main -----------------------------------------------------------------------------

    async def run(self) -> RunSummary:
        started = time.monotonic()
        await self._start_sinks()
        if self.archive is not None:
            self.archive.start()
            damaged = self.archive.damaged_members + self.archive.unreadable
            if damaged:
                self.metrics.state_corrupt.labels("archive").inc(damaged)
        queue: asyncio.Queue[list[RawEvent] | None] = asyncio.Queue(self.queue_max_batches)
        ordered: asyncio.Queue[BatchWork | None] = asyncio.Queue()
        source_task = asyncio.create_task(self._read(queue), name="rcwatch-source")
        stage1 = asyncio.create_task(self._prepare(queue, ordered), name="rcwatch-detect")
        stage2 = asyncio.create_task(self._release(ordered), name="rcwatch-release")
        stop_wait = asyncio.create_task(self._stop.wait())
        helpers = [asyncio.create_task(job()) for job in self._background]
        try:
            await asyncio.wait({stage2, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            if not stage2.done():
                source_task.cancel()
                try:
                    await asyncio.wait_for(asyncio.shield(stage2), self.shutdown_timeout)
                except TimeoutError:
                    log.error(
                        "shutdown timed out; unfinished events will be processed next run",
                        extra={"fields": {"in_flight": self._held}},
                    )
                    stage1.cancel()
                    stage2.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stage2
        finally:
            stop_wait.cancel()
            for task in helpers:
                task.cancel()
            # stage 2 too: after a second signal it must not go on changing the pattern
            # state while the final checkpoint is written
            failed: BaseException | None = None
            for task in (source_task, stage1, stage2):
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
                except Exception as exc:  # kept, and raised once everything is closed
                    failed = failed or exc
            try:
                await self._commit(final=True)
            finally:
                await self._close()
            if failed is not None:
                raise failed
        s = self.summary
        s.interrupted = self._stop.is_set()
        s.seconds = time.monotonic() - started
        s.events = self.pipeline.events
        s.processed = self.pipeline.processed
        s.alerts_by_rule = Counter(self.pipeline.alerts_by_rule)
        s.alerts = sum(s.alerts_by_rule.values())
        s.updates = self.pipeline.alert_updates
        s.dropped = Counter(self.pipeline.dropped)
        s.checkpoint = self._committed
        if self._fatal is not None:
            s.fatal = str(self._fatal)
        return s

    async def _start_sinks(self) -> None:
        for h in self._sinks:
            h.sink.bind_metrics(self.metrics)
            await h.sink.start()
            n = 0
            for delivery_id in h.sink.delivered_ids():
                h.seen.add(delivery_id)
                n += 1
            if n:
                log.info(
                    "sink remembers delivered alerts",
                    extra={"fields": {"sink": h.sink.name, "alerts": n}},
                )

    async def _read(self, queue: asyncio.Queue[list[RawEvent] | None]) -> None:
        depth = self.metrics.queue_depth
        try:
            async for batch in self.source.batches():
                await queue.put(batch)
                depth.set(queue.qsize())
        except FatalStreamError as exc:
            self._fatal = exc
            log.error("stream cannot continue", extra={"fields": {"error": str(exc)}})
        except asyncio.CancelledError:
            pass
        finally:
            await queue.put(None)

    async def _prepare(
        self,
        queue: asyncio.Queue[list[RawEvent] | None],
        ordered: asyncio.Queue[BatchWork | None],
    ) -> None:
        """Stage 1: detection of what needs no content; fetches started; order kept."""
        self._alive += 1
        m = self.metrics
        try:
            while True:
                batch = await queue.get()
                m.queue_depth.set(queue.qsize())
                if batch is None:
                    break
                while self._held >= self.reorder_max_events:
                    self._room.clear()
                    await self._room.wait()  # backpressure: the ordered stage is behind
                work = self.pipeline.prepare(batch)
                work.seq = self.tracker.begin(work.sse_id)
                if self.fetcher is not None:
                    for item in work.events:
                        if self.pipeline.needs_fetch(item):
                            assert item.change is not None
                            item.fetch = asyncio.ensure_future(self._fetch(item.change))
                self._held += work.held
                m.in_flight.set(self._held)
                await ordered.put(work)
        finally:
            self._alive -= 1
            await ordered.put(None)

    async def _fetch(self, change: RecentChange) -> Content:
        assert self.fetcher is not None
        self._fetching += 1
        self.metrics.content_pending.set(self._fetching)
        try:
            return await self.fetcher.fetch(change)
        finally:
            self._fetching -= 1
            self.metrics.content_pending.set(self._fetching)

    async def _release(self, ordered: asyncio.Queue[BatchWork | None]) -> None:
        """Stage 2, strictly in stream order: windows, alerts, delivery, checkpoint."""
        self._alive += 1
        m = self.metrics
        tracker = self.tracker
        try:
            while True:
                try:
                    work = await asyncio.wait_for(ordered.get(), self.checkpoint_interval)
                except TimeoutError:  # idle: the last batches may still want a checkpoint
                    if self.tracker.watermark_id != self._committed:
                        await self._commit()
                    continue
                if work is None:
                    break
                fetches = work.fetches
                if fetches:
                    await asyncio.wait(fetches)
                await self._evaluate_off_loop(work)
                # from here until the batch is done, the pattern state holds events whose
                # alerts are not delivered yet: no checkpoint may be written meanwhile
                self._mid_batch = True
                result = self.pipeline.complete(work)
                if result.alerts:
                    await self._deliver(result.alerts)
                tracker.done(work.seq, result.last_event_dt)
                self._mid_batch = False
                self._held -= work.held
                if self._held < self.reorder_max_events:
                    self._room.set()
                now = time.time()
                if work.events:
                    m.latency.observe(max(0.0, now - work.events[0].raw.recv_ns / 1e9))
                    m.last_receive_time.set(work.events[-1].raw.recv_ns / 1e9)
                self._last_event_wall = now
                if result.last_event_time is not None:
                    m.last_event_time.set(result.last_event_time)
                    m.lag.set(max(0.0, now - result.last_event_time))
                m.in_flight.set(self._held)
                if self._on_batch is not None:
                    self._on_batch(result)
                if time.monotonic() - self._last_commit >= self.checkpoint_interval:
                    await self._commit()
        finally:
            self._alive -= 1

    async def _evaluate_off_loop(self, work: BatchWork) -> None:
        """Events with a lot of text are evaluated in a worker thread (one at a time, in
        stream order), so the loop keeps serving the stream, /healthz and the sinks; the
        bookkeeping (hit counts, storm guard) stays on the loop's thread."""
        pipeline = self.pipeline
        if work.pooled is not None:  # decoded and evaluated by the worker processes
            pipeline.apply_pooled(work, await asyncio.wrap_future(work.pooled))
        for item in work.events:
            ctx = pipeline.awaiting_detection(item)
            if ctx is None or not pipeline.offload(item, ctx):
                continue
            change = item.change
            assert change is not None
            findings, budget, item.fingerprints = await asyncio.to_thread(
                pipeline.evaluate_off_loop, change, ctx
            )
            item.findings = pipeline.detection.account(change, ctx, findings, budget, item.seq)

    # -- delivery -------------------------------------------------------------------------

    async def _deliver(self, alerts: list[Alert]) -> None:
        if len(self._sinks) == 1:
            await self._deliver_to(self._sinks[0], alerts)
        else:
            await asyncio.gather(*(self._deliver_to(h, alerts) for h in self._sinks))

    async def _deliver_to(self, h: _SinkHandle, alerts: list[Alert]) -> None:
        m = self.metrics
        name = h.sink.name
        route = h.sink.route
        if route is not None:
            alerts = [a for a in alerts if route.matches(a)]
            if not alerts:
                return
        m.sink_received.labels(name).inc(len(alerts))
        fresh = [a for a in alerts if a.delivery_id not in h.seen]
        if len(fresh) < len(alerts):
            m.sink_dropped.labels(name, "duplicate").inc(len(alerts) - len(fresh))
        if not fresh:
            return
        backoff = Backoff(*self._sink_backoff)
        while True:
            m.sink_writes.labels(name).inc()
            try:
                try:
                    await h.sink.send(fresh)
                except SinkError:
                    raise
                except Exception as exc:  # a sink bug must not stop the stream: retry it
                    raise SinkError(f"unexpected {type(exc).__name__} in the sink") from exc
                break
            except SinkError as exc:
                m.sink_failures.labels(name).inc()
                if not exc.retryable:
                    m.sink_dropped.labels(name, "error").inc(len(fresh))
                    log.error(
                        "sink refused alerts; they were not delivered to it",
                        extra={"fields": {"sink": name, "alerts": len(fresh), "error": str(exc)}},
                    )
                    return
                delay = backoff.next_delay()
                log.warning(
                    "sink failed; retrying (events wait, nothing is dropped)",
                    extra={
                        "fields": {"sink": name, "error": str(exc), "retry_in_s": round(delay, 2)}
                    },
                )
                await asyncio.sleep(delay)
        for a in fresh:
            h.seen.add(a.delivery_id)
        m.sink_sent.labels(name).inc(len(fresh))

    # -- checkpoint -----------------------------------------------------------------------

    def _state(self) -> bytes:
        return orjson.dumps(
            {
                "windows": self.pipeline.windows.snapshot(),
                "throttle": self.pipeline.throttle.snapshot(),
                "seen": self.pipeline.resume_ids(),
            }
        )

    async def _commit(self, final: bool = False) -> None:
        """Flush the archive and the sinks, then record the watermark together with the
        pattern state (windows, page memory, throttle) as of that same position."""
        self._last_commit = time.monotonic()
        watermark = self.tracker.watermark_id
        watermark_time = self.tracker.watermark_time
        m = self.metrics
        if self.archive is not None:
            written, size = self.archive.events_written, self.archive.bytes_written
            try:
                self.archive.flush()
            except OSError as exc:
                m.archive_failures.inc()
                log.error(
                    "archive write failed; checkpoint held back",
                    extra={"fields": {"error": exc.strerror or str(exc)}},
                )
                return
            m.archive_events.inc(self.archive.events_written - written)
            m.archive_bytes.inc(self.archive.bytes_written - size)
        for h in self._sinks:
            try:
                await h.sink.flush()
            except SinkError as exc:
                m.sink_failures.labels(h.sink.name).inc()
                log.error(
                    "sink flush failed; checkpoint held back",
                    extra={"fields": {"sink": h.sink.name, "error": str(exc)}},
                )
                return
        if self.checkpoint is None or watermark is None or watermark == self._committed:
            return
        if self._mid_batch:
            # stopped while a batch's alerts were being delivered: its events are in the
            # pattern state (windows, throttle, resume ids) but not behind the watermark.
            # Writing both would skip that batch on restart; the last checkpoint, written
            # between two batches, stays, and the next run processes everything after it.
            log.warning(
                "stopped while delivering a batch; the checkpoint stays where the last whole "
                "batch left it, and the next run processes what follows",
                extra={"fields": {"checkpoint": "unchanged"}},
            )
            return
        # this only runs between two batches of the ordered stage (or after it ended), so
        # the pattern state holds exactly the events up to the watermark
        try:
            self.checkpoint.save(watermark, self.streams_name, watermark_time, self._state())
        except OSError as exc:
            log.error(
                "checkpoint write failed", extra={"fields": {"error": exc.strerror or str(exc)}}
            )
            return
        self._committed = watermark
        m.checkpoint_writes.inc()
        if watermark_time is not None:
            with contextlib.suppress(ValueError):
                m.checkpoint_event_time.set(datetime.fromisoformat(watermark_time).timestamp())
        if final:
            log.info("checkpoint written", extra={"fields": {"event_time": watermark_time}})

    def restore_state(self, state: bytes | None) -> None:
        if not state:
            return
        pipeline = self.pipeline
        try:
            data = orjson.loads(state)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            # all or nothing: restored into copies, swapped in only when every part reads
            windows, throttle = pipeline.windows.empty_copy(), pipeline.throttle.empty_copy()
            windows.restore(data["windows"])
            throttle.restore(data["throttle"])
            pipeline.restore_resume_ids(data.get("seen", []))
            pipeline.windows, pipeline.throttle = windows, throttle
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            self.metrics.state_corrupt.labels("pattern_state").inc()
            log.error(
                "pattern state unreadable; starting with empty windows",
                extra={"fields": {"error": type(exc).__name__}},
            )
            return
        log.info(
            "pattern state restored",
            extra={
                "fields": {
                    "window_keys": self.pipeline.windows.size,
                    "throttled_groups": self.pipeline.throttle.size,
                }
            },
        )

    async def _close(self) -> None:
        if self.fetcher is not None:
            await self.fetcher.close()
        if self.pipeline.pool is not None:
            await asyncio.to_thread(self.pipeline.pool.close)
        if self.archive is not None:
            try:
                self.archive.close()
            except OSError as exc:
                log.error("archive close failed", extra={"fields": {"error": str(exc)}})
        for h in self._sinks:
            try:
                await h.sink.close()
            except Exception as exc:  # every sink gets its close, whatever one of them does
                log.error(
                    "sink close failed",
                    extra={"fields": {"sink": h.sink.name, "error": type(exc).__name__}},
                )
