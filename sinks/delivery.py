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

from sinks.alert import Alert, payload_delivery_id, payload_problem
from sinks.base import Sink, SinkError
from sinks.dedup import Ledger, RecentIds
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
    """A delivery attempt failed. The message must never carry a secret or alert text.

    ``delivered``: how many of the batch's leading alerts the target did take before the
    failure (a per-alert API that failed on the third message delivered two); they are
    not sent again. ``retryable=False``: the target refused the alert at that position
    for good (it is dead-lettered; the rest are tried again). Only the ``attempted`` alerts
    after the delivered ones count a failed try."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = True,
        retry_after_seconds: float | None = None,
        delivered: int = 0,
        attempted: int | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_seconds = retry_after_seconds
        self.delivered = delivered
        # how many alerts after the delivered ones this attempt actually tried (a per-alert
        # API stops at the failing one: 1); None: all the rest of its chunk
        self.attempted = attempted


class Transport(abc.ABC):
    """One remote target. ``send`` delivers the whole batch or raises ``TransportError``
    saying how many leading alerts it delivered."""

    # the most alerts one ``send`` may carry
    batch_max_alerts: int = 100
    # one request per alert (PagerDuty, Slack): an attempt's time limit scales with it
    request_per_alert: bool = False

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

    # an alert is tried this many times from the spool, then dead-lettered
    max_attempts: int = field(default=12, metadata={"min": 1})
    backoff_initial_seconds: float = field(default=1.0, metadata={"gt": 0})
    # also the longest a target's Retry-After is honoured
    backoff_max_seconds: float = field(default=300.0, metadata={"gt": 0})
    # when the spool reaches either cap the stream waits (backpressure), nothing is dropped
    spool_max_bytes: int = field(default=256 << 20, metadata={"min": 4096})
    spool_max_entries: int = field(default=1_000_000, metadata={"min": 1})
    # one request (per-alert APIs: per alert)
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
        self._not_before = 0.0  # monotonic time before which the target asked not to retry
        self._stopping = asyncio.Event()  # set by close(): sleeps end, no new attempt starts
        # delivery ids accepted (delivered, spooled or dead-lettered) so a retried send
        # never offers them again, also within one run
        self._accepted = RecentIds(self.config.ledger_entries)
        self._backoff = Backoff(
            self.config.backoff_initial_seconds, self.config.backoff_max_seconds
        )
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
            if self.ledger.corrupt:
                self.metrics.state_corrupt.labels("ledger").inc(self.ledger.corrupt)
            for known in self._known:
                self._accepted.add(known)
            self._import_redrives()
        except OSError as exc:
            raise SinkError(
                f"cannot open the delivery state in {self.dir}: {exc.strerror}", retryable=False
            ) from exc
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
            queued = read_dead_letters(path)
            records = [r for r in queued if payload_problem(r.get("alert")) is None]
            broken = [r.get("alert") for r in queued if payload_problem(r.get("alert"))]
            if broken:  # stays a dead letter, with the reason
                self._dead_letter(broken, "undecodable", "not an alert record", [0] * len(broken))
            try:
                self.spool.append([{"alert": r["alert"]} for r in records])
            except SpoolFull:
                log.error(
                    "spool full; dead letters stay queued for redelivery",
                    extra={"fields": {"sink": self.name, "file": path.name}},
                )
                return
            self.spool.sync()
            path.unlink()
            log.info(
                "dead letters queued for redelivery",
                extra={"fields": {"sink": self.name, "alerts": len(records)}},
            )

    async def send(self, alerts: Sequence[Alert]) -> None:
        # a retry of a send that failed part-way must not offer what was accepted already
        todo = [a for a in alerts if a.delivery_id not in self._accepted]
        payloads = [a.to_dict(full_evidence=self.full_evidence) for a in todo]
        async with self._lock:
            rest = list(payloads)
            tried = 0  # alerts at the head of ``rest`` that just failed one try
            if rest and not len(self.spool) and time.monotonic() >= self._not_before:
                try:
                    await self._attempt(rest)
                except TransportError as exc:
                    self._record_payloads(rest[: exc.delivered])  # before anything can fail
                    rest = rest[exc.delivered :]
                    if not exc.retryable:
                        self._dead_letter(rest[:1], "rejected", str(exc), [1])
                        self._record_payloads(rest[:1])
                        rest = rest[1:]
                    else:
                        tried = len(rest) if exc.attempted is None else exc.attempted
                        self._failed(exc, len(rest), spooling=True)
                else:
                    self._record_payloads(rest)
                    rest = []
            if not rest:
                return
            try:
                self.spool.append([{"alert": p} for p in rest])
                # the ledger must never reach the disk ahead of the spooled alerts it names
                self.spool.sync()
            except SpoolFull as exc:
                raise SinkError(f"{exc}; waiting for the target to come back") from exc
            except OSError as exc:
                raise SinkError(f"cannot write the spool: {exc.strerror}") from exc
            self.metrics.sink_spooled.labels(self.name).inc(len(rest))
            self._record_payloads(rest)
            if tried and len(self.spool) == len(rest):  # they head the spool: count that try
                with contextlib.suppress(OSError):
                    self.spool.record_failure(min(tried, len(rest)))
            self._gauges()
            self._wake.set()

    async def flush(self) -> None:
        try:
            self.spool.sync()
            self.ledger.sync()
        except OSError as exc:
            raise SinkError(f"cannot sync the delivery state: {exc.strerror}") from exc

    async def close(self) -> None:
        """Let an attempt in flight finish (so what the target took is not sent again on
        the next start), then stop the drainer and sync the delivery state."""
        self._closing = True
        self._stopping.set()
        self._wake.set()
        drainer, self._drainer = self._drainer, None
        if drainer is not None:
            limit = self.config.timeout_seconds * (
                self.transport.batch_max_alerts if self.transport.request_per_alert else 1
            )
            try:
                await asyncio.wait_for(asyncio.shield(drainer), limit + 1)
            except TimeoutError:
                drainer.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await drainer
            except Exception as exc:  # the drainer should never fail; close anyway
                log.error(
                    "sink drainer had failed",
                    extra={"fields": {"sink": self.name, "error": type(exc).__name__}},
                )
        if len(self.spool):
            log.warning(
                "sink closed with alerts still spooled; they are delivered on the next start",
                extra={"fields": {"sink": self.name, "alerts": len(self.spool)}},
            )
        try:
            self.spool.close()
            self.ledger.close()
        except OSError as exc:
            log.error(
                "cannot sync the delivery state at close",
                extra={"fields": {"sink": self.name, "error": exc.strerror}},
            )
        try:
            await self.transport.close()
        except Exception as exc:  # closing must not stop the other sinks' close
            log.error(
                "transport close failed",
                extra={"fields": {"sink": self.name, "error": type(exc).__name__}},
            )

    async def wait_drained(self, timeout_seconds: float = 10.0) -> bool:
        """For tests and shutdown: wait until the spool is empty."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_seconds):
                await self._drained.wait()
        return not len(self.spool)

    # -- internals ------------------------------------------------------------------------

    async def _attempt(self, payloads: Sequence[dict[str, Any]]) -> None:
        """Send in chunks, each under its own time limit; a failure says how many of
        ``payloads`` were delivered before it. Any exception becomes a TransportError."""
        m = self.metrics
        step = self.transport.batch_max_alerts
        done = 0
        for i in range(0, len(payloads), step):
            chunk = payloads[i : i + step]
            limit = self.config.timeout_seconds * (
                len(chunk) if self.transport.request_per_alert else 1
            )
            started = time.perf_counter()
            try:
                async with asyncio.timeout(limit):
                    await self.transport.send(chunk)
            except TransportError as exc:
                if exc.attempted is None:
                    exc.attempted = len(chunk) - exc.delivered
                self.delivered += exc.delivered
                exc.delivered += done
                raise
            except TimeoutError as exc:
                await self._reset_transport()
                raise TransportError(
                    f"no answer within {limit:g} s", delivered=done, attempted=len(chunk)
                ) from exc
            except Exception as exc:  # a transport bug or library surprise: retry, say what
                log.error(
                    "unexpected error from the sink's transport; retrying",
                    extra={"fields": {"sink": self.name, "error": type(exc).__name__}},
                )
                await self._reset_transport()
                raise TransportError(
                    f"unexpected {type(exc).__name__}", delivered=done, attempted=len(chunk)
                ) from exc
            finally:
                m.sink_delivery_seconds.labels(self.name).observe(time.perf_counter() - started)
            done += len(chunk)
            self.delivered += len(chunk)
        m.sink_up.labels(self.name).set(1)
        self._up = True
        self._backoff.reset()

    async def _reset_transport(self) -> None:
        try:
            async with asyncio.timeout(self.config.timeout_seconds):
                await self.transport.reset()
        except Exception as exc:
            log.warning(
                "transport reset failed",
                extra={"fields": {"sink": self.name, "error": type(exc).__name__}},
            )

    def _failed(self, exc: TransportError, n: int, *, spooling: bool) -> None:
        m = self.metrics
        m.sink_failures.labels(self.name).inc()
        m.sink_up.labels(self.name).set(0)
        self._up = False
        delay = self._backoff.next_delay()
        if exc.retry_after_seconds is not None:
            # honour the target's Retry-After, up to our own longest backoff
            delay = max(delay, min(exc.retry_after_seconds, self.config.backoff_max_seconds))
        self._not_before = time.monotonic() + delay
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
                    "retry_in_s": round(delay, 2),
                }
            },
        )

    def _record_payloads(self, payloads: Sequence[dict[str, Any]]) -> None:
        self._record_ids([payload_delivery_id(p) for p in payloads])

    def _record_ids(self, ids: list[str]) -> None:
        if not ids:
            return
        for i in ids:
            self._accepted.add(i)
        try:
            self.ledger.record(ids)
        except OSError as exc:  # the alerts are delivered or spooled: only repeats at risk
            self.metrics.sink_ledger_errors.labels(self.name).inc(len(ids))
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
        self,
        payloads: Sequence[Any],
        reason: str,
        error: str,
        attempts: Sequence[int],
    ) -> None:
        if not payloads:
            return
        now = datetime.now(UTC).isoformat(timespec="seconds")
        data = b"".join(
            orjson.dumps({"alert": p, "reason": reason, "error": error, "attempts": n, "at": now})
            + b"\n"
            for p, n in zip(payloads, attempts, strict=True)
        )
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
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
                    "error": error,
                    "file": str(self.dead_letter_path),
                }
            },
        )

    async def _drain(self) -> None:
        while not self._closing:
            await self._wake.wait()
            self._wake.clear()
            while len(self.spool) and not self._closing:
                wait = self._not_before - time.monotonic()
                if wait > 0:
                    # new sends do not cut this short (the target asked us to wait); close
                    # does
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), wait)
                    continue
                try:
                    async with self._lock:
                        if self._closing:
                            break
                        await self._drain_once()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the drainer must outlive any one failure
                    self.metrics.sink_failures.labels(self.name).inc()
                    log.error(
                        "sink drain step failed; retrying",
                        extra={"fields": {"sink": self.name, "error": type(exc).__name__}},
                    )
                    self._not_before = time.monotonic() + self._backoff.next_delay()

    async def _drain_once(self) -> None:
        m = self.metrics
        records = self.spool.peek(self.transport.batch_max_alerts)
        # a record no transport can send is set aside on its own, never with its batch
        problems = [payload_problem(r.get("alert")) for r in records]
        if problems and problems[0] is not None:
            tries = self.spool.attempts(1)
            self._dead_letter([records[0].get("alert")], "undecodable", problems[0], tries)
            self.spool.pop(1)
            self._gauges()
            return
        good = next((i for i, problem in enumerate(problems) if problem is not None), None)
        payloads = [r["alert"] for r in records[:good]]
        try:
            await self._attempt(payloads)
        except TransportError as exc:
            if exc.delivered:
                self.spool.pop(exc.delivered)
            rest = payloads[exc.delivered :]
            if not exc.retryable:
                tries = self.spool.attempts(1)
                self._dead_letter(rest[:1], "rejected", str(exc), [t + 1 for t in tries])
                self.spool.pop(1)
            else:
                attempted = len(rest) if exc.attempted is None else max(1, exc.attempted)
                tries = self.spool.record_failure(min(attempted, len(rest)))
                m.sink_retries.labels(self.name).inc()
                spent = 0
                while spent < len(tries) and tries[spent] >= self.config.max_attempts:
                    spent += 1
                if spent:
                    self._dead_letter(rest[:spent], "attempts", str(exc), tries[:spent])
                    self.spool.pop(spent)
                if spent < len(rest):
                    self._failed(exc, len(rest) - spent, spooling=False)
        else:
            self.spool.pop(len(records))
        self._gauges()


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
