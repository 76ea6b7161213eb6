"""Backoff and Retry-After parsing."""

from __future__ import annotations

import random

from sinks.retry import Backoff, parse_retry_after


def test_backoff_grows_to_its_maximum_and_survives_a_long_outage() -> None:
    b = Backoff(0.5, 60.0, rng=random.Random(1))
    delays = [b.next_delay() for _ in range(5000)]  # days of retries at the maximum
    assert delays[0] <= 0.5 and max(delays) <= 60.0
    assert min(delays[-100:]) >= 30.0  # equal jitter: the upper half of the step
    b.reset()
    assert b.next_delay() <= 0.5


def test_retry_after_forms() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 3 ") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("²") is None  # a digit to str.isdigit, not to float()
    when = "Wed, 21 Oct 2015 07:28:00 GMT"
    assert parse_retry_after(when, now=1445412470.0) == 10.0
