"""Stdout sink: a readable line per alert (or JSON), for a terminal or a log collector.

Standard output cannot be asked what it already printed, so this sink keeps a ledger of
delivered ids in the state directory to avoid printing an alert twice across restarts.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal, TextIO

from sinks.alert import Alert
from sinks.base import Sink, SinkError
from sinks.dedup import Ledger
from sinks.metrics import Metrics

__all__ = ["StdoutSink"]

log = logging.getLogger(__name__)


class StdoutSink(Sink):
    kind = "stdout"

    def __init__(
        self,
        name: str,
        *,
        ledger_path: Path | None = None,
        fmt: Literal["text", "json"] = "text",
        stream: TextIO | None = None,
    ) -> None:
        super().__init__(name)
        self.fmt = fmt
        self._stream = stream
        self._ledger = Ledger(ledger_path) if ledger_path is not None else None
        self._known: list[str] = []
        self._metrics: Metrics | None = None

    def bind_metrics(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def start(self) -> None:
        if self._ledger is not None:
            try:
                self._known = self._ledger.open()
            except OSError as exc:
                raise SinkError(
                    f"cannot open the ledger {self._ledger.path}: {exc.strerror}", retryable=False
                ) from exc
            if self._ledger.corrupt and self._metrics is not None:
                self._metrics.state_corrupt.labels("ledger").inc(self._ledger.corrupt)

    def delivered_ids(self) -> Iterable[str]:
        return self._known

    async def send(self, alerts: Sequence[Alert]) -> None:
        out = self._stream or sys.stdout
        if self.fmt == "json":
            text = "".join(a.to_json().decode() + "\n" for a in alerts)
        else:
            text = "".join(a.one_line() + "\n" for a in alerts)
        try:
            out.write(text)
            out.flush()
        except (OSError, ValueError) as exc:  # closed or broken pipe
            raise SinkError(f"cannot write to standard output: {exc}", retryable=False) from exc
        if self._ledger is not None:
            try:
                self._ledger.record(a.delivery_id for a in alerts)
            except OSError as exc:
                # printed already: raising would make the runner send (print) them again
                # on every retry while the disk stays full; only a restart may repeat them
                if self._metrics is not None:
                    self._metrics.sink_ledger_errors.labels(self.name).inc(len(alerts))
                log.error(
                    "cannot record printed alert ids; a restart may print them again",
                    extra={"fields": {"sink": self.name, "error": exc.strerror}},
                )

    async def flush(self) -> None:
        if self._ledger is not None:
            try:
                self._ledger.sync()
            except OSError as exc:
                log.error(
                    "cannot write the ledger; its ids wait in memory, a restart may print "
                    "them again",
                    extra={"fields": {"sink": self.name, "waiting": self._ledger.pending,
                                      "error": exc.strerror}},
                )  # fmt: skip

    async def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()
