"""Ingest: EventStreams in, the events topic out, nothing lost across a crash.

Each batch the source yields is produced record by record (``acks=all``), keyed by page
(``wiki|page id``, or the title when a change has no page id) so that one page's edits stay
in order on one partition; keying by wiki would send 57% of the recorded events to one of
four partitions. Every record carries its SSE id in the ``sse_id`` header.

Every record also carries ``seq``, its place in the stream: the run's start in nanoseconds
plus the events produced before it, so numbers rise across restarts (a later run starts
higher) without being stored. Every ``tick_interval_seconds`` while events flow, and when
the ingest ends, a *tick* goes to every partition with the highest number the broker has
acknowledged: the detect stage then knows a quiet partition holds nothing older, and
merges the partitions back into stream order (``streams.scaleout.merge``).

The resume position is written only after the broker has acknowledged every record of the
batch, so a crash (kill -9 included) restarts at or before the first unacknowledged event:
events may be produced twice, never skipped; the detect stage drops repeats by event id. A
produce that fails or times out is retried with backoff, the whole batch again, and
counted; the position does not move meanwhile. An event the broker refuses for good (over
its size limit) is dropped, counted and logged (``streams.scaleout.produce``). One ingest per
state directory: a second one is refused by the state-directory lock. Across hosts, the
ingests of a stream share a lease on the broker (``streams.scaleout.lease``): one is active,
the others stand by; the active one publishes its position there each tick interval, for
a standby to resume from when it takes over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson
from prometheus_client import Counter, Gauge

from detectors.event import RawEvent
from sinks.metrics import Metrics
from streams.pipeline.runner import Source
from streams.scaleout.config import ScaleOutConfig
from streams.scaleout.lease import Position, publish_position
from streams.scaleout.produce import Stopped, new_producer, produce_all
from streams.scaleout.records import record_headers, tick_headers
from streams.source.checkpoint import CheckpointStore

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer

__all__ = ["Ingest", "IngestSummary", "event_key"]

log = logging.getLogger(__name__)


def event_key(data: bytes) -> bytes | None:
    """``wiki|page`` of a raw event, or None (round robin) when it does not decode."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    wiki = obj.get("wiki")
    page = obj.get("page_id") or obj.get("title")
    if not isinstance(wiki, str) or not isinstance(page, (str, int)) or isinstance(page, bool):
        return None
    return f"{wiki}|{page}".encode()


def _event_time(data: bytes) -> str | None:
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    meta = obj.get("meta") if isinstance(obj, dict) else None
    dt = meta.get("dt") if isinstance(meta, dict) else None
    return dt if isinstance(dt, str) else None


@dataclass
class IngestSummary:
    batches: int = 0
    produced: int = 0
    retries: int = 0
    ticks: int = 0


