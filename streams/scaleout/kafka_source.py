"""A pipeline source over the enriched topic: what ``rcwatch run`` does with EventStreams,
done with the records the fetch workers produce.

It reads every partition (manual assignment, no consumer group: the one detect process owns
the topic) from the offsets of its checkpoint, merges them back into stream order
(``streams.scaleout.merge``), and gives the last event of each batch it passes on the
position after the batch: for each partition, the first event not yet passed on. So the
runner's checkpoint (position plus pattern state, written together) covers the Kafka
offsets too: a restart resumes exactly where the state was saved, and anything read again
is dropped by event id.

A partition holding more than its share of ``merge_max_buffered_events`` is paused at the
broker until the merge has passed half of them on: the partitions ahead wait there, not in
memory, while a slow one catches up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from prometheus_client import Counter, Gauge

from detectors.base import Finding
from detectors.event import RawEvent
from sinks.metrics import Metrics
from streams.logs import RateLimit
from streams.scaleout.config import ScaleOutConfig
from streams.scaleout.merge import SeqMerge
from streams.scaleout.records import (
    decode_fired,
    format_position,
    header_values,
    raw_event,
    record_seq,
)

__all__ = ["KafkaSource"]

log = logging.getLogger(__name__)


class KafkaSource:
    def __init__(
        self,
        cfg: ScaleOutConfig,
        topic: str,
        offsets: Mapping[int, int],
        batch_max_events: int,
        metrics: Metrics | None = None,
        *,
        marks: Mapping[int, int] | None = None,
        fired_offsets: Mapping[int, int] | None = None,
    ) -> None:
        """``offsets`` and ``marks``: the checkpoint's position (``records.parse_position``
        and ``parse_marks``); ``fired_offsets``: its offsets on the fired topic (partitioned
        windows)."""
        self.cfg = cfg
        self.topic = topic
        self.offsets = dict(offsets)  # partition -> next offset to read
        self.marks = dict(marks or {})
        self.batch_max_events = batch_max_events
        # partitioned windows: the window stages' findings, joined to their events by seq
        self.partitioned = cfg.windows == "partitioned"
        self.fired_offsets = dict(fired_offsets or {})
        # seq -> candidate index -> finding (a window partition that counted again after
        # a crash writes the same finding again: the first is kept)
        self._fired: dict[int, dict[int, Finding]] = {}
        self._frontier: dict[int, int] = {}  # fired partition -> every seq up to it is in
        # fired partition -> (offset, seq) of records whose event has not gone on yet
        self._fired_pending: dict[int, deque[tuple[int, int]]] = {}
        self._last_tick: dict[int, int] = {}  # fired partition -> offset of its last tick
        self._quiet = RateLimit(60.0)
        self.repeats = 0  # copies of held events passed over (partitioned windows)
        self._stop = asyncio.Event()
        self._connected = False
        self.expired = 0  # records the broker removed before they were read (logged)
        self.merge: SeqMerge[tuple[bytes, dict[str, bytes]]] | None = None
        self._counted = dict.fromkeys(("ordered", "late", "unsequenced", "forced"), 0)
        reg = (metrics or Metrics()).registry
        self._merged = Counter(
            "rcwatch_merge_events",
            "Events the detect stage's merge passed on: ordered (in stream order), late (a "
            "re-delivery or reordered record, at once), unsequenced (no number, at once), "
            "forced (held past merge_max_wait_seconds or merge_max_buffered_events)",
            ["how"],
            registry=reg,
        )
        for how in self._counted:
            self._merged.labels(how)
        self._joined_findings = Counter(
            "rcwatch_merge_pattern_findings",
            "Pattern findings of the window stages joined to their events (partitioned windows)",
            registry=reg,
        )
        self._held = Gauge(
            "rcwatch_merge_held_events",
            "Events the merge holds until every partition has caught up with them",
            registry=reg,
        )
        self._oldest = Gauge(
            "rcwatch_merge_oldest_wait_seconds",
            "How long the longest-held event has waited for the other partitions",
            registry=reg,
        )

    def stop(self) -> None:
        self._stop.set()

    def health(self) -> tuple[bool, dict[str, Any]]:
        return self._connected, {"source": "kafka", "topic": self.topic}

    async def batches(self) -> AsyncIterator[list[RawEvent]]:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.cfg.bootstrap_servers,
            enable_auto_commit=False,
            group_id=None,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            partitions = sorted(consumer.partitions_for_topic(self.topic) or ())
            if not partitions:
                await consumer.force_metadata_update()
                partitions = sorted(consumer.partitions_for_topic(self.topic) or ())
            wanted = set(range(self.cfg.events_partitions))
            if set(partitions) - wanted:
                log.warning(
                    "the enriched topic has more partitions than the events topic; only the "
                    "first events_partitions carry events",
                    extra={"fields": {"topic": self.topic, "partitions": len(partitions)}},
                )
            tps = [TopicPartition(self.topic, p) for p in partitions if p in wanted]
            starts = await consumer.beginning_offsets(tps) if tps else {}
            for tp in tps:
                offset = self.offsets.setdefault(tp.partition, 0)
                start = starts.get(tp, 0)
                if offset < start:  # the broker's retention removed what was never read
                    self.expired += start - offset
                    log.error(
                        "records expired before the detect stage read them",
                        extra={"fields": {"partition": tp.partition, "records": start - offset}},
                    )
                    offset = self.offsets[tp.partition] = start
            fired = []
            if self.partitioned:
                fired_topic = self.cfg.fired_topic
                fired = [TopicPartition(fired_topic, q) for q in range(self.cfg.window_partitions)]
                for tp in fired:
                    self.fired_offsets.setdefault(tp.partition, 0)
                    self._frontier[tp.partition] = -1
                    self._fired_pending[tp.partition] = deque()
                log.info(
                    "joining the window stages' findings",
                    extra={"fields": {"topic": fired_topic, "partitions": len(fired)}},
                )
            consumer.assign(tps + fired)
            for tp in tps:
                consumer.seek(tp, self.offsets[tp.partition])
            for tp in fired:
                consumer.seek(tp, self.fired_offsets[tp.partition])
            cfg = self.cfg
            merge = self.merge = SeqMerge[tuple[bytes, dict[str, bytes]]](
                {tp.partition: self.offsets[tp.partition] for tp in tps},
                max_wait_seconds=cfg.merge_max_wait_seconds,
                max_buffered=cfg.merge_max_buffered_events,
                marks=self.marks,
            )
            share = max(1, cfg.merge_max_buffered_events // max(1, len(tps)))
            by_partition = {tp.partition: tp for tp in tps}
            paused: set[int] = set()
            self._connected = True
            while not self._stop.is_set():
                got = await consumer.getmany(timeout_ms=500, max_records=self.batch_max_events)
                now = time.monotonic()
                batch: list[RawEvent] = []
                for tp, records in got.items():  # the findings first: they open the gate
                    if tp.topic != self.topic:
                        self._read_fired(tp.partition, records)
                for tp, records in sorted(got.items(), key=lambda kv: kv[0].partition):
                    if tp.topic != self.topic:
                        continue
                    for r in records:
                        self._read(merge, tp.partition, r, now, batch)
                upto = min(self._frontier.values()) if self.partitioned else None
                forced = merge.counts["forced"]
                batch.extend(self._joined(v, h) for (v, h), _ in merge.release(now, upto))
                if self.partitioned:
                    self._forget_fired(merge.released_seq)
                    late = upto is not None and upto < merge.released_seq
                    if late and merge.counts["forced"] > forced:
                        self._warn_windows_behind(merge.released_seq)
                self._count(merge)
                for p, tp in by_partition.items():  # backpressure: see the module docstring
                    if p not in paused and merge.held(p) > share:
                        consumer.pause(tp)
                        paused.add(p)
                    elif p in paused and merge.held(p) <= share // 2:
                        consumer.resume(tp)
                        paused.discard(p)
                self._held.set(merge.buffered)
                self._oldest.set(merge.oldest_wait(now))
                if batch:
                    # the position after the batch, on its last event: where the runner's
                    # checkpoint resumes (working it out per event cost more than merging)
                    positions, self.marks = merge.positions(), merge.marks()
                    self.offsets.update(positions)
                    also = (self.cfg.fired_topic, self._fired_positions()) if fired else None
                    position = format_position(self.topic, positions, self.marks, also)
                    batch[-1] = batch[-1]._replace(sse_id=position)
                    yield batch
        finally:
            self._connected = False
            await consumer.stop()

    def _count(self, merge: SeqMerge[tuple[bytes, dict[str, bytes]]]) -> None:
        """The merge's counts into the metric, once a poll (not a label lookup an event)."""
        for how, n in merge.counts.items():
            if n != self._counted[how]:
                self._merged.labels(how).inc(n - self._counted[how])
                self._counted[how] = n

    def _read(
        self,
        merge: SeqMerge[tuple[bytes, dict[str, bytes]]],
        partition: int,
        record: Any,
        now: float,
        batch: list[RawEvent],
    ) -> None:
        headers = header_values(record.headers or ())
        tick, seq = record_seq(headers)
        if tick and not record.value:
            merge.tick(partition, record.offset, seq)
            return
        if tick:  # a "tick" that carries a value is no tick: an event, never dropped
            seq = None
        value = record.value if isinstance(record.value, bytes) else b""
        released = merge.add(partition, record.offset, seq, (value, headers), now)
        if released is None:
            return
        if self.partitioned and seq is not None and merge.holds(partition, seq):
            # a copy (a worker's takeover) of an event still waiting for the windows: the
            # held one goes on with their findings; this one would go without them
            self.repeats += 1
            return
        batch.append(self._joined(value, headers))  # late or unsequenced: at once

    def _joined(self, value: bytes, headers: dict[str, bytes]) -> RawEvent:
        """The RawEvent of an enriched record, with the pattern findings the window stages
        fired on it when the windows are partitioned."""
        raw = raw_event(value, headers, None)
        if not self.partitioned:
            return raw
        _, seq = record_seq(headers)
        fired = self._fired.pop(seq, None) if seq is not None else None
        if not fired:
            return raw._replace(patterns=())
        self._joined_findings.inc(len(fired))
        # the order of the event's candidates, as one process lists them
        return raw._replace(patterns=tuple(fired[i] for i in sorted(fired)))

    def _warn_windows_behind(self, released: int) -> None:
        suppressed = self._quiet.allow("windows")
        if suppressed is not None:
            behind = sorted(q for q, f in self._frontier.items() if f < released)
            log.error(
                "events went on without the window stages' findings after "
                "merge_max_wait_seconds: are window stages running and keeping up? "
                "(rcwatch_merge_events_total{how=\"forced\"})",
                extra={"fields": {"window_partitions_behind": behind,
                                  "suppressed_since_last": suppressed}},
            )  # fmt: skip

    def _read_fired(self, partition: int, records: Sequence[Any]) -> None:
        for r in records:
            self.fired_offsets[partition] = r.offset + 1
            tick, seq = record_seq(header_values(r.headers or ()))
            if seq is None:
                continue
            if tick:
                self._frontier[partition] = max(self._frontier[partition], seq)
                self._last_tick[partition] = r.offset
                continue
            found = decode_fired(r.value) if isinstance(r.value, bytes) else None
            if found is None:
                log.error(
                    "a fired record did not decode; passed over",
                    extra={"fields": {"partition": partition, "offset": r.offset}},
                )
                continue
            known = self._fired.setdefault(seq, {})
            for index, finding in found:
                known.setdefault(index, finding)
            self._fired_pending[partition].append((r.offset, seq))
            self._frontier[partition] = max(self._frontier[partition], seq - 1)

    def _forget_fired(self, released: int) -> None:
        """Findings whose event has gone on (or was a repeat), and their records."""
        for pending in self._fired_pending.values():
            while pending and pending[0][1] <= released:
                pending.popleft()
        if self._fired and min(self._fired) <= released:
            for seq in [s for s in self._fired if s <= released]:
                del self._fired[seq]

    def _fired_positions(self) -> dict[int, int]:
        """fired partition -> where a restart reads from: its first record whose event has
        not gone on, and no later than its last tick (read again, it restores how far the
        partition had got, in order with the records after it)."""
        out = {}
        for q, next_offset in self.fired_offsets.items():
            pending = self._fired_pending.get(q)
            offset = pending[0][0] if pending else next_offset
            if q in self._last_tick:
                offset = min(offset, self._last_tick[q])
            out[q] = offset
        return out
