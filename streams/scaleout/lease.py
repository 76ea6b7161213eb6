"""One active ingest (or detect stage) per stream, on any host: a lease held through the
broker.

Every ingest of a stream joins one consumer group (``ingest_group``) on a one-partition
topic (``ingest_positions_topic``); every detect stage another (``detect_group``, on
``detect_checkpoints_topic``). The group gives that partition to one member: that process
is active; the others stand by, connected to nothing but the broker. When the active one
dies (kill -9, a lost host), the group notices after ``session_timeout_seconds`` and gives
the partition to a standby, which takes over. (The detect stage's checkpoints on the
broker: ``streams.scaleout.checkpoints``.)

The same topic carries the active ingest's resume position: after the broker has
acknowledged a batch, the ingest writes its position there as well as in its state
directory (``publish_position``). A standby on another host has no state directory of the
active one, so on taking over it resumes from the last position on the broker
(``last_position``), which is never past an acknowledged event: events may be produced
twice around a takeover (the detect stage drops them by id), never skipped.

An active ingest that loses the lease without dying (it stalled past the session timeout:
a long pause, a network partition) learns it at its next heartbeat and stops after the
batch in hand; the process ends (status 1) so that its supervisor starts it again, as a
standby. Until then the two may overlap by that batch, which the detect stage drops by id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge

from streams.scaleout.config import ScaleOutConfig

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

__all__ = ["Lease", "Position", "last_position", "publish_position", "read_tail"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Position:
    sse_id: str
    event_time: str | None
    next_seq: int = 0  # the number the next event gets: a successor numbers above it


class Lease:
    """``held`` is set while this process holds the lease of ``group`` on ``topic`` (one
    partition); ``on_lost`` is called when a held lease is taken away."""

    def __init__(
        self,
        cfg: ScaleOutConfig,
        group: str,
        topic: str,
        on_lost: Callable[[], Any] | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.cfg = cfg
        self.group = group
        self.topic = topic
        self.on_lost = on_lost
        registry = registry or CollectorRegistry()
        self._assignments = Counter(
            "rcwatch_lease_assignments",
            "Group assignments this process received: one at each join or departure of a "
            "process of its role and stream, whether it holds the lease or not",
            registry=registry,
        )
        self._held = Gauge(
            "rcwatch_lease_held",
            "1 while this process holds its role's lease (active), 0 while it stands by",
            registry=registry,
        )
        self.held = asyncio.Event()
        self.since_ns = 0  # when this process took the lease (told at every rejoin)
        self.lost = False
        self._consumer: AIOKafkaConsumer | None = None
        self._polling: asyncio.Task[None] | None = None

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.abc import ConsumerRebalanceListener

        lease = self

        class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            async def on_partitions_revoked(self, revoked: Any) -> None:
                pass  # every member gives up everything at a rebalance: wait for the outcome

            async def on_partitions_assigned(self, assigned: Any) -> None:
                lease._assignments.inc()
                if assigned and lease._consumer is not None:
                    # holding is what counts, not reading: the checkpoint copies are
                    # megabytes, read only at a takeover (``read_tail``)
                    lease._consumer.pause(*assigned)
                if any(tp.partition == 0 for tp in assigned):
                    if not lease.lost:
                        if not lease.held.is_set():
                            lease.since_ns = time.time_ns()
                        lease.held.set()
                        lease._held.set(1)
                elif lease.held.is_set():
                    lease._lose()

        cfg = self.cfg
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=cfg.bootstrap_servers,
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            session_timeout_ms=int(cfg.session_timeout_seconds * 1000),
            heartbeat_interval_ms=int(cfg.heartbeat_interval_seconds * 1000),
            partition_assignment_strategy=(_sticky_assignor(self),),
        )
        self._consumer.subscribe([self.topic], listener=Listener())
        await self._consumer.start()
        self._polling = asyncio.create_task(self._poll())

    def _lose(self) -> None:
        self.held.clear()
        self._held.set(0)
        self.lost = True
        log.error(
            "another process took the lease of this role; this one stops after the batch in "
            "hand (its supervisor starts it again as a standby)",
            extra={"fields": {"group": self.group}},
        )
        if self.on_lost is not None:
            self.on_lost()

    async def _poll(self) -> None:
        """The group needs this member to poll (max_poll_interval); its partition is
        paused, so the poll reads nothing."""
        assert self._consumer is not None
        while True:
            try:
                await self._consumer.getmany(timeout_ms=1000, max_records=100)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the consumer reconnects; a lost lease is reported
                log.warning("lease poll failed", extra={"fields": {"error": type(exc).__name__}})
                await asyncio.sleep(1.0)

    async def stop(self) -> None:
        if self._polling is not None:
            self._polling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._polling
        self._held.set(0)
        if self._consumer is not None:
            await self._consumer.stop()  # leaves the group: a standby takes over


def _owner(claims: dict[str, bytes]) -> str:
    """Who gets the lease, from each member's claim (``held:<since, ns>`` or nothing): the
    holder that took it last, else the first member by id. Two claim it only when one
    stalled past the session timeout, lost it, and rejoined before it noticed: the one that
    took it since is the live holder; the stale one, left out, stops."""
    since: dict[str, int] = {}
    for member, claim in claims.items():
        tag, _, ns = (claim or b"").partition(b":")
        if tag == b"held" and ns.isdigit() and len(ns) <= 20:
            since[member] = int(ns)
    if since:
        return max(sorted(since), key=lambda m: since[m])
    return sorted(claims)[0]


def _sticky_assignor(lease: Lease) -> type:
    """An assignor that leaves the lease where it is: a standby joining the group (every
    member rejoins at a rebalance) must not take it from a live holder. Each member says in
    its join whether it holds the lease and since when (``_owner``)."""
    from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
    from aiokafka.coordinator.protocol import (
        ConsumerProtocolMemberAssignment,
        ConsumerProtocolMemberMetadata,
    )

    class StickyLease(AbstractPartitionAssignor):  # type: ignore[misc]
        name = "rcwatch-lease"
        version = 0

        @classmethod
        def metadata(cls, topics: Any) -> Any:
            held = b"held:%d" % lease.since_ns if lease.held.is_set() else b""
            return ConsumerProtocolMemberMetadata(cls.version, sorted(topics), held)

        @classmethod
        def assign(cls, cluster: Any, members: Any) -> dict[str, Any]:
            ids = sorted(members)
            owner = _owner({m: members[m].user_data for m in ids})
            topic = lease.topic
            return {
                m: ConsumerProtocolMemberAssignment(
                    cls.version, [(topic, [0])] if m == owner else [], b""
                )
                for m in ids
            }

        @classmethod
        def on_assignment(cls, assignment: Any) -> None:
            pass

    return StickyLease


async def read_tail(
    cfg: ScaleOutConfig, topic: str, look_back: int, take: Callable[[Any], None]
) -> None:
    """``take`` each of the last ``look_back`` records of partition 0 of ``topic`` (a
    lease's topic), oldest first; none is kept here."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=cfg.bootstrap_servers, enable_auto_commit=False, group_id=None,
        max_partition_fetch_bytes=cfg.max_record_bytes + 64_000,
    )  # fmt: skip
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        start = max((await consumer.beginning_offsets([tp]))[tp], end - look_back)
        consumer.seek(tp, start)
        offset = start
        while offset < end:
            records = (await consumer.getmany(tp, timeout_ms=2000)).get(tp, [])
            if not records:
                break  # the broker has nothing more to give now
            for r in records:
                take(r)
            offset = records[-1].offset + 1
    finally:
        await consumer.stop()


