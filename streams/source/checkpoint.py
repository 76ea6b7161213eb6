"""Where we are in the stream: the checkpoint and origin files, and the commit tracker.

The checkpoint holds the position (the SSE id, checked and with live-end entries pinned,
see ``streams.source.position``) of the last event whose alerts every sink has accepted and made
durable. A restart sends it back as ``Last-Event-ID``. The origin is written once, before
the very first connection: the ``since`` that first start used. Until a checkpoint exists,
every start resumes from it, so a monitor killed (or disconnected) before its first
checkpoint skips nothing. Writes are atomic (temp file, fsync, rename, fsync of the
directory), so a crash leaves either the old or the new file, never a torn one. Files are
created 0600: the pattern state they sit beside is about people.

``CommitTracker`` lets events finish out of order (content fetching completes whenever the
wiki answers) while the checkpoint only ever moves past a contiguous prefix of finished
events.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
from collections import deque
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from sinks.files import aside_path, unique_suffix, write_atomic

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "CheckpointStore",
    "CommitTracker",
    "Origin",
    "StateDirLock",
]


log = logging.getLogger(__name__)


class CheckpointError(Exception):
    pass


@dataclass(frozen=True)
class Checkpoint:
    last_event_id: str
    streams: str  # the stream names this position belongs to, e.g. "recentchange"
    event_time: str | None = None
    updated_at: str | None = None
    state_file: str | None = None  # pattern state as of this position (same directory)


@dataclass(frozen=True)
class Origin:
    since_ms: int  # where the first start began (epoch ms, sent as ``since``)
    streams: str
    created_at: str
    started_from: str  # how it was chosen: "live end" or "--since VALUE"


# a state file named by the checkpoint: never a path elsewhere
_STATE_FILE = re.compile(r"state-[0-9A-Za-z_-]{1,64}\.json")
_LATEST_MS = 253_402_300_799_000  # 9999-12-31: later is no time at all


def _utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class CheckpointStore:
    FILE = "checkpoint.json"
    PREVIOUS = "checkpoint.prev.json"
    ORIGIN = "origin.json"

    def __init__(self, state_dir: str | Path) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / self.FILE
        self.prev_path = self.state_dir / self.PREVIOUS
        self.origin_path = self.state_dir / self.ORIGIN
        self.writes = 0
        self._saved: Checkpoint | None = None  # the last checkpoint this process wrote
        self._saved_state: str | None = None

    def load(self) -> Checkpoint | None:
        """The checkpoint; raises CheckpointError when the file is corrupt."""
        return self._load(self.path)

    def load_previous(self) -> Checkpoint | None:
        """The checkpoint before the last one (the fallback when that one is corrupt or
        missing); raises CheckpointError when the file is corrupt."""
        return self._load(self.prev_path)

    def _load(self, path: Path) -> Checkpoint | None:
        d = _read_json(path)
        if d is None:
            return None
        try:
            cp = Checkpoint(
                last_event_id=d["last_event_id"],
                streams=d["streams"],
                event_time=d.get("event_time"),
                updated_at=d.get("updated_at"),
                state_file=d.get("state_file"),
            )
            if not (
                isinstance(cp.last_event_id, str)
                and isinstance(cp.streams, str)
                and isinstance(cp.event_time, str | None)
                and isinstance(cp.updated_at, str | None)
                and (cp.state_file is None or _STATE_FILE.fullmatch(str(cp.state_file)))
            ):
                raise TypeError
        except (KeyError, TypeError) as exc:
            raise CheckpointError(
                f"{path} is not a valid checkpoint; move it away or run with "
                "--reset-checkpoint to start from --since"
            ) from exc
        return cp

    def save(
        self,
        last_event_id: str,
        streams: str,
        event_time: str | None,
        state: bytes | None = None,
    ) -> Checkpoint:
        """Write the state (a new file per write) and then the checkpoint naming it, so
        the two always belong together. The checkpoint it replaces is kept as
        ``checkpoint.prev.json`` with its state file (the very first one is copied there):
        a corrupt checkpoint then costs one checkpoint interval of replay, not everything
        since the first start. Other state files are removed afterwards.

        Without an ``event_time`` (a run that only received events again, which carry no
        new time: the resume overlap after a restart), the one of the checkpoint it replaces
        is kept: the last known time of the stream, never forgotten."""
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        state_name = None
        if state is not None:
            state_name = f"state-{unique_suffix()}.json"
            self._write_atomic(self.state_dir / state_name, state)
        replaced = self._saved if self._saved is not None else self._on_disk()
        if event_time is None and replaced is not None and replaced.streams == streams:
            event_time = replaced.event_time
        cp = Checkpoint(last_event_id, streams, event_time, _utc_now_iso(), state_name)
        if self._saved is not None:
            previous = self._saved_state
        else:
            previous = replaced.state_file if replaced is not None else None
        data = orjson.dumps(asdict(cp), option=orjson.OPT_INDENT_2) + b"\n"
        try:
            os.replace(self.path, self.prev_path)  # a crash now: the loader takes prev
            first = False
        except FileNotFoundError:
            previous, first = None, True
        self._write_atomic(self.path, data)
        if first:  # the very first checkpoint: a copy, so one bad file never means the origin
            self._write_atomic(self.prev_path, data)
        self.writes += 1
        self._saved, self._saved_state = cp, state_name
        keep = {state_name, previous}
        for old in self.state_dir.glob("state-*.json"):
            if old.name not in keep:
                old.unlink(missing_ok=True)
        return cp

    def _on_disk(self) -> Checkpoint | None:
        """The checkpoint on disk (before this process saved one); None when unreadable."""
        try:
            return self.load()
        except CheckpointError:
            return None

    def load_origin(self) -> Origin | None:
        """The first start's origin; raises CheckpointError when the file is corrupt."""
        d = _read_json(self.origin_path)
        if d is None:
            return None
        try:
            origin = Origin(
                since_ms=d["since_ms"],
                streams=d["streams"],
                created_at=d["created_at"],
                started_from=d["started_from"],
            )
            since = origin.since_ms
            if not (
                isinstance(since, int)
                and not isinstance(since, bool)
                and 0 <= since <= _LATEST_MS
                and isinstance(origin.streams, str)
                and isinstance(origin.created_at, str)
                and isinstance(origin.started_from, str)
            ):
                raise TypeError
        except (KeyError, TypeError) as exc:
            raise CheckpointError(f"{self.origin_path} is not a valid origin") from exc
        return origin

    def adopt_if_newer(
        self,
        last_event_id: str,
        streams: str,
        event_time: str | None,
        state: bytes | None = None,
    ) -> bool:
        """Save a position another process handed over (a standby taking over) unless this
        directory holds one as new for the same streams (this host was the last active
        one): True when saved. An unreadable checkpoint counts as none (the loader sets it
        aside and counts it)."""
        try:
            local = self.load()
        except CheckpointError:
            local = None
        if local is not None and local.streams == streams:
            if local.last_event_id == last_event_id:
                return False
            if local.event_time and event_time and local.event_time >= event_time:
                return False
        self.save(last_event_id, streams, event_time, state)
        return True

    def save_origin(self, since_ms: int, streams: str, started_from: str) -> Origin:
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        origin = Origin(since_ms, streams, _utc_now_iso(), started_from)
        self._write_atomic(
            self.origin_path, orjson.dumps(asdict(origin), option=orjson.OPT_INDENT_2) + b"\n"
        )
        return origin

    def quarantine(self, path: Path) -> Path | None:
        """Move a corrupt state file aside (kept for inspection); returns its new name."""
        aside = aside_path(path)
        try:
            os.replace(path, aside)
        except OSError:
            return None
        return aside

    def load_state(self, cp: Checkpoint) -> bytes | None:
        if cp.state_file is None:
            return None
        try:
            return (self.state_dir / cp.state_file).read_bytes()
        except OSError:
            return None

    def _write_atomic(self, path: Path, data: bytes) -> None:
        write_atomic(path, data, sync_dir=True)

    def reset(self) -> bool:
        """Forget the position (both checkpoints) and the origin; True if there was a
        checkpoint."""
        self.origin_path.unlink(missing_ok=True)
        had = False
        for path in (self.prev_path, self.path):
            try:
                path.unlink()
                had = True
            except FileNotFoundError:
                pass
        self._saved = self._saved_state = None
        return had


