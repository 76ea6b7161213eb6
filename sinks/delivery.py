"""Reliable delivery to a remote target: retries, an on-disk spool, a dead-letter file.

A ``Transport`` speaks to one target (Redis, Kafka, an HTTP endpoint) and does nothing else:
it sends a batch or raises ``TransportError``. ``SpooledSink`` wraps it with the delivery
guarantees every remote sink shares:

- ``send`` accepts a batch when the target took it, or when it is written to the sink's
  spool because the target is failing (or older alerts are still spooled: order is kept).
  It raises ``SinkError`` only when the spool is full, and then the runner waits and
  retries: the stream slows down, nothing is dropped.
- A background task drains the spool in order with exponential backoff (honouring a
  target's ``Retry-After``). A batch that failed ``max_attempts`` times, or that the target
  rejected outright (a 4xx that will not heal), goes to ``dead-letter.ndjson`` with the
  reason, and is counted; ``rcwatch sinks redrive`` puts dead letters back.
- Accepted delivery ids are written to a ledger, so a restart that reprocesses events does
  not send them again; ``flush`` (called before every checkpoint) makes spool and ledger
  durable, so the checkpoint never passes an alert that is neither delivered nor spooled.

The spool holds exactly the payload the sink would send: redacted evidence, unless the sink
is private and opted in to full evidence (then the spool file is the only place on disk
where that text lives, mode 0600).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from sinks.alert import Alert
from sinks.base import Sink, SinkError
from sinks.dedup import Ledger
from sinks.metrics import Metrics
from sinks.retry import Backoff
from sinks.spool import Spool, SpoolFull

__all__ = [
    "DeliveryConfig",
    "SpooledSink",
    "Transport",
    "TransportError",
    "queue_redrive",
    "read_dead_letters",
    "sink_state_dir",
]


def sink_state_dir(state_dir: Path, name: str) -> Path:
    """Where a remote sink keeps its spool, ledger and dead letters."""
    return state_dir / "sinks" / name


def queue_redrive(sink_dir: Path) -> int:
    """Queue a sink's dead letters for redelivery at its next start; returns how many."""
    path = sink_dir / "dead-letter.ndjson"
    n = len(read_dead_letters(path))
    if n:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        os.replace(path, sink_dir / f"redrive-{stamp}.ndjson")
    return n


log = logging.getLogger(__name__)


