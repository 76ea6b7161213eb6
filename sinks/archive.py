"""Raw-event archive: every consumed event, as received, in rotated NDJSON.gz files.

So that history can be replayed later (``rcwatch replay``, ``rcwatch rules backtest``).
Each line is the capture wrapper used in ``../shared/data``, with two more keys::

    {"event_id": "<meta.id>", "id": "<SSE id>", "recv_ns": <epoch ns>, "data": "<event>",
     "content": {"status": "ok", "added": "...", "removed": "...", "reason": null}}

``content`` is there when the text the edit added was fetched (or its fetch failed, with
the reason), so that replays and backtests use it instead of asking the wiki again.

``data`` is the SSE data string exactly as received (malformed events included, so the
archive is complete). Lines are buffered in memory and written as one complete gzip member
per ``flush``; the runner flushes before it moves the checkpoint, so everything before the
checkpoint is on disk. A write that fails (a full disk) is cut back to the last whole
member and retried with the next flush. A crash can only tear the last member, which readers
skip with a warning (and any damaged member elsewhere, resuming at the next header): those
events come after the checkpoint and are received and archived again.

Every start opens a new file. The ids in the newest earlier files seed a bounded set, so
events that are re-delivered after a restart are not archived twice. Files are created
0600: they hold every edit as received, private data included.
"""

from __future__ import annotations

import logging
import os
import re
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from sinks.dedup import RecentIds

__all__ = ["ArchiveStats", "EventArchive", "iter_lines"]

log = logging.getLogger(__name__)

_EVENT_ID = re.compile(rb'^\{"event_id":"([^"\\]*)"')
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class ArchiveStats:
    truncated: bool = False  # a member was torn (cut short or damaged) and skipped
    damaged_members: int = 0
    bytes_read: int = 0  # of the file as stored (compressed for gzip)


_READ = 1 << 20


def iter_lines(path: str | Path, stats: ArchiveStats | None = None) -> Iterator[bytes]:
    """Lines of a plain or gzip (multi-member) file, without line ends.

    A gzip member that is cut short (a crash mid-write at the end of the file, or a write
    torn by a full disk before the fix that cuts such writes back) or damaged does not
    end the file: the lines it completed are kept, the partial line is dropped, and
    reading resumes at the next member header after it. ``stats.truncated`` and
    ``stats.damaged_members`` tell the caller it happened.
    """
    with open(path, "rb") as f:
        head = f.read(2)
        f.seek(0)
        if head != _GZIP_MAGIC:
            yield from _plain_lines(f, stats)
        else:
            yield from _gzip_lines(f, stats)


def _plain_lines(f: BinaryIO, stats: ArchiveStats | None) -> Iterator[bytes]:
    pending = b""
    for block in iter(lambda: f.read(_READ), b""):
        if stats is not None:
            stats.bytes_read += len(block)
        parts = (pending + block).split(b"\n")
        pending = parts.pop()
        yield from (p.rstrip(b"\r") for p in parts if p.strip(b"\r"))
    if pending.strip(b"\r"):
        yield pending.rstrip(b"\r")


def _gzip_lines(f: BinaryIO, stats: ArchiveStats | None) -> Iterator[bytes]:
    pending = b""
    member_start = 0  # file offset where the member being decoded began
    offset = 0  # file offset of the next byte read
    while True:
        d = zlib.decompressobj(31)
        fed = False  # has this member received any input?
        damaged = False
        while not damaged:
            block = f.read(_READ)
            if not block:
                break
            if stats is not None:
                stats.bytes_read += len(block)
            data, data_at = block, offset
            offset += len(block)
            while data:
                fed = True
                try:
                    out = d.decompress(data)
                except zlib.error:
                    damaged = True
                    break
                if out:
                    parts = (pending + out).split(b"\n")
                    pending = parts.pop()
                    yield from (p for p in parts if p)
                if not d.eof:
                    break
                data_at += len(data) - len(d.unused_data)
                member_start, data = data_at, d.unused_data  # the next member starts here
                d = zlib.decompressobj(31)
                fed = False
        if not (fed and not d.eof) and not damaged:
            if pending:
                yield pending
            return
        # a torn or damaged member: drop its partial line, resume at the next header
        pending = b""
        if stats is not None:
            stats.truncated = True
            stats.damaged_members += 1
        found = _next_member(f, member_start + 1)
        if found is None:
            return
        f.seek(found)
        offset = member_start = found


def _next_member(f: BinaryIO, start: int) -> int | None:
    """The offset of the next gzip member header (magic and deflate method) at or after
    ``start``, None at the end of the file."""
    magic = _GZIP_MAGIC + b"\x08"
    f.seek(start)
    at, tail = start, b""
    for block in iter(lambda: f.read(_READ), b""):
        window = tail + block
        i = window.find(magic)
        if i >= 0:
            return at - len(tail) + i
        tail = window[-(len(magic) - 1) :]
        at += len(block)
    return None


