"""Fetch workers: the events topic in, the enriched topic out, N processes in one group.

Each worker decodes the events of its partitions, and for those a rule in scope reads the
text of, fetches what the edit added and removed (the single process's content fetcher,
with its politeness limits, per worker). Every event goes on to the same partition of the
enriched topic, in the order it came, with the text in a header and its ``seq`` kept; the
ingest's ticks go on in their place among them (the detect stage merges the partitions by
``seq``, and a tick says a partition holds nothing older). Offsets are committed only after
the broker acknowledged every record produced for them: a worker killed mid-batch has its
partitions re-read by another worker, which produces some events twice (the detect stage
drops them by event id), never none.

This is where scale-out pays: fetching is I/O that waits on the wikis' API (hundreds of ms
a call), and N workers wait in parallel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge

from detectors.event import MalformedEvent, RecentChange, decode_event
from detectors.windows import Observation, WindowStore
from sinks.metrics import Metrics
from streams.fetch.content import Content
from streams.scaleout.changelog import read_changelog
from streams.scaleout.config import ScaleOutConfig
from streams.scaleout.group import GroupCounters, commit_held, group_consumer
from streams.scaleout.patterns import PageShard, window_partition
from streams.scaleout.produce import Record, new_producer, produce_all
from streams.scaleout.produce import Stopped as _Stopped
from streams.scaleout.records import (
    encode_observations,
    header_int,
    header_text,
    header_values,
    record_headers,
    record_seq,
    tick_headers,
)
from streams.scaleout.rewind import rewind

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

__all__ = ["Evaluate", "FetchWorker", "FetchWorkerSummary"]

# (page memory of the partition or None, seq, change, content) -> (evaluated header, observations)
Evaluate = Callable[
    [PageShard | None, int | None, RecentChange, dict[str, Any] | None],
    tuple[bytes | None, list[Observation]],
]

log = logging.getLogger(__name__)

_TOO_LARGE = {"status": "failed", "added": None, "removed": None, "reason": "too_large"}


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
        evaluate: Evaluate | None = None,
        *,
        page_memory: Callable[[], WindowStore] = WindowStore,
    ) -> None:
        """``evaluate(shard, seq, change, content)``: the rules' answer for an event in
        scope, as the ``evaluated`` header (``records.encode_evaluation``) or None, and
        with partitioned windows (``shard``: the page memory of the event's partition, else
        None), the pattern observations it adds. Called in order within a partition."""
        self.cfg = cfg
        self.needs_content = needs_content
        self.fetch = fetch
        self.evaluate = evaluate
        self.partitioned = cfg.windows == "partitioned"
        self.page_memory = page_memory  # an empty page memory with the settings' limits
        self.shards: dict[int, PageShard] = {}  # events partition -> its page memory
        self.summary = FetchWorkerSummary()
        self._stop = asyncio.Event()
        reg = metrics.registry
        self._records = Counter(
            "rcwatch_worker_records", "Events passed on to the enriched topic", registry=reg
        )
        self._fetches = Counter(
            "rcwatch_worker_content_fetches", "Events whose text this worker fetched", registry=reg
        )
        self._m = GroupCounters(reg, "rcwatch_worker", "worker", "events topic", "page memory")
        self._rebalance_seconds = Gauge(
            "rcwatch_worker_rebalance_seconds",
            "How long this worker's last rebalance took, from giving its partitions up (or "
            "joining) to its new assignment; a takeover after a worker dies is the session "
            "timeout plus this",
            registry=reg,
        )
        self._unassigned_since: float | None = None
        self._too_large = Counter(
            "rcwatch_worker_text_too_large",
            "Events passed on without their text: it did not fit in a record",
            registry=reg,
        )
        self.assigned: set[int] = set()
        self.generation = 0  # rebalances seen (partitioned windows: a batch across one waits)
        self._observations = Counter(
            "rcwatch_worker_observations",
            "Pattern observations sent to the window partitions (partitioned windows)",
            registry=reg,
        )
        self._replayed = Counter(
            "rcwatch_worker_events_replayed",
            "Events re-read after a takeover whose page memory had gone past them: their "
            "observations went out the first time (partitioned windows)",
            registry=reg,
        )
        self._table_keys = Gauge(
            "rcwatch_worker_page_memory_keys",
            "Pages remembered, per events partition held (partitioned windows)",
            ["partition"],
            registry=reg,
        )

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> FetchWorkerSummary:
        from aiokafka.abc import ConsumerRebalanceListener

        worker = self

        class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            async def on_partitions_revoked(self, revoked: Any) -> None:
                worker.generation += 1
                worker._unassigned_since = time.monotonic()
                for tp in revoked:
                    worker.assigned.discard(tp.partition)
                    worker.shards.pop(tp.partition, None)  # its next owner restores it
                    for gauge in (worker._m.lag, worker._table_keys):
                        with contextlib.suppress(KeyError):
                            gauge.remove(str(tp.partition))
                worker._m.assigned.set(len(worker.assigned))

            async def on_partitions_assigned(self, assigned: Any) -> None:
                worker.generation += 1
                if worker._unassigned_since is not None:
                    worker._rebalance_seconds.set(time.monotonic() - worker._unassigned_since)
                worker.assigned = {tp.partition for tp in assigned}
                worker._m.assigned.set(len(worker.assigned))
                worker._m.rebalances.inc()
                worker.summary.rebalances += 1
                log.info(
                    "partitions assigned",
                    extra={"fields": {"partitions": sorted(worker.assigned)}},
                )

        cfg = self.cfg
        producer = new_producer(cfg)
        consumer = group_consumer(cfg, cfg.worker_group)
        await producer.start()
        try:
            self._unassigned_since = time.monotonic()  # joining the group: no partitions yet
            consumer.subscribe([cfg.events_topic], listener=Listener())
            await consumer.start()
            try:
                await self._loop(consumer, producer)
            finally:
                await consumer.stop()
        finally:
            await producer.stop()
        return self.summary

    async def _restore(self, partition: int) -> PageShard:
        """A partition's page memory, read back from its changelog."""
        shard = PageShard(self.page_memory())
        applied, _, seconds = await read_changelog(
            self.cfg, self.cfg.pages_changelog_topic, partition, shard.restore
        )
        shard.store.trim()  # past its horizon or cap: forgotten, tombstoned with the next batch
        self.shards[partition] = shard
        self._m.restored.inc(applied)
        self._m.restore_seconds.set(seconds)
        log.info(
            "page memory restored",
            extra={"fields": {"partition": partition, "records": applied,
                              "seconds": round(seconds, 3)}},
        )  # fmt: skip
        return shard

    async def _loop(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer) -> None:

        while not self._stop.is_set():
            generation = self.generation
            got = await consumer.getmany(timeout_ms=500, max_records=self.cfg.worker_batch_events)
            if not got:
                continue
            if self.partitioned and self.generation != generation:
                # a rebalance while fetching: the records may be from before it, and with
                # partitioned windows they need the page memory that went with them
                await rewind(consumer, got)
                continue
            commits = {}
            try:
                for tp, records in got.items():
                    await self._pass_on(producer, tp.partition, records)
                    commits[tp] = records[-1].offset + 1
            except _Stopped:
                return  # nothing committed for the batch in hand: its next owner re-reads it
            # only what the broker acknowledged, and only partitions still held (the repeats
            # a new owner passes on are dropped by event id in the detect stage)
            await commit_held(consumer, commits, self._m, "events")

    async def _pass_on(
        self, producer: AIOKafkaProducer, partition: int, records: Sequence[Any]
    ) -> None:
        heads = [header_values(r.headers or ()) for r in records]
        ticks = [record_seq(h) for h in heads]
        events = [r for r, (tick, _) in zip(records, ticks, strict=True) if not tick]
        seqs = [seq for tick, seq in ticks if not tick]
        fetched = await asyncio.gather(*(self._content(r.value) for r in events))
        # the rules, in a thread: a long text must not hold up the consumer's heartbeats
        shard = None
        if self.partitioned:
            # a partition's page memory is read back before its first record is worked out
            # (here, not in the rebalance listener: records can arrive while it runs)
            shard = self.shards.get(partition) or await self._restore(partition)
        answers = iter(await asyncio.to_thread(self._evaluate_all, shard, seqs, fetched))
        contents = iter(fetched)
        outgoing: list[Record] = []
        observed: list[Record] = []  # to the window partitions, in this partition's order
        observations = 0
        windows = range(self.cfg.window_partitions) if shard is not None else range(0)
        lane = str(partition).encode()
        for r, h, (tick, seq) in zip(records, heads, ticks, strict=True):
            if tick:
                if seq is not None:  # in its place: after the events before it
                    outgoing.append((None, b"", tick_headers(seq), partition))
                    observed += [(None, b"", tick_headers(seq, partition), q) for q in windows]
                continue
            _, content = next(contents)
            answer, obs = next(answers)
            if obs:
                observed += self._observation_records(obs, seq, lane)
                observations += len(obs)
            value = r.value if isinstance(r.value, bytes) else b""
            sse_id, recv_ns = header_text(h, "sse_id"), header_int(h, "recv_ns")
            headers = record_headers(sse_id, recv_ns, content, answer, seq)
            if len(value) + sum(len(v) for _, v in headers) > self.cfg.max_record_bytes:
                # the text does not fit in a record: the event goes on, its text marked
                self._too_large.inc()
                headers = record_headers(sse_id, recv_ns, _TOO_LARGE, None, seq)
            outgoing.append((r.key, value, headers, partition))
        produced: list[tuple[str, list[Record]]] = [(self.cfg.enriched_topic, outgoing)]
        if shard is not None:
            # the page memory's changelog only after the broker acknowledged the observations
            # of the events that changed it: a page whose changelog went past an event
            # proves that event's observations are out (see ``patterns``)
            changelog: list[Record] = [(k, v, [], partition) for k, v in shard.changelog()]
            produced += [(self.cfg.observations_topic, observed),
                         (self.cfg.pages_changelog_topic, changelog)]  # fmt: skip
            self._table_keys.labels(str(partition)).set(shard.store.size)
            self._observations.inc(observations)
            if shard.replayed:
                self._replayed.inc(shard.replayed)
                shard.replayed = 0
        for topic, batch in produced:
            await produce_all(
                producer, self.cfg, topic, batch, self._stop,
                on_retry=self._m.produce_failures.inc, on_dropped=self._m.dropped.inc,
            )  # fmt: skip
        self._records.inc(len(events))
        self.summary.records += len(events)

    def _observation_records(
        self, obs: list[Observation], seq: int | None, lane: bytes
    ) -> list[Record]:
        """One record per window partition an event's observations go to (one number per
        lane and partition: the window stage merges by it)."""
        by_partition: dict[int, list[Observation]] = {}
        for o in obs:
            by_partition.setdefault(window_partition(o, self.cfg.window_partitions), []).append(o)
        headers = [("lane", lane)] + ([("seq", str(seq).encode())] if seq is not None else [])
        return [(None, encode_observations(group), headers, q)
                for q, group in sorted(by_partition.items())]  # fmt: skip

    def _evaluate_all(
        self,
        shard: PageShard | None,
        seqs: Sequence[int | None],
        fetched: Sequence[tuple[RecentChange | None, dict[str, Any] | None]],
    ) -> list[tuple[bytes | None, list[Observation]]]:
        if self.evaluate is None:
            return [(None, [])] * len(fetched)
        evaluate = self.evaluate
        return [
            (None, []) if c is None else evaluate(shard, seq, c, content)
            for seq, (c, content) in zip(seqs, fetched, strict=True)
        ]

    async def _content(self, value: bytes) -> tuple[RecentChange | None, dict[str, Any] | None]:
        try:
            change = decode_event(value)
        except MalformedEvent:
            return None, None  # passed on as it is; the detect stage counts it
        if not self.needs_content(change):
            return change, None
        content: Content = await self.fetch(change)
        self._fetches.inc()
        self.summary.fetched += 1
        if content.status == "skipped":
            return change, None
        return change, {
            "status": content.status,
            "added": content.added,
            "removed": content.removed,
            "reason": content.reason,
        }
