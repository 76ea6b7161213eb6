"""Bounded sets of ids already seen, in memory and (for sinks that need it) on disk."""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator
from pathlib import Path

from sinks.files import aside_path, write_atomic

__all__ = ["Ledger", "RecentIds"]

log = logging.getLogger(__name__)


class RecentIds:
    """An insertion-ordered set that forgets its oldest ids beyond ``capacity``."""

    __slots__ = ("_ids", "capacity", "evicted")

    def __init__(self, capacity: int = 100_000, ids: Iterable[str] = ()) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()
        self.evicted = 0
        for i in ids:
            self.add(i)

    def __contains__(self, item: str) -> bool:
        return item in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, item: str) -> bool:
        """Add; False if it was already there."""
        if item in self._ids:
            return False
        self._ids[item] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
            self.evicted += 1
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)


class Ledger:
    """Append-only file of delivered ids, for sinks that cannot be asked what they hold.

    Each id is written with one unbuffered ``write`` as soon as it is delivered, so a
    ``kill -9`` loses nothing that was written; ``flush`` adds an fsync for power loss.
    On open the file is compacted to its newest ``capacity`` ids. A line that is not an id
    (invalid UTF-8, control characters: a torn or tampered file) never stops a start: it is
    moved to ``<file>.corrupt-<time>``, and ``corrupt`` says how many there were. Files are
    created 0600.
    """

    def __init__(self, path: Path, capacity: int = 100_000) -> None:
        self.path = path
        self.capacity = capacity
        self.corrupt = 0
        self._fd: int | None = None
        self._lines = 0
        self._pending: deque[bytes] = deque()  # appends a full disk refused, oldest first
        self._pending_bytes = 0

    def open(self) -> list[str]:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        ids: list[str] = []
        if self.path.exists():
            bad: list[bytes] = []
            for line in self.path.read_bytes().split(b"\n"):
                if not line.strip():
                    continue
                if _ID.fullmatch(line):
                    ids.append(line.decode("ascii"))
                else:
                    bad.append(line)
            if bad:
                aside = aside_path(self.path)
                write_atomic(aside, b"".join(b + b"\n" for b in bad))
                self.corrupt = len(bad)
                log.error(
                    "ledger lines that are not ids were moved aside",
                    extra={"fields": {"file": str(self.path), "lines": len(bad),
                                      "moved_to": aside.name}},
                )  # fmt: skip
            ids = ids[-self.capacity :]
            write_atomic(self.path, b"".join(i.encode() + b"\n" for i in ids))
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._lines = len(ids)
        return ids

    def record(self, ids: Iterable[str]) -> None:
        """Append ids, all or none: a short write (a disk filling up) is resumed, and a
        failed one is cut back to the last whole line, so no torn id is left for the
        next append to glue onto. Ids that could not be written are kept and written
        before the next ones (or at ``sync``); OSError says they are waiting."""
        assert self._fd is not None, "ledger not open"
        data = b"".join(i.encode() + b"\n" for i in ids)
        if data:
            self._pending.append(data)
            self._pending_bytes += len(data)
            while self._pending_bytes > self.capacity * 64 and len(self._pending) > 1:
                self._pending_bytes -= len(self._pending.popleft())  # bounded: oldest go
        self._write_pending()

    @property
    def pending(self) -> int:
        """Ids recorded but not yet in the file (its disk was full)."""
        return sum(chunk.count(b"\n") for chunk in self._pending)

    def _write_pending(self) -> None:
        if not self._pending or self._fd is None:
            return
        data = b"".join(self._pending)
        fd = self._fd
        end = os.lseek(fd, 0, os.SEEK_END)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, end)
            raise
        self._pending.clear()
        self._pending_bytes = 0

    def sync(self) -> None:
        """Write the ids still waiting, then fsync; OSError when that fails."""
        self._write_pending()
        if self._fd is not None:
            os.fsync(self._fd)

    def close(self) -> None:
        """Close the file; ids still waiting for room are written if they can be (a
        restart may repeat those that cannot: the caller logged and counted them)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                self._write_pending()
            with contextlib.suppress(OSError):
                os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None


# a delivery id: printable ASCII without spaces (alert ids are hex, updates add "~N")
_ID = re.compile(rb"[\x21-\x7e]{1,512}")