class EventArchive:
    def __init__(
        self,
        directory: str | Path,
        *,
        rotate_bytes: int = 64 << 20,
        rotate_seconds: float = 3600.0,
        keep_files: int | None = None,
        compress_level: int = 6,
        dedup_capacity: int = 200_000,
    ) -> None:
        self.directory = Path(directory)
        self.rotate_bytes = rotate_bytes
        self.rotate_seconds = rotate_seconds
        self.keep_files = keep_files
        self.compress_level = compress_level
        self._seen = RecentIds(dedup_capacity)
        self._buf: list[bytes] = []
        self._fd: int | None = None
        self._path: Path | None = None
        self._file_raw_bytes = 0
        self._opened_at = 0.0
        self._seq = 0
        self.events_written = 0
        self.duplicates = 0
        self.bytes_written = 0
        self.files_opened = 0
        self.unreadable = 0  # files the start could not read
        self.damaged_members = 0  # torn members the start skipped

    @property
    def current_path(self) -> Path | None:
        return self._path

    def files(self) -> list[Path]:
        return sorted(self.directory.glob("events-*.ndjson.gz"))

    def start(self) -> None:
        """Seed the memory of archived ids from the newest files (by modification time:
        names sort by second and pid, so two runs within one second could sort wrongly)
        until it is full, so events re-delivered after a restart are not archived twice."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        newest_first = sorted(self.files(), key=lambda p: p.stat().st_mtime_ns, reverse=True)
        ids: list[list[str]] = []
        seeded = 0
        for path in newest_first:
            stats = ArchiveStats()
            try:
                found = [
                    m.group(1).decode("utf-8", "replace")
                    for line in iter_lines(path, stats)
                    if (m := _EVENT_ID.match(line))
                ]
            except OSError as exc:
                self.unreadable += 1
                log.error(
                    "archive file unreadable; skipped (events in it may be archived again)",
                    extra={"fields": {"file": path.name, "problem": exc.strerror or str(exc)}},
                )
                continue
            if stats.truncated:
                self.damaged_members += stats.damaged_members
                log.warning(
                    "archive file has a torn gzip member (earlier crash or full disk); "
                    "its complete lines are kept, the rest will be received again",
                    extra={"fields": {"file": path.name, "members": stats.damaged_members}},
                )
            ids.append(found)
            seeded += len(found)
            if seeded >= self._seen.capacity:
                break
        for found in reversed(ids):  # oldest first, so the newest stay remembered
            for event_id in found:
                self._seen.add(event_id)
        if newest_first:
            log.info(
                "archive resumes",
                extra={"fields": {"files_read": len(ids), "ids": min(seeded, self._seen.capacity)}},
            )

    def append(
        self,
        sse_id: str | None,
        event_id: str | None,
        data: bytes,
        recv_ns: int,
        content: dict[str, Any] | None = None,
    ) -> bool:
        """Buffer one event (and the text it added, if fetched); False (and nothing
        buffered) if this event id is already archived."""
        if event_id is not None and not self._seen.add(event_id):
            self.duplicates += 1
            return False
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("utf-8", "backslashreplace")
        record: dict[str, Any] = {
            "event_id": event_id, "id": sse_id, "recv_ns": recv_ns, "data": text,
        }  # fmt: skip
        if content is not None:
            record["content"] = content
        self._buf.append(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
        return True

    def flush(self) -> None:
        """Write buffered events as one gzip member and fsync; rotate when due."""
        if self._buf:
            if self._fd is None or self._due():
                self._rotate()
            assert self._fd is not None
            raw = b"".join(self._buf)
            member = _gzip_member(raw, self.compress_level)
            self._write_member(self._fd, member)
            self.events_written += len(self._buf)
            self.bytes_written += len(member)
            self._file_raw_bytes += len(raw)
            self._buf.clear()
        elif self._fd is not None and self._due():
            self._close_file()

    def _write_member(self, fd: int, member: bytes) -> None:
        """Append one whole member, or nothing: a write or fsync cut short (a full disk)
        is cut back to where the file ended, so the retry never leaves a torn member in
        the middle of the file. The events stay buffered for that retry."""
        end = os.lseek(fd, 0, os.SEEK_END)
        try:
            view = memoryview(member)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        except OSError:
            try:
                os.ftruncate(fd, end)
            except OSError:
                log.error(
                    "archive write failed and could not be cut back (readers skip the rest)",
                    extra={"fields": {"file": self._path.name if self._path else None}},
                )
            raise

    def _due(self) -> bool:
        return (
            self._file_raw_bytes >= self.rotate_bytes
            or time.monotonic() - self._opened_at >= self.rotate_seconds
        )

    def _rotate(self) -> None:
        self._close_file()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        while True:
            self._seq += 1
            path = self.directory / f"events-{stamp}-{os.getpid()}-{self._seq:04d}.ndjson.gz"
            if not path.exists():
                break
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        self._path = path
        self._file_raw_bytes = 0
        self._opened_at = time.monotonic()
        self.files_opened += 1
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self._prune()

    def _prune(self) -> None:
        if self.keep_files is None:
            return
        files = self.files()
        for old in files[: max(0, len(files) - self.keep_files)]:
            if old != self._path:
                old.unlink(missing_ok=True)

    def _close_file(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None

    def close(self) -> None:
        self.flush()
        self._close_file()


def _gzip_member(raw: bytes, level: int) -> bytes:
    c = zlib.compressobj(level, zlib.DEFLATED, 31)
    return c.compress(raw) + c.flush()
