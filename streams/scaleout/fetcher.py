"""Fetch workers: the events topic in, the enriched topic out, N processes in one group.

Each worker decodes the events of its partitions, and for those a rule in scope reads the
text of, fetches what the edit added and removed (the single process's content fetcher,
with its politeness limits, per worker). Every event goes on to the enriched topic in the
order it came (a page's edits stay in order: same key, same partition), with the text in a
header. Offsets are committed only after the broker acknowledged every record produced
for them: a worker killed mid-batch has its partitions re-read by another worker, which
produces some events twice (the detect stage drops them by event id), never none.

This is where scale-out pays: fetching is I/O that waits on the wikis' API (hundreds of ms
a call), and N workers wait in parallel.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge

from detectors.event import MalformedEvent, RecentChange, decode_event
from sinks.metrics import Metrics
from sinks.retry import Backoff
from streams.fetch.content import Content
from streams.scaleout.config import ScaleOutConfig
from streams.scaleout.records import record_headers

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

__all__ = ["FetchWorker", "FetchWorkerSummary"]

log = logging.getLogger(__name__)

Fetch = Callable[[RecentChange], "asyncio.Future[Content] | Any"]


@dataclass
class FetchWorkerSummary:
    records: int = 0
    fetched: int = 0
    rebalances: int = 0


class FetchWorker:
    """``needs_content(change)`` says whether to fetch; ``fetch(change)`` does it."""

    def __init__(
        self,
        cfg: ScaleOutConfig,
        needs_content: Callable[[RecentChange], bool],
        fetch: Callable[[RecentChange], Any],
        metrics: Metrics,
    ) -> None:
        self.cfg = cfg
        self.needs_content = needs_content
        self.fetch = fetch
        self.summary = FetchWorkerSummary()
        self._stop = asyncio.Event()
        reg = metrics.registry
        self._records = Counter(
            "rcwatch_worker_records", "Events passed on to the enriched topic", registry=reg
        )
        self._fetches = Counter(
            "rcwatch_worker_content_fetches", "Events whose text this worker fetched", registry=reg
        )
        self._rebalances = Counter(
            "rcwatch_worker_rebalances", "Partition assignments this worker received", registry=reg
        )
        self._assigned = Gauge(
            "rcwatch_worker_assigned_partitions", "Partitions this worker holds", registry=reg
        )
        self._lag = Gauge(
            "rcwatch_worker_lag_records",
            "Records not yet read, per partition of the events topic",
            ["partition"],
            registry=reg,
        )
        self.assigned: set[int] = set()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> FetchWorkerSummary:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
        from aiokafka.abc import ConsumerRebalanceListener

        worker = self

        class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            async def on_partitions_revoked(self, revoked: Any) -> None:
                worker.assigned -= {tp.partition for tp in revoked}
                worker._assigned.set(len(worker.assigned))

            async def on_partitions_assigned(self, assigned: Any) -> None:
                worker.assigned = {tp.partition for tp in assigned}
                worker._assigned.set(len(worker.assigned))
                worker._rebalances.inc()
                worker.summary.rebalances += 1
                log.info(
                    "partitions assigned",
                    extra={"fields": {"partitions": sorted(worker.assigned)}},
                )

        cfg = self.cfg
        producer = AIOKafkaProducer(
            bootstrap_servers=cfg.bootstrap_servers,
            acks="all",
            enable_idempotence=False,
            max_batch_size=cfg.producer_max_batch_bytes,
            linger_ms=cfg.producer_linger_ms,
            request_timeout_ms=int(cfg.produce_timeout_seconds * 1000),
        )
        consumer = AIOKafkaConsumer(
            bootstrap_servers=cfg.bootstrap_servers,
            group_id=cfg.worker_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(cfg.session_timeout_seconds * 1000),
            heartbeat_interval_ms=int(cfg.heartbeat_interval_seconds * 1000),
            max_poll_interval_ms=int(max(cfg.session_timeout_seconds, 300) * 1000),
        )
        await producer.start()
        try:
            consumer.subscribe([cfg.events_topic], listener=Listener())
            await consumer.start()
            try:
                await self._loop(consumer, producer)
            finally:
                await consumer.stop()
        finally:
            await producer.stop()
        return self.summary

    async def _loop(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer) -> None:
        while not self._stop.is_set():
            got = await consumer.getmany(timeout_ms=500, max_records=self.cfg.worker_batch_events)
            if not got:
                continue
            commits = {}
            for tp, records in got.items():
                await self._pass_on(producer, records)
                commits[tp] = records[-1].offset + 1
            await consumer.commit(commits)  # only what the broker acknowledged
            for tp, committed in commits.items():
                end = consumer.highwater(tp)
                if end is not None:
                    self._lag.labels(str(tp.partition)).set(max(0, end - committed))

    async def _pass_on(self, producer: AIOKafkaProducer, records: Sequence[Any]) -> None:
        contents = await asyncio.gather(*(self._content(r.value) for r in records))
        backoff = Backoff(0.5, 30.0)
        while True:
            try:
                futures = []
                for r, content in zip(records, contents, strict=True):
                    h = dict(r.headers)
                    sse_id = h["sse_id"].decode() if "sse_id" in h else None
                    try:
                        recv_ns = int(h.get("recv_ns", b"0"))
                    except ValueError:
                        recv_ns = 0
                    futures.append(
                        await producer.send(
                            self.cfg.enriched_topic,
                            r.value,
                            key=r.key,
                            headers=record_headers(sse_id, recv_ns, content),
                        )
                    )
                await asyncio.wait_for(
                    asyncio.gather(*futures), timeout=self.cfg.produce_timeout_seconds
                )
                break
            except Exception as exc:  # the broker: produce the same records again
                delay = backoff.next_delay()
                log.warning(
                    "produce failed; sending again",
                    extra={"fields": {"error": type(exc).__name__, "retry_in_s": round(delay, 1)}},
                )
                await asyncio.sleep(delay)
        self._records.inc(len(records))
        self.summary.records += len(records)

    async def _content(self, value: bytes) -> dict[str, Any] | None:
        try:
            change = decode_event(value)
        except MalformedEvent:
            return None  # passed on as it is; the detect stage counts it
        if not self.needs_content(change):
            return None
        content: Content = await self.fetch(change)
        self._fetches.inc()
        self.summary.fetched += 1
        if content.status == "skipped":
            return None
        return {
            "status": content.status,
            "added": content.added,
            "removed": content.removed,
            "reason": content.reason,
        }
