"""JSONL file sink: one alert per line, appended; durable before the checkpoint moves.

The file is its own record of what was delivered: on start the sink repairs a torn last
line (left by a crash mid-write) and reads the ids in the file's tail, so a restart that
reprocesses events never writes an alert id twice. A write that fails part-way (a full
disk) is cut back to the last whole line before the error is raised, so the runner's retry
appends the batch to a clean file: no torn line in the middle, no alert twice, none lost.
The file is created 0600.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import orjson

from sinks.alert import Alert
from sinks.base import Sink, SinkError

__all__ = ["JsonlSink"]

log = logging.getLogger(__name__)


class JsonlSink(Sink):
    kind = "jsonl"

    def __init__(self, name: str, path: str | Path, *, scan_tail_bytes: int = 16 << 20) -> None:
        super().__init__(name)
        self.path = Path(path)
        self.scan_tail_bytes = scan_tail_bytes
        self._fd: int | None = None
        self._size = 0  # the file's length after the last whole line
        self._known: list[str] = []
        self.repaired_bytes = 0

    async def start(self) -> None:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise SinkError(f"cannot open {self.path}: {exc.strerror}", retryable=False) from exc
        self._repair_and_scan()
        self._size = os.fstat(self._fd).st_size

    def _repair_and_scan(self) -> None:
        assert self._fd is not None
        size = os.fstat(self._fd).st_size
        if size == 0:
            return
        start = max(0, size - self.scan_tail_bytes)
        tail = os.pread(self._fd, size - start, start)
        end = tail.rfind(b"\n") + 1
        if end < len(tail):  # a torn last line: its alert was never acknowledged
            self.repaired_bytes = len(tail) - end
            os.ftruncate(self._fd, start + end)
            log.warning(
                "jsonl sink repaired a torn last line",
                extra={"fields": {"sink": self.name, "bytes": self.repaired_bytes}},
            )
        lines = tail[:end].split(b"\n")
        if start > 0:
            lines = lines[1:]  # the first line of a partial read may be cut
        for line in lines:
            if not line:
                continue
            try:
                record = orjson.loads(line)
                alert_id, count = record.get("id"), record.get("count", 1)
            except (orjson.JSONDecodeError, AttributeError):
                continue
            if isinstance(alert_id, str):
                # the same key as Alert.delivery_id: an update is its own delivery
                self._known.append(alert_id if count in (1, None) else f"{alert_id}~{count}")

    def delivered_ids(self) -> Iterable[str]:
        """Delivery ids (``Alert.delivery_id``) found in the file's tail."""
        return self._known

    async def send(self, alerts: Sequence[Alert]) -> None:
        if self._fd is None:
            raise SinkError(f"{self.path} is not open", retryable=False)
        data = b"".join(a.to_json() + b"\n" for a in alerts)
        try:
            written = os.write(self._fd, data)
            while written < len(data):
                written += os.write(self._fd, data[written:])
        except OSError as exc:
            try:  # never leave part of a line: the retry appends the whole batch
                os.ftruncate(self._fd, self._size)
            except OSError as cut:
                raise SinkError(
                    f"cannot write {self.path} ({exc.strerror}) nor cut the partial line back "
                    f"({cut.strerror}); not retrying into a torn file",
                    retryable=False,
                ) from exc
            raise SinkError(f"cannot write {self.path}: {exc.strerror}") from exc
        self._size += len(data)

    async def flush(self) -> None:
        if self._fd is not None:
            try:
                os.fsync(self._fd)
            except OSError as exc:
                raise SinkError(f"cannot sync {self.path}: {exc.strerror}") from exc

    async def close(self) -> None:
        if self._fd is not None:
            await self.flush()
            os.close(self._fd)
            self._fd = None
