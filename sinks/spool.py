"""A bounded, ordered, on-disk queue of alert records for one sink whose target is failing.

Layout, in the sink's own directory (mode 0700; files 0600):

- ``spool.ndjson``: one record per line, appended (a failed or partial append is rolled
  back, so a full disk never leaves half a record in the middle of the file);
- ``spool.state``: ``{"offset": bytes consumed, "attempts": [tries of the first records]}``,
  written to a temporary file, fsynced and renamed after every pop or failure, so a restart
  resumes at the first record not yet delivered, in order, and records that keep failing
  keep their attempt counts.

At open a torn last line (a crash mid-append) is cut: its alerts were never accepted, so the
checkpoint did not pass them and they are processed again. A line that does not decode
anywhere else is moved to ``spool.corrupt`` (logged) instead of blocking the queue. The file
is compacted (rewritten from the offset) when the consumed part dominates, and truncated when
drained. ``inspect`` reads a spool without touching it (for ``rcwatch sinks status``).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from sinks.alert import payload_problem
from sinks.files import write_atomic

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
        self.corrupt_path = directory / "spool.corrupt"
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._fd: int | None = None
        self._offset = 0  # bytes of the file already delivered
        self._size = 0  # bytes in the file
        self._lines: list[int] = []  # length (with newline) of each pending record, in order
        self._tries: list[int] = []  # failed attempts of the first records (a prefix)
        self.corrupt = 0  # records moved aside at open

    # -- lifecycle ------------------------------------------------------------------------

    def open(self) -> None:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        offset, tries = self._read_state()
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
            offset, tries = 0, []
        pending = data[offset:].split(b"\n")[:-1]
        bad = [i for i, line in enumerate(pending) if not _decodes(line)]
        if bad:
            self._quarantine(pending, bad)
            skip = set(bad)
            good = [line for i, line in enumerate(pending) if i not in skip]
            # keep the consumed part as it is, so the saved offset stays valid whether or
            # not a crash comes before the new state is written
            data = data[:offset] + b"".join(line + b"\n" for line in good)
            write_atomic(self.path, data)
            os.close(self._fd)
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND, 0o600)
            tries, pending = [], good
        self._size = len(data)
        self._offset = offset
        self._lines = [len(line) + 1 for line in pending]
        self._tries = tries[: len(self._lines)]
        if bad:
            self._save_state()

    def _read_state(self) -> tuple[int, list[int]]:
        try:
            state = orjson.loads(self.state_path.read_bytes())
            tries = state.get("attempts", [])
            if isinstance(tries, int):  # an older single head count
                tries = [tries]
            return int(state["offset"]), [int(t) for t in tries]
        except FileNotFoundError:
            return 0, []
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, OSError) as exc:
            log.error(
                "spool state unreadable; replaying the whole spool (the target may see "
                "repeats, which carry the same ids)",
                extra={"fields": {"spool": str(self.dir), "error": type(exc).__name__}},
            )
            return 0, []

    def _quarantine(self, pending: list[bytes], bad: list[int]) -> None:
        fd = os.open(self.corrupt_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, b"".join(pending[i] + b"\n" for i in bad))
            os.fsync(fd)
        finally:
            os.close(fd)
        self.corrupt += len(bad)
        log.error(
            "spool records that do not decode were moved aside",
            extra={
                "fields": {"spool": str(self.dir), "records": len(bad), "file": "spool.corrupt"}
            },
        )

    def close(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None

    @staticmethod
    def inspect(directory: Path) -> tuple[int, int]:
        """(records, bytes) pending in a spool, read without changing anything."""
        path = directory / "spool.ndjson"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return 0, 0
        offset = 0
        with contextlib.suppress(OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            offset = int(orjson.loads((directory / "spool.state").read_bytes())["offset"])
        pending = data[offset:] if offset <= len(data) else data
        complete = pending[: pending.rfind(b"\n") + 1]
        return complete.count(b"\n"), len(complete)

    # -- state ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._lines)

    @property
    def bytes(self) -> int:
        return self._size - self._offset

    @property
    def head_attempts(self) -> int:
        return self._tries[0] if self._tries else 0

    def attempts(self, n: int) -> list[int]:
        """Failed attempts of each of the first ``n`` records."""
        return [self._tries[i] if i < len(self._tries) else 0 for i in range(n)]

    # -- queue ----------------------------------------------------------------------------

    def append(self, records: Sequence[dict[str, Any]]) -> None:
        """Append records in order; raises ``SpoolFull`` (appending nothing) at the cap,
        ``OSError`` (appending nothing) when the disk refuses."""
        assert self._fd is not None, "spool not open"
        lines = [orjson.dumps(r) + b"\n" for r in records]
        size = sum(len(x) for x in lines)
        if self._lines and (
            self.bytes + size > self.max_bytes or len(self._lines) + len(lines) > self.max_entries
        ):
            raise SpoolFull(f"spool at its cap ({self.bytes} bytes, {len(self._lines)} alerts)")
        data = b"".join(lines)
        written = 0
        try:
            while written < len(data):
                written += os.write(self._fd, data[written:])
        except OSError:
            if written:  # never leave part of a record in the middle of the file
                os.ftruncate(self._fd, self._size)
            raise
        self._size += len(data)
        self._lines.extend(len(x) for x in lines)

    def peek(self, n: int) -> list[dict[str, Any]]:
        """The first ``n`` pending records, oldest first."""
        assert self._fd is not None, "spool not open"
        take = self._lines[:n]
        if not take:
            return []
        data = os.pread(self._fd, sum(take), self._offset)
        return [_decoded(line) for line in data.split(b"\n")[: len(take)]]

    def pop(self, n: int) -> None:
        """Drop the first ``n`` records (delivered or dead-lettered) and persist that."""
        assert self._fd is not None, "spool not open"
        n = min(n, len(self._lines))
        if not n:
            return
        self._offset += sum(self._lines[:n])
        del self._lines[:n]
        del self._tries[:n]
        if not self._lines:
            os.ftruncate(self._fd, 0)
            self._offset = self._size = 0
        elif self._offset >= _COMPACT_MIN_BYTES and self._offset * 2 >= self._size:
            try:
                self._compact()
            except OSError as exc:  # a full disk: keep the longer file, compact later
                log.warning(
                    "spool compaction failed; continuing without it",
                    extra={"fields": {"spool": str(self.dir), "error": exc.strerror}},
                )
        self._save_state()

    def record_failure(self, n: int) -> list[int]:
        """Count a failed attempt on each of the first ``n`` records; returns their counts."""
        n = min(n, len(self._lines))
        while len(self._tries) < n:
            self._tries.append(0)
        for i in range(n):
            self._tries[i] += 1
        self._save_state()
        return self._tries[:n]

    def sync(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)

    # -- internals ------------------------------------------------------------------------

    def _compact(self) -> None:
        assert self._fd is not None
        rest = os.pread(self._fd, self._size - self._offset, self._offset)
        # the state must never name an offset meant for the old file once the new one is
        # in place (that could skip records): record offset 0 first, then swap the file.
        # A crash in between replays delivered records, which carry the same ids.
        tmp = self.path.with_name(self.path.name + ".tmp")
        write_atomic(tmp, rest)  # on a full disk this fails before anything changed
        offset, self._offset = self._offset, 0
        self._save_state()
        self._offset = offset
        os.replace(tmp, self.path)
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND, 0o600)
        self._offset, self._size = 0, len(rest)

    def _save_state(self) -> None:
        tries = self._tries[: len(self._lines)]
        while tries and not tries[-1]:
            tries.pop()
        write_atomic(self.state_path, orjson.dumps({"offset": self._offset, "attempts": tries}))


def _decoded(line: bytes) -> dict[str, Any]:
    """A record, or ``{"alert": None}`` for bytes that no longer decode (the drainer sets
    such a record aside on its own)."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return {"alert": None}
    return record if isinstance(record, dict) else {"alert": None}


def _decodes(line: bytes) -> bool:
    return payload_problem(_decoded(line).get("alert")) is None
