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
from streams.scaleout.lease import read_tail
from streams.scaleout.produce import Record, Stopped, produce_all
from streams.source.checkpoint import CheckpointError, CheckpointStore

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer

__all__ = ["BrokerCheckpoint", "CheckpointCopier", "latest_checkpoint"]

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
    parts = [cp.state[i : i + size] for i in range(0, len(cp.state), size)] or [b""]
    head = orjson.dumps(
        {"position": cp.position, "streams": cp.streams, "event_time": cp.event_time,
         "parts": len(parts)}
    )  # fmt: skip
    records: list[Record] = [(_KEY, head, [("cp", copy), ("part", b"0")], 0)]
    for i, part in enumerate(parts, 1):
        records.append((_KEY, part, [("cp", copy), ("part", str(i).encode())], 0))
    return records


_MAX_PARTS = 1000  # 500 MB of state at the default record size


class _Reader:
    """The newest complete copy among records read oldest first, holding no more than the
    copy being read and the newest complete one (parts of other copies are passed over)."""

    def __init__(self) -> None:
        self.best: BrokerCheckpoint | None = None
        self.heads = 0
        self._copy: bytes | None = None
        self._head: dict[str, Any] = {}
        self._parts: list[bytes] = []

    def take(self, record: Any) -> None:
        h = {k: v for k, v in record.headers or () if isinstance(k, str) and isinstance(v, bytes)}
        copy, part, value = h.get("cp"), h.get("part", b""), record.value
        if copy is None or not part.isdigit() or len(part) > 6 or not isinstance(value, bytes):
            return  # not a copy's record: passed over
        if part == b"0":
            head = _head(value)
            if head is not None:
                self.heads += 1
                self._copy, self._head, self._parts = copy, head, []
            return
        # the parts of a copy follow its head, in order (one producer wrote them)
        if copy != self._copy or int(part) != len(self._parts) + 1:
            return
        self._parts.append(value)
        if len(self._parts) == self._head["parts"]:
            head, state = self._head, b"".join(self._parts)
            self.best = BrokerCheckpoint(
                head["position"], head["streams"], head["event_time"], state
            )
            self._copy, self._parts = None, []


def _head(value: bytes) -> dict[str, Any] | None:
    try:
        head = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    ok = (
        isinstance(head, dict) and isinstance(head.get("position"), str)
        and isinstance(head.get("streams"), str)
        and isinstance(head.get("event_time"), str | None)
        and type(head.get("parts")) is int and 1 <= head["parts"] <= _MAX_PARTS
    )  # fmt: skip
    return head if ok else None


async def latest_checkpoint(cfg: ScaleOutConfig, look_back: int = 2000) -> BrokerCheckpoint | None:
    """The newest complete copy among the last ``look_back`` records, or None (then the
    standby starts from its own state directory)."""
    reader = _Reader()
    await read_tail(cfg, cfg.detect_checkpoints_topic, look_back, reader.take)
    if reader.best is None and reader.heads:
        log.warning(
            "no complete checkpoint copy on the broker; resuming from the state directory",
            extra={"fields": {"copies_seen": reader.heads}},
        )
    return reader.best


class CheckpointCopier:
    """Copies the state directory's newest checkpoint to the broker every interval."""

    def __init__(
        self, cfg: ScaleOutConfig, store: CheckpointStore, registry: CollectorRegistry
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.copied: str | None = None  # the position of the last copy
        self.fenced = False
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

    def fence(self) -> None:
        """Copy nothing more: another detect stage holds the lease now."""
        self.fenced = True

    async def run(self, producer: AIOKafkaProducer) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.cfg.detect_publish_interval_seconds)
            await self.copy(producer)

    async def copy(self, producer: AIOKafkaProducer) -> None:
        if self.fenced:
            return
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
