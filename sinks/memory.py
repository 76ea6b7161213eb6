"""In-process transport: keeps what it is sent. For dry runs and as the reference
implementation the sink contract tests hold every other transport to.

``down`` makes every attempt fail as an unreachable target would (retryable); ``reject``
as a target that refuses the request (a 4xx that will not heal).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from sinks.delivery import Transport, TransportError

__all__ = ["MemoryTransport"]


class MemoryTransport(Transport):
    batch_max_alerts = 50

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.raw: list[bytes] = []  # the bytes a remote target would have seen
        self.down = False
        self.reject = False
        self.attempts = 0

    def describe(self) -> str:
        return "memory"

    async def send(self, payloads: Sequence[dict[str, Any]]) -> None:
        self.attempts += 1
        if self.reject:
            raise TransportError("target refused the alerts", retryable=False)
        if self.down:
            raise TransportError("target unreachable")
        for p in payloads:
            self.raw.append(orjson.dumps(p))
            self.received.append(p)
