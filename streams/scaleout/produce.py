"""Producing a batch so that nothing is lost and nothing loops forever.

A broker failure that may pass (a timeout, a leader election, a lost connection: aiokafka
marks such errors retriable) sends the whole batch again with backoff, counted; the caller
has not yet saved its position or committed, so a repeat is the worst case. An error that
will repeat whatever happens (a record over the broker's size limit) drops that record,
counted and logged with its key, and the rest go on: one hostile event cannot halt a stage.
A stop during the backoff ends the attempt (``Stopped``) without saving anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sinks.retry import Backoff
from streams.scaleout.config import ScaleOutConfig

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer

__all__ = ["Record", "Stopped", "new_producer", "produce_all"]

log = logging.getLogger(__name__)

# key, value (None: a changelog's deletion, a tombstone), headers, partition (None: the key's)
Record = tuple[bytes | None, bytes | None, list[tuple[str, bytes]], int | None]


class Stopped(Exception):
    """Asked to stop while waiting to retry: the batch was not (wholly) acknowledged."""


def new_producer(cfg: ScaleOutConfig) -> AIOKafkaProducer:
    """A producer as every stage makes one (not started): every record acknowledged by all
    replicas, the batching and limits of the settings."""
    from aiokafka import AIOKafkaProducer  # ~11 MB: only when a stage runs

    return AIOKafkaProducer(
        bootstrap_servers=cfg.bootstrap_servers,
        acks="all",
        enable_idempotence=False,  # not every broker supports it (Tansu does not)
        max_batch_size=cfg.producer_max_batch_bytes,
        linger_ms=cfg.producer_linger_ms,
        request_timeout_ms=int(cfg.produce_timeout_seconds * 1000),
        max_request_size=cfg.max_record_bytes + 64_000,  # a record plus its batch framing
    )


def _retriable(exc: BaseException) -> bool:
    from aiokafka.errors import KafkaError

    if isinstance(exc, (asyncio.TimeoutError, ConnectionError)):
        return True
    return isinstance(exc, KafkaError) and bool(getattr(exc, "retriable", False))


async def produce_all(
    producer: AIOKafkaProducer,
    cfg: ScaleOutConfig,
    topic: str,
    records: Sequence[Record],
    stop: asyncio.Event,
    *,
    on_retry: Callable[[], Any],
    on_dropped: Callable[[], Any],
) -> int:
    """Produce every record and wait for the broker's acknowledgement of all of them;
    returns how many were dropped for good."""
    backoff = Backoff(0.5, 30.0)
    dropped: set[int] = set()

    def drop(i: int, exc: BaseException) -> None:
        key, value, _, _ = records[i]
        dropped.add(i)
        on_dropped()
        log.error(
            "record refused for good; dropped",
            extra={"fields": {"topic": topic, "key": repr(key)[:200], "bytes": len(value or b""),
                              "error": type(exc).__name__}},
        )  # fmt: skip

    while True:
        try:
            sent: list[tuple[int, Any]] = []
            for i, (key, value, headers, partition) in enumerate(records):
                if i in dropped:
                    continue
                try:
                    future = await producer.send(
                        topic, value, key=key, headers=headers, partition=partition
                    )
                    sent.append((i, future))
                except Exception as exc:
                    if _retriable(exc):
                        raise
                    drop(i, exc)
            results = await asyncio.wait_for(
                asyncio.gather(*(f for _, f in sent), return_exceptions=True),
                timeout=cfg.produce_timeout_seconds,
            )
            again: BaseException | None = None
            for (i, _), result in zip(sent, results, strict=True):
                if isinstance(result, BaseException):
                    if _retriable(result):
                        again = result
                    else:
                        drop(i, result)
            if again is not None:
                raise again
            return len(dropped)
        except Exception as exc:
            if not _retriable(exc):
                raise
            on_retry()
            delay = backoff.next_delay()
            log.warning(
                "produce failed; sending the batch again",
                extra={"fields": {"topic": topic, "error": type(exc).__name__,
                                  "retry_in_s": round(delay, 1)}},
            )  # fmt: skip
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
            if stop.is_set():
                raise Stopped from exc