def _read_json(path: Path) -> dict[str, Any] | None:
    """A state file's JSON object, None when there is no file; CheckpointError when it
    cannot be read or is not a JSON object."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        d = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not JSON") from exc
    if not isinstance(d, dict):
        raise CheckpointError(f"{path} is not a JSON object")
    return d


class StateDirLock:
    """An exclusive lock on the state directory: two monitors must not share a position."""

    def __init__(self, state_dir: str | Path) -> None:
        self.path = Path(state_dir) / "lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise CheckpointError(
                f"cannot use the state directory {self.path.parent}: {exc.strerror or exc}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise CheckpointError(
                f"state directory {self.path.parent} is in use by another rcwatch process"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        mode = os.stat(self.path.parent).st_mode & 0o777
        if mode & 0o077:
            log.warning(
                "the state directory can be read by other users; it holds alert files, "
                "ledgers and the raw-event archive (chmod 700 it)",
                extra={"fields": {"dir": str(self.path.parent), "mode": oct(mode)}},
            )

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


@dataclass
class _Slot:
    seq: int
    event_id: str | None
    event_time: str | None
    done: bool = False


class CommitTracker:
    """Positions begin in stream order and may finish in any order.

    ``watermark`` is the last position of the longest finished prefix: the only position
    that is safe to checkpoint.
    """

    def __init__(self) -> None:
        self._slots: deque[_Slot] = deque()
        self._by_seq: dict[int, _Slot] = {}
        self._next = 0
        self.watermark_id: str | None = None
        self.watermark_time: str | None = None

    def begin(self, sse_id: str | None) -> int:
        seq = self._next
        self._next += 1
        slot = _Slot(seq, sse_id, None)
        self._slots.append(slot)
        self._by_seq[seq] = slot
        return seq

    def done(self, seq: int, event_time: str | None = None) -> None:
        """``event_time``: of the batch's last new event; None when it had none (only
        events seen before, or none readable): the watermark keeps the last known time."""
        slot = self._by_seq.pop(seq)
        slot.done = True
        slot.event_time = event_time
        slots = self._slots
        while slots and slots[0].done:
            head = slots.popleft()
            if head.event_id is not None:
                self.watermark_id = head.event_id
                if head.event_time is not None:
                    self.watermark_time = head.event_time

    @property
    def in_flight(self) -> int:
        return len(self._slots)
