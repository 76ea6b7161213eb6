"""Exponential backoff with jitter, and HTTP ``Retry-After`` parsing."""

from __future__ import annotations

import random
import time
from email.utils import parsedate_to_datetime

__all__ = ["Backoff", "parse_retry_after"]


class Backoff:
    """Delays grow ``initial * multiplier**n`` up to ``maximum``, with "equal jitter":
    each delay is drawn uniformly from the upper half of the step, so a herd of clients
    spreads out but none retries immediately."""

    def __init__(
        self,
        initial_seconds: float = 0.5,
        maximum_seconds: float = 60.0,
        multiplier: float = 2.0,
        rng: random.Random | None = None,
    ) -> None:
        self.initial = initial_seconds
        self.maximum = maximum_seconds
        self.multiplier = multiplier
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        # the exponent stops growing once the step reached the maximum (no overflow after
        # days of an outage)
        step = min(self.maximum, self.initial * self.multiplier ** min(self.attempt, 64))
        if step < self.maximum:
            self.attempt += 1
        return self._rng.uniform(step / 2, step)

    def reset(self) -> None:
        self.attempt = 0


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
