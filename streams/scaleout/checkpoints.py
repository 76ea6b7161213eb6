"""The detect stage's checkpoint, copied to the broker for a standby on another host.

The active detect stage writes its checkpoint (the enriched topic's position, with the
pattern state as of that position: windows, page memory, throttle, recent event ids) to
its state directory as ``rcwatch run`` does. Every ``detect_publish_interval_seconds`` it
also copies the newest one to ``detect_checkpoints_topic`` (one partition, kept
``detect_checkpoints_retention_hours``). A standby that takes the lease over resumes from
the newest complete copy there, unless its own state directory holds a newer checkpoint.

A copy is a head record (JSON: id, position, streams, event time, how many parts) and the
state in parts of at most half a record each (``max_record_bytes``), all headed ``cp`` with
the copy's id and ``part`` with the part's number. A reader takes the newest head whose
parts are all there; a copy cut short by a crash is passed over. What the standby
re-processes is what came after that copy, up to ``detect_publish_interval_seconds`` of
events: the alerts it raises again carry the same delivery ids (``<id>~<count>``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge

from streams.scaleout.config import ScaleOutConfig
from streams.scaleout.produce import Record, Stopped, produce_all
from streams.source.checkpoint import CheckpointError, CheckpointStore

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer

__all__ = ["BrokerCheckpoint", "CheckpointCopier", "adopt_newer", "latest_checkpoint"]

log = logging.getLogger(__name__)

_KEY = b"detect"


@dataclass(frozen=True)
class BrokerCheckpoint:
    position: str
    streams: str
    event_time: str | None
    state: bytes


def checkpoint_records(cfg: ScaleOutConfig, cp: BrokerCheckpoint) -> list[Record]:
    copy = uuid.uuid4().hex.encode()
    size = max(1, cfg.max_record_bytes // 2)
    parts = [cp.state[i : i + size] for i in range(0, len(cp.state), size)]
    head = orjson.dumps(
        {"position": cp.position, "streams": cp.streams, "event_time": cp.event_time,
         "parts": len(parts)}
    )  # fmt: skip
    records: list[Record] = [(_KEY, head, [("cp", copy), ("part", b"0")], 0)]
    for i, part in enumerate(parts, 1):
        records.append((_KEY, part, [("cp", copy), ("part", str(i).encode())], 0))
    return records


async def latest_checkpoint(cfg: ScaleOutConfig, look_back: int = 2000) -> BrokerCheckpoint | None:
    """The newest complete copy on the broker, or None."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=cfg.bootstrap_servers, enable_auto_commit=False, group_id=None,
        max_partition_fetch_bytes=cfg.max_record_bytes + 64_000,
    )  # fmt: skip
    await consumer.start()
    try:
        tp = TopicPartition(cfg.detect_checkpoints_topic, 0)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        start = max((await consumer.beginning_offsets([tp]))[tp], end - look_back)
        consumer.seek(tp, start)
        heads: list[tuple[bytes, dict[str, Any]]] = []
        parts: dict[bytes, dict[int, bytes]] = {}
        offset = start
        while offset < end:
            records = (await consumer.getmany(tp, timeout_ms=2000)).get(tp, [])
            if not records:
                break
            for r in records:
                offset = r.offset + 1
                _take(r, heads, parts)
    finally:
        await consumer.stop()
    for copy, head in reversed(heads):
        got = parts.get(copy, {})
        n = head["parts"]
        if all(i in got for i in range(1, n + 1)):
            return BrokerCheckpoint(
                head["position"], head["streams"], head["event_time"],
                b"".join(got[i] for i in range(1, n + 1)),
            )  # fmt: skip
    return None


def _take(
    record: Any, heads: list[tuple[bytes, dict[str, Any]]], parts: dict[bytes, dict[int, bytes]]
) -> None:
    h = {k: v for k, v in record.headers or () if isinstance(k, str) and isinstance(v, bytes)}
    copy, part = h.get("cp"), h.get("part", b"")
    if copy is None or not part.isdigit() or not isinstance(record.value, bytes):
        return  # not a copy's record: passed over
    if part != b"0":
        parts.setdefault(copy, {})[int(part)] = record.value
        return
    with contextlib.suppress(orjson.JSONDecodeError):
        head = orjson.loads(record.value)
        ok = (
            isinstance(head, dict) and isinstance(head.get("position"), str)
            and isinstance(head.get("streams"), str) and type(head.get("parts")) is int
            and isinstance(head.get("event_time"), str | None)
        )  # fmt: skip
        if ok:
            heads.append((copy, head))


def adopt_newer(store: CheckpointStore, copy: BrokerCheckpoint) -> bool:
    """Write ``copy`` as the state directory's checkpoint unless the directory holds one as
    new (this host was the last active one); True when adopted."""
    try:
        local = store.load()
    except CheckpointError:
        local = None  # set aside and counted when the stage loads it
    if local is not None and local.streams == copy.streams:
        if local.last_event_id == copy.position:
            return False
        if local.event_time and copy.event_time and local.event_time >= copy.event_time:
            return False
    store.save(copy.position, copy.streams, copy.event_time, copy.state)
    return True


class CheckpointCopier:
    """Copies the state directory's newest checkpoint to the broker every interval."""

    def __init__(
        self, cfg: ScaleOutConfig, store: CheckpointStore, registry: CollectorRegistry
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.copied: str | None = None  # the position of the last copy
        self._stop = asyncio.Event()
        self._copies = Counter(
            "rcwatch_detect_checkpoint_copies",
            "Checkpoints copied to the broker for a standby detect stage",
            registry=registry,
        )
        self._failures = Counter(
            "rcwatch_detect_checkpoint_copy_failures",
            "Checkpoint copies the broker did not take (a standby resumes from an older one)",
            registry=registry,
        )
        self._copied_at = Gauge(
            "rcwatch_detect_checkpoint_copied_timestamp_seconds",
            "When the newest checkpoint copy reached the broker",
            registry=registry,
        )

    def stop(self) -> None:
        self._stop.set()

    async def run(self, producer: AIOKafkaProducer) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.cfg.detect_publish_interval_seconds)
            await self.copy(producer)

    async def copy(self, producer: AIOKafkaProducer) -> None:
        try:
            cp = self.store.load()
            if cp is None or cp.last_event_id == self.copied:
                return
            state = self.store.load_state(cp)
            if state is None and cp.state_file is not None:
                return  # replaced meanwhile: the next round copies the newer one
        except CheckpointError:
            return  # the stage reports an unreadable checkpoint itself
        copy = BrokerCheckpoint(cp.last_event_id, cp.streams, cp.event_time, state or b"")
        records = checkpoint_records(self.cfg, copy)
        try:
            dropped = await produce_all(
                producer, self.cfg, self.cfg.detect_checkpoints_topic, records, self._stop,
                on_retry=lambda: None, on_dropped=lambda: None,
            )  # fmt: skip
        except Stopped:
            return  # the final copy, cut short by a stop: the next active one reads the last
        except Exception as exc:
            dropped = len(records)
            log.warning(
                "checkpoint not copied to the broker; a standby would resume from an older one",
                extra={"fields": {"error": type(exc).__name__}},
            )
        if dropped:
            self._failures.inc()
            return
        self.copied = cp.last_event_id
        self._copies.inc()
        self._copied_at.set_to_current_time()
