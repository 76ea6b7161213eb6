"""Reading partitions again from their committed offsets.

With partitioned windows a batch fetched across a rebalance is not worked out: its records
may come from before the rebalance, and the state they need (a partition's page memory or
windows) is read back from its changelog only for records from the committed offset on.
Its partitions still held are read again from there (the beginning when nothing was
committed, as ``auto_offset_reset="earliest"`` would), so nothing is skipped.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer

__all__ = ["rewind"]


async def rewind(consumer: AIOKafkaConsumer, partitions: Iterable[Any]) -> None:
    """Seek each of ``partitions`` still assigned back to its committed offset."""
    from aiokafka.errors import IllegalStateError

    for tp in partitions:
        if tp not in consumer.assignment():
            continue  # its new owner reads it from the committed offset
        with contextlib.suppress(IllegalStateError):  # taken meanwhile: the same
            committed = await consumer.committed(tp)
            if committed is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, committed)
