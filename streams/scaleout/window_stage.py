"""Window stages (``scaleout.windows: partitioned``): the observations topic in, the fired
topic out, N processes in one group.

Each holds some partitions of the observations topic. For each it first reads the
partition's group windows back from the windows changelog (``changelog``), then counts the
observations the workers send, the lanes merged in stream order (``patterns.WindowShard``),
and for every event whose observations filled a window it writes the findings to the same
partition of the fired topic, numbered with the event's ``seq``. After each batch it writes
a tick there (every event up to that number is counted), then the changed windows and the
lanes' marks to the changelog, and only then commits: a window stage killed mid-batch has
its partitions re-read by another, which counts nothing twice (``patterns``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge

from detectors.windows import WindowStore
from sinks.metrics import Metrics
from streams.scaleout.changelog import read_changelog
from streams.scaleout.config import ScaleOutConfig
from streams.scaleout.group import GroupCounters, commit_held, group_consumer
from streams.scaleout.patterns import WindowShard
from streams.scaleout.produce import Record, new_producer, produce_all
from streams.scaleout.produce import Stopped as _Stopped
from streams.scaleout.records import (
    decode_observations,
    encode_fired,
    header_values,
    record_seq,
    tick_headers,
)
from streams.scaleout.rewind import rewind

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

__all__ = ["WindowStage", "WindowStageSummary"]

log = logging.getLogger(__name__)


@dataclass
class WindowStageSummary:
    observations: int = 0
    fired: int = 0
    rebalances: int = 0


class WindowStage:
    def __init__(self, cfg: ScaleOutConfig, metrics: Metrics, max_keys: int = 100_000) -> None:
        self.cfg = cfg
        self.max_keys = max_keys
        self.summary = WindowStageSummary()
        self._stop = asyncio.Event()
        self.shards: dict[int, WindowShard] = {}
        self.assigned: set[int] = set()
        self.generation = 0  # rebalances seen: a batch that spans one is not counted
        self._ticked: dict[int, int] = {}  # partition -> last tick written to the fired topic
        reg = metrics.registry
        self._m = GroupCounters(
            reg, "rcwatch_windows", "window stage", "observations topic", "windows"
        )
        self._observations = Counter(
            "rcwatch_windows_observations", "Pattern observations counted", registry=reg
        )
        self._fired = Counter(
            "rcwatch_windows_fired", "Pattern findings the windows fired", registry=reg
        )
        self._malformed = Counter(
            "rcwatch_windows_malformed_records",
            "Observation records that did not decode (logged, passed over)",
            registry=reg,
        )
        self._repeats = Counter(
            "rcwatch_windows_repeats",
            "Observation records read again whose first copy was still held (counted once)",
            registry=reg,
        )
        self._keys = Gauge(
            "rcwatch_windows_table_keys",
            "Group windows kept, per observations partition held",
            ["partition"],
            registry=reg,
        )
        self._held = Gauge(
            "rcwatch_windows_held_records",
            "Observation records held until every lane has caught up with them",
            registry=reg,
        )

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> WindowStageSummary:
        from aiokafka.abc import ConsumerRebalanceListener

        stage = self
        cfg = self.cfg
        consumer = group_consumer(cfg, cfg.windows_group)

        class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            async def on_partitions_revoked(self, revoked: Any) -> None:
                stage.generation += 1
                for tp in revoked:
                    stage.assigned.discard(tp.partition)
                    stage.shards.pop(tp.partition, None)  # its next owner restores it
                    stage._ticked.pop(tp.partition, None)
                    for gauge in (stage._keys, stage._m.lag):
                        with contextlib.suppress(KeyError):
                            gauge.remove(str(tp.partition))
                stage._m.assigned.set(len(stage.assigned))

            async def on_partitions_assigned(self, assigned: Any) -> None:
                stage.generation += 1
                # each partition's windows are read back before its first record is counted
                # (in the loop: records can arrive while this listener runs)
                stage.assigned = {tp.partition for tp in assigned}
                stage._m.assigned.set(len(stage.assigned))
                stage._m.rebalances.inc()
                stage.summary.rebalances += 1
                log.info(
                    "window partitions assigned",
                    extra={"fields": {"partitions": sorted(stage.assigned)}},
                )

        producer = new_producer(cfg)
        await producer.start()
        try:
            consumer.subscribe([cfg.observations_topic], listener=Listener())
            await consumer.start()
            try:
                await self._loop(consumer, producer)
            finally:
                await consumer.stop()
        finally:
            await producer.stop()
        return self.summary

    async def _restore(self, partition: int, offset: int) -> WindowShard:
        """A partition's windows and marks, read back from its changelog; ``offset``: where
        its first record in hand was read (the committed offset)."""
        store = WindowStore(max_keys=self.max_keys)
        marks: dict[int, int] = {}
        applied, _, seconds = await read_changelog(
            self.cfg,
            self.cfg.windows_changelog_topic,
            partition,
            lambda k, v: WindowShard.restore_into(store, marks, k, v),
        )
        shard = WindowShard(
            store,
            self.cfg.events_partitions,
            offset,
            marks=marks,
            max_wait_seconds=self.cfg.merge_max_wait_seconds,
            max_buffered=self.cfg.merge_max_buffered_events,
        )
        store.trim()  # past the key cap: forgotten, and tombstoned with the next batch
        self.shards[partition] = shard
        self._keys.labels(str(partition)).set(store.size)
        self._m.restored.inc(applied)
        self._m.restore_seconds.set(seconds)
        log.info(
            "window partition restored",
            extra={"fields": {"partition": partition, "records": applied,
                              "seconds": round(seconds, 3), "offset": offset}},
        )  # fmt: skip
        return shard

    async def _loop(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer) -> None:
        from aiokafka import TopicPartition

        cfg = self.cfg
        while not self._stop.is_set():
            generation = self.generation
            got = await consumer.getmany(timeout_ms=500, max_records=cfg.worker_batch_events)
            if self.generation != generation:
                # a rebalance while fetching: the records may be from before it, and their
                # windows are read back for records from the committed offset on
                await rewind(consumer, got)
                continue
            now = time.monotonic()
            fired: dict[int, list[Record]] = {}
            counted = {p: s.counted for p, s in self.shards.items()}
            for tp, records in got.items():
                p = tp.partition
                shard = self.shards.get(p) or await self._restore(p, records[0].offset)
                fired[p] = self._count(p, shard, records, now)
            # every shard, records or not: a held record may go on (ticks, the wait bound)
            ticks: dict[int, int] = {}
            for p, shard in self.shards.items():
                out = fired.setdefault(p, [])
                out += self._fired_records(p, shard.release(now))
                frontier = shard.frontier()
                if frontier > self._ticked.get(p, -1):
                    out.append((None, b"", tick_headers(frontier), p))
                    ticks[p] = frontier
            self._held.set(sum(s.merge.buffered for s in self.shards.values()))
            # counted on arrival or on release, this poll
            done = sum(s.counted - counted.get(p, 0) for p, s in self.shards.items())
            self._observations.inc(done)
            self.summary.observations += done
            batch = [r for p in sorted(fired) for r in fired[p]]
            changelog: list[Record] = [
                (k, v, [], p) for p, s in sorted(self.shards.items()) for k, v in s.changelog()
            ]
            try:
                for topic, records_out in ((cfg.fired_topic, batch),
                                           (cfg.windows_changelog_topic, changelog)):  # fmt: skip
                    if records_out:
                        await produce_all(
                            producer, cfg, topic, records_out, self._stop,
                            on_retry=self._m.produce_failures.inc, on_dropped=self._m.dropped.inc,
                        )  # fmt: skip
            except _Stopped:
                return  # nothing committed: the partitions' next owner re-reads the batch
            self._ticked.update(ticks)
            if not got:
                continue
            if self.generation != generation:  # a rebalance meanwhile: read them again
                self._m.commit_failures.inc()
                await rewind(consumer, got)
                continue
            offsets = {
                TopicPartition(cfg.observations_topic, p): s.position()
                for p, s in self.shards.items()
            }
            for tp in await commit_held(consumer, offsets, self._m, "observations") or ():
                held_shard = self.shards.get(tp.partition)
                if held_shard is not None:
                    self._keys.labels(str(tp.partition)).set(held_shard.store.size)

    def _count(
        self, partition: int, shard: WindowShard, records: Sequence[Any], now: float
    ) -> list[Record]:
        out: list[Record] = []
        repeats_before = shard.repeats
        for r in records:
            h = header_values(r.headers or ())
            tick, seq = record_seq(h)
            lane_raw = h.get("lane", b"")
            lane = int(lane_raw) if lane_raw.isdigit() and len(lane_raw) < 10 else -1
            if tick and not r.value:
                shard.tick(lane, r.offset, seq)
                continue
            obs = decode_observations(r.value) if isinstance(r.value, bytes) else None
            if obs is None:
                self._malformed.inc()
                log.error(
                    "an observation record did not decode; passed over",
                    extra={"fields": {"partition": r.partition, "offset": r.offset}},
                )
                shard.tick(lane, r.offset, None)  # its offset is read, nothing else
                continue
            released = shard.add(lane, r.offset, None if tick else seq, obs, now)
            out += self._fired_records(partition, released)
        self._repeats.inc(shard.repeats - repeats_before)
        return out

    def _fired_records(
        self, partition: int, fired: list[tuple[int | None, list[tuple[int, Any]]]]
    ) -> list[Record]:
        out: list[Record] = []
        for seq, findings in fired:
            self._fired.inc(len(findings))
            self.summary.fired += len(findings)
            headers = [("seq", str(seq).encode())] if seq is not None else []
            out.append((None, encode_fired(findings), headers, partition))
        return out
