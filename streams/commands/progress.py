"""A progress line for replays (only on a terminal) and the closing summary."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from streams.pipeline.runner import RunSummary

__all__ = ["ProgressBar", "format_summary"]


class ProgressBar:
    """Redraws one line at most ``hz`` times a second; silent when not on a terminal."""

    def __init__(self, total_bytes: int, stream: TextIO | None = None, hz: float = 8.0) -> None:
        self.total = max(1, total_bytes)
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self._interval = 1.0 / hz
        self._last = 0.0
        self._start = time.monotonic()

    def update(self, done_bytes: int, events: int, alerts: int, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < self._interval:
            return
        self._last = now
        frac = min(1.0, done_bytes / self.total)
        width = 30
        filled = int(frac * width)
        rate = events / max(1e-9, now - self._start)
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {frac:6.1%} "
            f"{events:,} events {rate:,.0f}/s {alerts:,} alerts "
        )
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def format_summary(s: RunSummary) -> str:
    lines = [
        f"events: {s.events:,} in {s.seconds:.2f} s ({s.events_per_second:,.0f} events/s); "
        f"run through detectors: {s.processed:,}",
    ]
    if s.dropped:
        parts = ", ".join(f"{k} {v:,}" for k, v in sorted(s.dropped.items()))
        lines.append(f"not run through detectors: {parts}")
    updates = f" (and {s.updates:,} updates of them: repeats within the cooldown)"
    lines.append(f"alerts: {s.alerts:,}{updates if s.updates else ''}")
    for rule, n in s.alerts_by_rule.most_common():
        lines.append(f"  {rule}: {n:,}")
    if s.fatal:
        lines.append(f"stopped: {s.fatal}")
    return "\n".join(lines)
