"""Reading a changelog partition back (partitioned windows' state; see ``patterns``).

A process given a partition (a worker an events partition, a window stage an observations
partition) first reads that partition of its changelog topic from the start to the end it
had when the reading began, and applies every record in order: the newest value of each key
is the state. The topics are compacted (``cleanup.policy=compact``), so on Kafka the read
is about one record per key; a broker that does not compact (the Tansu test broker) keeps
every record and the read grows with the run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from streams.scaleout.config import ScaleOutConfig

__all__ = ["read_changelog"]

log = logging.getLogger(__name__)


async def read_changelog(
    cfg: ScaleOutConfig,
    topic: str,
    partition: int,
    apply: Callable[[bytes, bytes | None], bool],
) -> tuple[int, int, float]:
    """Apply every record of ``topic``'s ``partition`` up to its current end; returns
    (records applied, records refused by ``apply``, seconds taken). A record ``apply``
    refuses (one this version did not write) is logged and passed over."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    started = time.monotonic()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=cfg.bootstrap_servers,
        enable_auto_commit=False,
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    applied = refused = 0
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        await consumer.seek_to_beginning(tp)
        while await consumer.position(tp) < end:
            got = await consumer.getmany(tp, timeout_ms=500, max_records=5000)
            for record in got.get(tp, ()):
                if record.offset >= end:
                    break
                key = record.key if isinstance(record.key, bytes) else b""
                value = record.value if isinstance(record.value, bytes) else None
                if apply(key, value):
                    applied += 1
                else:
                    refused += 1
    finally:
        await consumer.stop()
    if refused:
        log.error(
            "changelog records this version did not write were passed over",
            extra={"fields": {"topic": topic, "partition": partition, "records": refused}},
        )
    return applied, refused, time.monotonic() - started
