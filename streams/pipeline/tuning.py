"""Process settings the pipeline runs best with."""

from __future__ import annotations

import gc

__all__ = ["tune_gc"]


def tune_gc() -> None:
    """Collect young garbage every 50,000 allocations instead of 700.

    The pipeline allocates a few dozen short-lived containers per event and keeps a large,
    long-lived working set (dedup ids, pattern windows, the scan memo). With CPython's
    default thresholds the collector ran so often that it took about a quarter of a replay
    (bench/replay_throughput: 14.3k events/s with the defaults, 18.5k with these, 20.7k
    with no collector at all). Nearly all of rcwatch's garbage is freed by reference counting;
    the collector only has to find the occasional cycle, which it still does.
    """
    gc.set_threshold(50_000, 20, 100)