class Ingest:
    """Moves batches from a source to the events topic; see the module docstring."""

    def __init__(
        self,
        source: Source,
        cfg: ScaleOutConfig,
        store: CheckpointStore,
        streams: str,
        metrics: Metrics,
        *,
        producer: AIOKafkaProducer | None = None,
        publish_positions: bool = False,
        first_seq: int = 0,
    ) -> None:
        """``publish_positions``: also write the position to the lease's topic (for a
        standby on another host)."""
        self.source = source
        self.publish_positions = publish_positions
        self.first_seq = first_seq  # number from here at least
        self._position: Position | None = None  # the newest saved, not yet published
        self.cfg = cfg
        self.store = store
        self.streams = streams
        self._producer = producer
        self.summary = IngestSummary()
        reg = metrics.registry
        self._produced = Counter(
            "rcwatch_ingest_produced", "Raw events the broker acknowledged", registry=reg
        )
        self._failures = Counter(
            "rcwatch_ingest_produce_failures",
            "Batches whose produce failed or timed out (sent again)",
            registry=reg,
        )
        self._saved = Gauge(
            "rcwatch_ingest_position_saved_timestamp_seconds",
            "When the resume position was last written (after the broker acknowledged)",
            registry=reg,
        )
        self._dropped = Counter(
            "rcwatch_ingest_dropped",
            "Raw events the broker refused for good (over its size limit; logged)",
            registry=reg,
        )
        self._stop = asyncio.Event()
        self._next_seq = 0  # set when the run starts
        self._acked_seq = -1  # the highest number the broker acknowledged
        self._ticked_seq = -1  # the highest number ticked to every partition

    async def _start_producer(self) -> AIOKafkaProducer:
        producer = new_producer(self.cfg)
        await producer.start()
        return producer

    def fence(self) -> None:
        """Publish no position more: another ingest holds the lease now."""
        self.publish_positions = False

    def stop(self) -> None:
        """Finish the batch in hand (produce, acknowledge, save), then end."""
        self._stop.set()
        self.source.stop()

    async def run(self) -> IngestSummary:
        producer = self._producer or await self._start_producer()
        # above every number the last active ingest gave (its clock may have been ahead)
        self._next_seq = max(time.time_ns(), self.first_seq)
        ticking = asyncio.create_task(self._tick_every(producer))
        try:
            async for batch in self.source.batches():
                try:
                    await self._produce(producer, batch)
                except Stopped:
                    break  # not acknowledged: the position stays before this batch
                if self._stop.is_set():
                    break
            ticking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticking
            await self._tick_logged(producer)  # the last events need not wait for the interval
        finally:
            ticking.cancel()
            if self._producer is None:
                await producer.stop()
        return self.summary

    async def _tick_every(self, producer: AIOKafkaProducer) -> None:
        while True:
            await asyncio.sleep(self.cfg.tick_interval_seconds)
            if not await self._tick_logged(producer):
                return

    async def _tick_logged(self, producer: AIOKafkaProducer) -> bool:
        """``_tick``, its failure logged (the next one tries again; events are unaffected);
        False when asked to stop meanwhile."""
        try:
            await self._tick(producer)
        except Stopped:
            return False
        except Exception as exc:
            log.warning("tick not produced", extra={"fields": {"error": type(exc).__name__}})
        return True

    async def _tick(self, producer: AIOKafkaProducer) -> None:
        """Tell a standby where to resume, and every partition how far the acknowledged
        stream has got (each whether or not the other could be written)."""
        position = self._position
        if position is not None and self.publish_positions:
            try:
                await publish_position(producer, self.cfg, self.streams, position)
            except Exception as exc:  # the next interval publishes the newer one
                log.warning(
                    "position not published; a standby would resume from an older one",
                    extra={"fields": {"error": type(exc).__name__}},
                )
            else:
                if self._position is position:
                    self._position = None
        seq = self._acked_seq
        if seq <= self._ticked_seq:
            return
        ticks = [(None, b"", tick_headers(seq), p) for p in range(self.cfg.events_partitions)]
        await produce_all(
            producer, self.cfg, self.cfg.events_topic, ticks, self._stop,
            on_retry=self._failures.inc, on_dropped=self._dropped.inc,
        )  # fmt: skip
        self._ticked_seq = seq
        self.summary.ticks += 1

    async def _produce(self, producer: AIOKafkaProducer, batch: Sequence[RawEvent]) -> None:
        if not batch:
            return
        first = self._next_seq
        records = [
            (
                event_key(ev.data),
                ev.data,
                record_headers(ev.sse_id, ev.recv_ns, None, None, first + i),
                None,
            )
            for i, ev in enumerate(batch)
        ]

        def retried() -> None:
            self._failures.inc()
            self.summary.retries += 1

        await produce_all(
            producer, self.cfg, self.cfg.events_topic, records, self._stop,
            on_retry=retried, on_dropped=self._dropped.inc,
        )  # fmt: skip
        self._next_seq = first + len(batch)
        self._acked_seq = self._next_seq - 1
        self._produced.inc(len(batch))
        self.summary.produced += len(batch)
        self.summary.batches += 1
        last = next((e for e in reversed(batch) if e.sse_id is not None), None)
        if last is not None and last.sse_id is not None:
            # everything up to here is acknowledged: only now may a restart begin after it
            event_time = _event_time(last.data)
            self.store.save(last.sse_id, self.streams, event_time)
            self._saved.set_to_current_time()
            self._position = Position(last.sse_id, event_time, self._next_seq)
