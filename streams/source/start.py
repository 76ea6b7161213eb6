"""Where a run starts: the checkpoint, else the first start's origin, else a new origin.

1. A checkpoint (the position after the last fully processed event) wins; when it is
   corrupt or missing, the one before it (``checkpoint.prev.json``, kept by every save
   with its pattern state), so a bad file costs one checkpoint interval of replay. A saved position
   with a live-end entry (``offset`` -1, written by an older rcwatch) would skip what that
   topic produced while rcwatch was away, so that entry is pinned to a timestamp that can
   skip nothing: the checkpoint's event time minus the margin (else the origin).
2. Without a checkpoint, the origin: the ``since`` the very first start used, written to
   the state directory *before* that start connected. A run killed or disconnected before
   its first checkpoint resumes there, however often that happens.
3. Without either, a new origin: ``--since`` if given, else the live end, taken as "now
   minus the margin" (clock skew between this host and the stream's producers).

The origin is kept in epoch milliseconds (``origin.json``); it is sent as ``since`` in
ISO-8601 with milliseconds (``since_param``): the service reads a numeric ``since`` as the
beginning of its retention (FACTS.md).

A corrupt checkpoint or origin is moved aside (``*.corrupt-<unique>``), counted
(``rcwatch_state_corrupt_total``) and logged, and the start falls back to the next rule: a
bad file costs a replay, never a crash loop or a silent skip.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sinks.metrics import Metrics
from streams.source.checkpoint import Checkpoint, CheckpointError, CheckpointStore, Origin
from streams.source.eventstreams import ms_to_iso, parse_since, since_param
from streams.source.position import PositionError, check, has_live_end, pin_live_ends

__all__ = ["Start", "load_checkpoint", "resolve_start"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Start:
    last_event_id: str | None  # send as Last-Event-ID
    since: str | None  # else this ``since``: ISO-8601 with milliseconds (``since_param``)
    checkpoint: Checkpoint | None  # its pattern state is restored with it


def _iso_ms(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def _corrupt(store: CheckpointStore, path: Path, kind: str, metrics: Metrics, why: str) -> None:
    aside = store.quarantine(path)
    metrics.state_corrupt.labels(kind).inc()
    log.error(
        f"{kind} file unusable; moved aside, starting without it",
        extra={"fields": {"file": str(path), "moved_to": str(aside), "problem": why}},
    )


def load_checkpoint(store: CheckpointStore, metrics: Metrics) -> Checkpoint | None:
    """The checkpoint, else the one before it (kept by every save), else None."""
    cp = _load_one(store, store.path, store.load, metrics)
    if cp is not None:
        return cp
    prev = _load_one(store, store.prev_path, store.load_previous, metrics)
    if prev is not None:
        log.warning(
            "checkpoint missing or unusable: resuming from the one before it",
            extra={"fields": {"file": str(store.prev_path), "event_time": prev.event_time}},
        )
    return prev


def _load_one(
    store: CheckpointStore,
    path: Path,
    load: Callable[[], Checkpoint | None],
    metrics: Metrics,
) -> Checkpoint | None:
    try:
        cp = load()
    except CheckpointError as exc:
        _corrupt(store, path, "checkpoint", metrics, str(exc.__cause__ or exc))
        return None
    if cp is None:
        return None
    try:
        check(cp.last_event_id)
    except PositionError as exc:
        _corrupt(store, path, "checkpoint", metrics, f"bad position ({exc.reason})")
        return None
    return cp


def _load_origin(store: CheckpointStore, metrics: Metrics) -> Origin | None:
    try:
        return store.load_origin()
    except CheckpointError as exc:
        _corrupt(store, store.origin_path, "origin", metrics, str(exc.__cause__ or exc))
        return None


def _mismatch(path: Path, saved: str, streams: str) -> CheckpointError:
    return CheckpointError(
        f"{path} belongs to stream(s) {saved!r} but the stream URL names {streams!r}; use "
        "another --state-dir or --reset-checkpoint"
    )


def resolve_start(
    store: CheckpointStore,
    *,
    streams: str,
    since: str | None,
    margin_seconds: float,
    metrics: Metrics,
    reset: bool = False,
    now_ms: int | None = None,
) -> Start:
    """Decide where to start, writing the origin first when there is none. Raises
    ``CheckpointError`` for a state directory that belongs to other streams or cannot be
    written."""
    margin_ms = int(margin_seconds * 1000)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if reset and store.reset():
        log.info("checkpoint reset: starting from --since or the live end")
    cp = load_checkpoint(store, metrics)
    origin = _load_origin(store, metrics)
    if cp is not None:
        if cp.streams != streams:
            raise _mismatch(store.path, cp.streams, streams)
        position = cp.last_event_id
        if has_live_end(position):
            event_ms = _iso_ms(cp.event_time)
            floor = (
                event_ms - margin_ms
                if event_ms is not None
                else origin.since_ms
                if origin is not None
                else (_iso_ms(cp.updated_at) or now_ms) - margin_ms
            )
            position = pin_live_ends(position, floor)
            log.info(
                "saved position names a topic's live end; resuming that topic by time instead",
                extra={"fields": {"from": ms_to_iso(max(0, floor))}},
            )
        log.info("resuming from checkpoint", extra={"fields": {"event_time": cp.event_time}})
        return Start(position, None, cp)
    if origin is not None:
        if origin.streams != streams:
            raise _mismatch(store.origin_path, origin.streams, streams)
        if since is not None:
            log.warning(
                "--since ignored: no checkpoint yet, so this run resumes from where the "
                "first start began (use --reset-checkpoint to start elsewhere)",
                extra={"fields": {"origin": ms_to_iso(origin.since_ms)}},
            )
        log.info(
            "no checkpoint yet: resuming from where the first start began",
            extra={"fields": {"since": ms_to_iso(origin.since_ms), "chosen": origin.started_from}},
        )
        return Start(None, since_param(origin.since_ms), None)
    if since is not None:
        since_ms, chosen = parse_since(since, retention_days=None), f"since {since}"
    else:
        since_ms, chosen = now_ms - margin_ms, "live end"
    try:
        store.save_origin(since_ms, streams, chosen)
    except OSError as exc:
        raise CheckpointError(f"cannot write {store.origin_path}: {exc.strerror or exc}") from exc
    if since_ms <= 0:  # the demo, a test: the whole of what the server holds
        log.info("first start: from the beginning of what the stream holds")
    else:
        log.info(
            "first start: origin recorded",
            extra={"fields": {"since": ms_to_iso(since_ms), "chosen": chosen}},
        )
    return Start(None, since_param(since_ms), None)
