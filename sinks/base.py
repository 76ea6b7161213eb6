"""The sink contract, shared by every alert destination.

A sink *accepts* alerts in ``send`` (returning means accepted: written, queued, or spooled)
and makes them *durable* in ``flush``. The runner flushes every sink before it moves the
checkpoint, so the checkpoint never passes an alert a sink could still lose.

Sinks must not emit an alert id twice, also across restarts. Each sink says how it knows
what it already delivered (``delivered_ids``); the runner filters repeats before ``send``.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from typing import Any

from sinks.alert import Alert
from sinks.metrics import Metrics
from sinks.routing import RouteConfig

__all__ = ["Sink", "SinkError"]


class SinkError(Exception):
    """A sink could not accept alerts. ``retryable`` tells the runner whether to retry."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class Sink(abc.ABC):
    kind: str = "sink"

    def __init__(self, name: str) -> None:
        self.name = name
        self.route: RouteConfig | None = None  # None: every alert

    def bind_metrics(self, metrics: Metrics) -> None:  # noqa: B027 - optional hook
        """The runner's metrics, for sinks that report more than the runner counts."""

    def status(self) -> dict[str, Any]:
        """A few figures for ``/healthz`` (never a secret or an alert's text)."""
        return {"type": self.kind}

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Open connections and files. Called once before the first ``send``."""

    def delivered_ids(self) -> Iterable[str]:
        """Alert ids this sink already delivered in earlier runs (newest last)."""
        return ()

    @abc.abstractmethod
    async def send(self, alerts: Sequence[Alert]) -> None:
        """Accept alerts, or raise ``SinkError``."""

    async def flush(self) -> None:  # noqa: B027 - optional hook
        """Make every accepted alert durable."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Flush and release resources."""
