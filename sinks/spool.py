"""A bounded, ordered, on-disk queue of alert records for one sink whose target is failing.

Layout, in the sink's own directory:

- ``spool.ndjson``: one record per line, appended (each append is one ``write``; ``sync``
  adds an fsync, which the runner's commit calls before it moves the checkpoint);
- ``spool.state``: ``{"offset": bytes consumed, "attempts": failed tries of the head}``,
  replaced atomically after every pop, so a restart resumes at the first record not yet
  delivered, in order, and a head that keeps failing keeps its attempt count.

A torn last line (a crash mid-append) is cut off at open: its alerts were never accepted,
so the checkpoint did not pass them and they are processed again. The file is compacted
(rewritten from the offset) when the consumed part dominates, and truncated when drained.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

__all__ = ["Spool", "SpoolFull"]

log = logging.getLogger(__name__)

_COMPACT_MIN_BYTES = 1 << 20


class SpoolFull(Exception):
    """The spool is at its size cap: the caller must wait (backpressure), never drop."""


class Spool:
    def __init__(self, directory: Path, *, max_bytes: int, max_entries: int = 1_000_000) -> None:
        self.dir = directory
        self.path = directory / "spool.ndjson"
        self.state_path = directory / "spool.state"
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._fd: int | None = None
        self._offset = 0  # bytes of the file already delivered
        self._size = 0  # bytes in the file
        self._lines: list[int] = []  # length (with newline) of each pending record, in order
        self.head_attempts = 0

    # -- lifecycle ------------------------------------------------------------------------

    def open(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        offset, attempts = 0, 0
        try:
            state = orjson.loads(self.state_path.read_bytes())
            offset, attempts = int(state["offset"]), int(state.get("attempts", 0))
        except FileNotFoundError:
            pass
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, OSError) as exc:
            log.error(
                "spool state unreadable; replaying the whole spool (the target may see "
                "repeats, which carry the same ids)",
                extra={"fields": {"spool": str(self.dir), "error": type(exc).__name__}},
            )
        size = os.fstat(self._fd).st_size
        data = os.pread(self._fd, size, 0) if size else b""
        end = data.rfind(b"\n") + 1
        if end < len(data):
            log.warning(
                "spool had a torn last record; cut it (its alerts were never accepted)",
                extra={"fields": {"spool": str(self.dir), "bytes": len(data) - end}},
            )
            os.ftruncate(self._fd, end)
            data = data[:end]
        if offset > len(data) or (offset and data[offset - 1 : offset] != b"\n"):
            log.error(
                "spool offset does not fall on a record; replaying the whole spool",
                extra={"fields": {"spool": str(self.dir)}},
            )
            offset, attempts = 0, 0
        self._size = len(data)
        self._offset = offset
        self._lines = [len(line) + 1 for line in data[offset:].split(b"\n")[:-1]]
        self.head_attempts = attempts if self._lines else 0

    def close(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None

    # -- state ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._lines)

    @property
    def bytes(self) -> int:
        return self._size - self._offset

    # -- queue ----------------------------------------------------------------------------

    def append(self, records: Sequence[dict[str, Any]]) -> None:
        """Append records in order; raises ``SpoolFull`` (appending nothing) at the cap."""
        assert self._fd is not None, "spool not open"
        lines = [orjson.dumps(r) + b"\n" for r in records]
        size = sum(len(x) for x in lines)
        if self._lines and (
            self.bytes + size > self.max_bytes or len(self._lines) + len(lines) > self.max_entries
        ):
            raise SpoolFull(f"spool at its cap ({self.bytes} bytes, {len(self._lines)} alerts)")
        data = b"".join(lines)
        written = 0
        while written < len(data):
            written += os.write(self._fd, data[written:])
        self._size += len(data)
        self._lines.extend(len(x) for x in lines)

    def peek(self, n: int) -> list[dict[str, Any]]:
        """The first ``n`` pending records, oldest first."""
        assert self._fd is not None, "spool not open"
        take = self._lines[:n]
        if not take:
            return []
        data = os.pread(self._fd, sum(take), self._offset)
        return [orjson.loads(line) for line in data.split(b"\n")[: len(take)]]

    def pop(self, n: int) -> None:
        """Drop the first ``n`` records (delivered or dead-lettered) and persist that."""
        assert self._fd is not None, "spool not open"
        n = min(n, len(self._lines))
        self._offset += sum(self._lines[:n])
        del self._lines[:n]
        self.head_attempts = 0
        if not self._lines:
            os.ftruncate(self._fd, 0)
            self._offset = self._size = 0
        elif self._offset >= _COMPACT_MIN_BYTES and self._offset * 2 >= self._size:
            self._compact()
        self._save_state()

    def record_failure(self) -> int:
        """Count a failed attempt at the head; returns the head's attempts so far."""
        self.head_attempts += 1
        self._save_state()
        return self.head_attempts

    def sync(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)

    # -- internals ------------------------------------------------------------------------

    def _compact(self) -> None:
        assert self._fd is not None
        rest = os.pread(self._fd, self._size - self._offset, self._offset)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(rest)
        tmp.chmod(0o600)
        # the state must never name an offset meant for the old file once the new one is
        # in place (that could skip records): record offset 0 first, then swap the file.
        # A crash in between replays delivered records, which carry the same ids.
        offset, self._offset = self._offset, 0
        self._save_state()
        self._offset = offset
        os.replace(tmp, self.path)
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND, 0o600)
        self._offset, self._size = 0, len(rest)

    def _save_state(self) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps({"offset": self._offset, "attempts": self.head_attempts}))
        os.replace(tmp, self.state_path)