async def last_position(
    cfg: ScaleOutConfig, streams: str, look_back: int = 1000
) -> Position | None:
    """The newest position an active ingest of ``streams`` published, or None."""
    found: list[Position] = []

    def take(r: Any) -> None:
        if r.key == streams.encode() and (p := _position(r.value)) is not None:
            found[:] = [p]

    await read_tail(cfg, cfg.ingest_positions_topic, look_back, take)
    return found[0] if found else None


def _position(value: object) -> Position | None:
    try:
        d = orjson.loads(value) if isinstance(value, bytes) else None
    except orjson.JSONDecodeError:
        return None
    if not isinstance(d, dict) or not isinstance(d.get("sse_id"), str):
        return None
    t, n = d.get("event_time"), d.get("next_seq")
    seq = n if type(n) is int and 0 <= n < 2**63 else 0
    return Position(d["sse_id"], t if isinstance(t, str) else None, seq)


async def publish_position(
    producer: AIOKafkaProducer, cfg: ScaleOutConfig, streams: str, position: Position
) -> None:
    value = orjson.dumps(
        {"sse_id": position.sse_id, "event_time": position.event_time,
         "next_seq": position.next_seq}
    )  # fmt: skip
    await producer.send_and_wait(
        cfg.ingest_positions_topic, value, key=streams.encode(), partition=0
    )
