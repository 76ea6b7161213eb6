"""A pipeline source over the enriched topic: what ``rcwatch run`` does with EventStreams,
done with the records the fetch workers produce.

It reads every partition (manual assignment, no consumer group: the one detect process
owns the topic) from the offsets of its checkpoint, and gives each event the position after
it, so the runner's checkpoint (position plus pattern state, written together) covers the
Kafka offsets too: a restart resumes exactly where the state was saved, and anything read
again is dropped by event id.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from detectors.event import RawEvent
from streams.scaleout.config import ScaleOutConfig
from streams.scaleout.records import format_position, raw_event

__all__ = ["KafkaSource"]

log = logging.getLogger(__name__)


class KafkaSource:
    def __init__(
        self, cfg: ScaleOutConfig, topic: str, offsets: Mapping[int, int], batch_max_events: int
    ) -> None:
        self.cfg = cfg
        self.topic = topic
        self.offsets = dict(offsets)  # partition -> next offset to read
        self.batch_max_events = batch_max_events
        self._stop = asyncio.Event()
        self._connected = False
        self.expired = 0  # records the broker removed before they were read (logged)

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
            tps = [TopicPartition(self.topic, p) for p in partitions]
            consumer.assign(tps)
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
                consumer.seek(tp, offset)
            self._connected = True
            while not self._stop.is_set():
                got = await consumer.getmany(timeout_ms=500, max_records=self.batch_max_events)
                batch: list[RawEvent] = []
                for tp, records in sorted(got.items(), key=lambda kv: kv[0].partition):
                    for r in records:
                        self.offsets[tp.partition] = r.offset + 1
                        position = format_position(self.topic, self.offsets)
                        batch.append(raw_event(r.value, r.headers, position))
                if batch:
                    yield batch
        finally:
            self._connected = False
            await consumer.stop()