class TransportError(Exception):
    """A delivery attempt failed. The message must never carry a secret or alert text."""

    def __init__(
        self, message: str, *, retryable: bool = True, retry_after_seconds: float | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_seconds = retry_after_seconds


class Transport(abc.ABC):
    """One remote target. ``send`` delivers the whole batch or raises ``TransportError``."""

    # the most alerts one ``send`` may carry (per-alert APIs such as PagerDuty still take
    # batches; they loop inside and must be idempotent per alert)
    batch_max_alerts: int = 100

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Prepare clients. Must not fail when the target is down (connect lazily)."""

    @abc.abstractmethod
    async def send(self, payloads: Sequence[dict[str, Any]]) -> None:
        """Deliver alert payloads (``Alert.to_dict`` forms) or raise ``TransportError``."""

    async def reset(self) -> None:  # noqa: B027 - optional hook
        """Drop connections after an attempt timed out mid-way (the next one reconnects)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients."""

    def describe(self) -> str:
        """Where it delivers, safe to log (no secrets, no URL paths that carry tokens)."""
        return type(self).__name__


@dataclass(frozen=True)
class DeliveryConfig:
    """Retries, spool and dead letters of one remote sink."""

    # a spooled batch is tried this many times, then dead-lettered
    max_attempts: int = field(default=12, metadata={"min": 1})
    backoff_initial_seconds: float = field(default=1.0, metadata={"gt": 0})
    backoff_max_seconds: float = field(default=300.0, metadata={"gt": 0})
    # when the spool reaches either cap the stream waits (backpressure), nothing is dropped
    spool_max_bytes: int = field(default=256 << 20, metadata={"min": 4096})
    spool_max_entries: int = field(default=1_000_000, metadata={"min": 1})
    # one attempt (connect, send, answer)
    timeout_seconds: float = field(default=10.0, metadata={"gt": 0})
    # delivery ids remembered on disk so a restart does not send them again
    ledger_entries: int = field(default=100_000, metadata={"min": 100})


class SpooledSink(Sink):
    def __init__(
        self,
        name: str,
        transport: Transport,
        *,
        state_dir: Path,
        config: DeliveryConfig | None = None,
        full_evidence: bool = False,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__(name)
        self.kind = type(transport).__name__
        self.transport = transport
        self.config = config or DeliveryConfig()
        self.full_evidence = full_evidence
        self.dir = state_dir
        self.spool = Spool(
            state_dir,
            max_bytes=self.config.spool_max_bytes,
            max_entries=self.config.spool_max_entries,
        )
        self.ledger = Ledger(state_dir / "delivered.ids", capacity=self.config.ledger_entries)
        self.dead_letter_path = state_dir / "dead-letter.ndjson"
        self.metrics = metrics or Metrics()
        self._known: list[str] = []
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._drainer: asyncio.Task[None] | None = None
        self._closing = False
        self._lock = asyncio.Lock()  # one attempt at a time keeps the target's order
        self.delivered = 0
        self.dead_lettered = 0
        self._up = True

    def bind_metrics(self, metrics: Metrics) -> None:
        self.metrics = metrics

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            self.spool.open()
            self._known = self.ledger.open()
        except OSError as exc:
            raise SinkError(
                f"cannot open the delivery state in {self.dir}: {exc.strerror}", retryable=False
            ) from exc
        self._import_redrives()
        await self.transport.start()
        m = self.metrics
        m.sink_spool_limit_bytes.labels(self.name).set(self.config.spool_max_bytes)
        m.sink_up.labels(self.name).set(1)
        self._gauges()
        if len(self.spool):
            log.info(
                "sink has spooled alerts from an earlier run; delivering them first",
                extra={"fields": {"sink": self.name, "alerts": len(self.spool)}},
            )
        self._drainer = asyncio.create_task(self._drain(), name=f"drain-{self.name}")
        self._wake.set()

    def delivered_ids(self) -> Iterable[str]:
        return self._known

    def status(self) -> dict[str, Any]:
        return {
            "type": self.kind,
            "target": self.transport.describe(),
            "up": self._up,
            "spooled": len(self.spool),
            "dead_lettered": self.dead_lettered,
        }

    def _import_redrives(self) -> None:
        """Dead letters that ``rcwatch sinks redrive`` queued go back into the spool."""
        for path in sorted(self.dir.glob("redrive-*.ndjson")):
            records = [r for r in read_dead_letters(path) if isinstance(r.get("alert"), dict)]
            try:
                self.spool.append([{"alert": r["alert"]} for r in records])
            except SpoolFull:
                log.error(
                    "spool full; dead letters stay queued for redelivery",
                    extra={"fields": {"sink": self.name, "file": path.name}},
                )
                return
            path.unlink()
            log.info(
                "dead letters queued for redelivery",
                extra={"fields": {"sink": self.name, "alerts": len(records)}},
            )

    async def send(self, alerts: Sequence[Alert]) -> None:
        payloads = [a.to_dict(full_evidence=self.full_evidence) for a in alerts]
        async with self._lock:
            if not len(self.spool):
                try:
                    await self._attempt(payloads)
                except TransportError as exc:
                    if not exc.retryable:
                        self._dead_letter(payloads, "rejected", str(exc), 1)
                        self._record(alerts)
                        return
                    self._failed(exc, len(payloads), spooling=True)
                else:
                    self._record(alerts)
                    return
            try:
                self.spool.append([{"alert": p} for p in payloads])
            except SpoolFull as exc:
                raise SinkError(f"{exc}; waiting for the target to come back") from exc
            except OSError as exc:
                raise SinkError(f"cannot write the spool: {exc.strerror}") from exc
            self.metrics.sink_spooled.labels(self.name).inc(len(payloads))
            self._record(alerts)
            self._gauges()
            self._wake.set()

    async def flush(self) -> None:
        try:
            self.spool.sync()
            self.ledger.sync()
        except OSError as exc:
            raise SinkError(f"cannot sync the delivery state: {exc.strerror}") from exc

    async def close(self) -> None:
        self._closing = True
        if self._drainer is not None:
            self._drainer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drainer
            self._drainer = None
        if len(self.spool):
            log.warning(
                "sink closed with alerts still spooled; they are delivered on the next start",
                extra={"fields": {"sink": self.name, "alerts": len(self.spool)}},
            )
        self.spool.close()
        self.ledger.close()
        await self.transport.close()

    async def wait_drained(self, timeout_seconds: float = 10.0) -> bool:
        """For tests and shutdown: wait until the spool is empty."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_seconds):
                await self._drained.wait()
        return not len(self.spool)

    # -- internals ------------------------------------------------------------------------

    async def _attempt(self, payloads: Sequence[dict[str, Any]]) -> None:
        m = self.metrics
        m.sink_writes.labels(self.name).inc()
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.config.timeout_seconds):
                for i in range(0, len(payloads), self.transport.batch_max_alerts):
                    await self.transport.send(payloads[i : i + self.transport.batch_max_alerts])
        except TimeoutError as exc:
            await self.transport.reset()
            raise TransportError(f"no answer within {self.config.timeout_seconds:g} s") from exc
        finally:
            m.sink_delivery_seconds.labels(self.name).observe(time.perf_counter() - started)
        m.sink_up.labels(self.name).set(1)
        self._up = True
        self.delivered += len(payloads)

    def _failed(self, exc: TransportError, n: int, *, spooling: bool) -> None:
        m = self.metrics
        m.sink_failures.labels(self.name).inc()
        m.sink_up.labels(self.name).set(0)
        self._up = False
        log.warning(
            "sink target failing; alerts are spooled and retried"
            if spooling
            else "sink target still failing; retrying the spool",
            extra={
                "fields": {
                    "sink": self.name,
                    "target": self.transport.describe(),
                    "alerts": n,
                    "error": str(exc),
                }
            },
        )

    def _record(self, alerts: Sequence[Alert]) -> None:
        try:
            self.ledger.record(a.delivery_id for a in alerts)
        except OSError as exc:  # the alerts are delivered or spooled: only repeats at risk
            log.error(
                "cannot record delivered ids; a restart may deliver them again",
                extra={"fields": {"sink": self.name, "error": exc.strerror}},
            )

    def _gauges(self) -> None:
        m = self.metrics
        m.sink_spool_entries.labels(self.name).set(len(self.spool))
        m.sink_spool_bytes.labels(self.name).set(self.spool.bytes)
        if len(self.spool):
            self._drained.clear()
        else:
            self._drained.set()

    def _dead_letter(
        self, payloads: Sequence[dict[str, Any]], reason: str, error: str, attempts: int
    ) -> None:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        data = b"".join(
            orjson.dumps(
                {"alert": p, "reason": reason, "error": error, "attempts": attempts, "at": now}
            )
            + b"\n"
            for p in payloads
        )
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dead_letter_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.dead_lettered += len(payloads)
        self.metrics.sink_dead_letters.labels(self.name, reason).inc(len(payloads))
        log.error(
            "alerts dead-lettered; `rcwatch sinks redrive` sends them again",
            extra={
                "fields": {
                    "sink": self.name,
                    "alerts": len(payloads),
                    "reason": reason,
                    "attempts": attempts,
                    "error": error,
                    "file": str(self.dead_letter_path),
                }
            },
        )

    async def _drain(self) -> None:
        backoff = Backoff(self.config.backoff_initial_seconds, self.config.backoff_max_seconds)
        m = self.metrics
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            while len(self.spool) and not self._closing:
                delay = 0.0
                async with self._lock:
                    records = self.spool.peek(self.transport.batch_max_alerts)
                    payloads = [r["alert"] for r in records]
                    try:
                        await self._attempt(payloads)
                    except TransportError as exc:
                        if not exc.retryable:
                            self._dead_letter(
                                payloads, "rejected", str(exc), self.spool.head_attempts + 1
                            )
                            self.spool.pop(len(records))
                        else:
                            attempts = self.spool.record_failure()
                            m.sink_retries.labels(self.name).inc()
                            if attempts >= self.config.max_attempts:
                                self._dead_letter(payloads, "attempts", str(exc), attempts)
                                self.spool.pop(len(records))
                            else:
                                self._failed(exc, len(payloads), spooling=False)
                                delay = backoff.next_delay()
                                if exc.retry_after_seconds is not None:
                                    delay = max(delay, exc.retry_after_seconds)
                    else:
                        self.spool.pop(len(records))
                        backoff.reset()
                    self._gauges()
                if delay:
                    with contextlib.suppress(TimeoutError):
                        # a new send does not wake the retry early: the target is down
                        await asyncio.sleep(delay)


def read_dead_letters(path: Path) -> list[dict[str, Any]]:
    """The dead-letter records of a sink (for ``rcwatch sinks``)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_bytes().splitlines():
        if line.strip():
            with contextlib.suppress(orjson.JSONDecodeError):
                out.append(orjson.loads(line))
    return out
