"""Shared helpers for benchmarks: locating recorded data and timing."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RECORDED = SHARED_DATA / "recentchange" / "rts-recentchange-60s-2026-05-05.ndjson"


def require(path: Path) -> Path:
    if not path.exists():
        sys.exit(f"benchmark input {path} is missing (../shared/data must sit beside the repo)")
    return path


def best_of(repeats: int, fn: Callable[[], object]) -> float:
    """Shortest wall time of ``repeats`` runs (the least disturbed by the machine)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best
