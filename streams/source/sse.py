"""Incremental Server-Sent Events decoder (WHATWG "event stream interpretation").

Pure and I/O-free: feed it byte chunks as they arrive, get whole events back. It is the
parser inside the EventStreams client; the reconnect loop around it owns the id and the
retry policy.

Written here rather than taken from aiohttp-sse-client because that library strips every
leading space from data lines (the spec strips one), raises out of the iterator on an
abrupt drop, and has a 512 KiB line limit; see FACTS.md.

The limit is on the whole event, not on a line: lines longer than ``max_line_bytes`` are
not buffered (the decoder skips to the next line break), and an event whose ``data:``
lines together pass it stops collecting them. Either way the event is marked oversized, so
the caller can count and report it (with its id) instead of losing it silently or running
out of memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["SSEDecoder", "SSEEvent"]


@dataclass(slots=True)
class SSEEvent:
    event: str
    data: bytes
    id: str | None  # the last event id in effect when this event was dispatched
    oversized: bool = False
    retry_ms: int | None = field(default=None)


class SSEDecoder:
    """Feed bytes, get events. Handles LF, CRLF and CR line ends split across chunks."""

    __slots__ = (
        "_buf",
        "_data",
        "_data_bytes",
        "_event",
        "_has_data",
        "_last_id",
        "_max_line",
        "_oversized",
        "_pending_cr",
        "_skipping",
        "comments",
        "retry_ms",
    )

    def __init__(self, max_line_bytes: int = 16 * 1024 * 1024, last_id: str | None = None):
        self._max_line = max_line_bytes
        self._buf = bytearray()
        self._skipping = False  # inside an oversized line, discarding up to its end
        self._pending_cr = False  # a chunk ended with CR: a following LF belongs to it
        self._event = ""
        self._data: list[bytes] = []
        self._data_bytes = 0  # of the event being built: its data lines and line breaks
        self._has_data = False
        self._oversized = False
        self._last_id = last_id
        self.comments = 0
        self.retry_ms: int | None = None

    @property
    def last_id(self) -> str | None:
        return self._last_id

    @property
    def buffered_bytes(self) -> int:
        return len(self._buf)

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if b"\r" in chunk or self._pending_cr:
            chunk = self._normalize_cr(chunk)
        out: list[SSEEvent] = []
        start = 0
        if self._skipping:
            nl = chunk.find(b"\n")
            if nl < 0:
                return out
            self._skipping = False
            start = nl + 1
        buf = self._buf
        if buf:
            nl = chunk.find(b"\n", start)
            if nl < 0:
                buf += chunk[start:] if start else chunk
                if len(buf) > self._max_line:
                    self._start_skipping()
                return out
            buf += chunk[start:nl]
            if len(buf) > self._max_line:
                self._oversized = True
            else:
                self._line(bytes(buf), out)
            buf.clear()
            start = nl + 1
        find = chunk.find
        while True:
            nl = find(b"\n", start)
            if nl < 0:
                break
            if nl - start > self._max_line:
                self._oversized = True
            else:
                self._line(chunk[start:nl], out)
            start = nl + 1
        if start < len(chunk):
            rest = len(chunk) - start
            if rest > self._max_line:
                self._start_skipping()
            else:
                buf += chunk[start:]
        return out

    def _start_skipping(self) -> None:
        self._buf.clear()
        self._skipping = True
        self._oversized = True

    def _normalize_cr(self, chunk: bytes) -> bytes:
        if self._pending_cr:
            self._pending_cr = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if chunk.endswith(b"\r"):
            self._pending_cr = True
        return chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")

    def _line(self, line: bytes, out: list[SSEEvent]) -> None:
        if not line:
            self._dispatch(out)
            return
        if line[0] == 0x3A:  # ":" comment
            self.comments += 1
            return
        colon = line.find(b":")
        if colon < 0:
            name, value = line, b""
        else:
            name = line[:colon]
            value = line[colon + 2 :] if line[colon + 1 : colon + 2] == b" " else line[colon + 1 :]
        if name == b"data":
            self._has_data = True
            if self._oversized:
                return
            self._data_bytes += len(value) + (1 if self._data else 0)
            if self._data_bytes > self._max_line:  # the limit is per event, not per line
                self._oversized = True
                self._data = []
                return
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id":
            if b"\x00" not in value:
                self._last_id = value.decode("utf-8", "replace")
        elif name == b"retry" and value.isdigit():
            self.retry_ms = int(value)
        # other field names are ignored, as the spec says

    def _dispatch(self, out: list[SSEEvent]) -> None:
        if self._has_data or self._oversized:
            data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
            out.append(SSEEvent(self._event or "message", data, self._last_id, self._oversized))
        self._event = ""
        self._data = []
        self._data_bytes = 0
        self._has_data = False
        self._oversized = False
