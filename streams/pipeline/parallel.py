"""Detection on several cores, for replays and backtests (``--workers N``).

The rules are pure functions of one event (and its text), so they can run anywhere; the
pattern windows, page memory, throttle, storm guard and hit counts are state, and are kept
in one place, in stream order. So the split is:

- the workers (processes forked from the one that loaded the rules, so they share its
  compiled rules and classifier) decode each event of a batch and run
  ``Pipeline.evaluate_off_loop`` on those in scope: findings, what ran out of budget,
  fingerprints;
- the parent hands each batch over as one task, and takes the answers batch by batch,
  event by event, in stream order, through the same steps as one process:
  de-duplication, scope, ``Detection.account``, then ``Pipeline.complete`` (windows,
  page memory, throttle, alerts).

The output is therefore the same as one process's: the same findings in the same order
meet the same state. ``tests/streams/pipeline/test_parallel.py`` proves it on the
recorded events and on the pattern scenarios. Batch k+1 is evaluated while the parent
completes batch k, which is where the time is won.

Workers ignore SIGINT and SIGHUP, and a SIGTERM from anyone but their parent (the parent
stops them, also when a signal goes to the whole process group), and do not share the
parent's signal wakeup descriptor. They end with the parent's pool, or with the parent
itself when it is killed (-9 included). The pool refuses a rules reloader: its workers
run the rules loaded at the start.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from detectors.event import MalformedEvent, decode_event
from streams.pipeline.stages import Pipeline, PooledEvent, evaluate_record

__all__ = ["DetectionPool", "default_workers"]

_NO_RAW: dict[str, Any] = {}
_PR_SET_PDEATHSIG = 1

# the pipeline whose rules the workers run: set in the parent just before the fork, so
# every worker inherits it (nothing is pickled, nothing loaded again)
_INHERITED: dict[str, Pipeline] = {}


def default_workers() -> int:
    """The machine's cores (those this process may use)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _worker_init(parent: int) -> None:
    """In each worker, first: it stops only when the parent says so, or dies with it."""
    # Ctrl-C, and a SIGHUP or SIGTERM to the whole process group (systemd's stop, kill
    # -- -PGID), are the parent's to handle: it shuts the pool down when it is done. A
    # SIGTERM from the parent itself (a broken pool's clean-up) still ends the worker.
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    with contextlib.suppress(ValueError):  # the parent loop's descriptor is not ours
        signal.set_wakeup_fd(-1)
    if hasattr(signal, "sigwaitinfo"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        threading.Thread(target=_terminate_from, args=(parent,), daemon=True).start()
    _die_with(parent)


def _terminate_from(parent: int) -> None:
    while True:
        info = signal.sigwaitinfo({signal.SIGTERM})
        if info.si_pid == parent:
            os._exit(128 + signal.SIGTERM)


def _die_with(parent: int) -> None:
    """A worker must not outlive a parent killed with -9: every worker holds the write end
    of the task pipe, so none would ever read end-of-file. Linux kills it with its parent
    (PR_SET_PDEATHSIG); elsewhere a watchdog thread notices the parent is gone."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl")
    except (OSError, AttributeError):
        threading.Thread(target=_watch, args=(parent,), daemon=True).start()
    if os.getppid() != parent:  # the parent died before we could ask
        os._exit(1)


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _ready(_: int) -> int:
    return os.getpid()


def _evaluate(items: Sequence[tuple[bytes | str, dict[str, Any] | None]]) -> list[PooledEvent]:
    """In a worker: each event decoded, and, when in scope, evaluated as
    ``Pipeline.evaluate_off_loop`` does. The event goes back without its raw object
    (nothing after decoding reads it), which makes the answer small and quick to read."""
    pipeline = _INHERITED["pipeline"]
    out: list[PooledEvent] = []
    for data, record in items:
        try:
            change = decode_event(data)
        except MalformedEvent as exc:
            out.append((exc.reason, None))
            continue
        answer = evaluate_record(pipeline.detection, pipeline.scope, change, record)
        if answer is not None and not (answer[0] or answer[1] or answer[2] is not None):
            answer = None  # most events: nothing to say (out of scope: the parent counts why)
        out.append((change._replace(raw=_NO_RAW), answer))
    return out


class DetectionPool:
    """``workers`` processes evaluating batches of events for ``pipeline``."""

    def __init__(self, pipeline: Pipeline, workers: int) -> None:
        if workers < 2:
            raise ValueError("a pool is for 2 workers or more")
        _INHERITED["pipeline"] = pipeline
        self.workers = workers
        # fork: the workers share the parent's compiled rules and loaded classifier
        self._executor = ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("fork"),
            initializer=_worker_init,
            initargs=(os.getpid(),),
        )
        # every worker is forked now (fork starts them all at the first task), not later
        # from inside a running event loop. The parent's objects are frozen for the fork:
        # a worker's collector then never walks (and so never copies) the rules, the
        # classifier's weights and the rest of what it inherited
        gc.freeze()
        try:
            list(self._executor.map(_ready, range(workers)))
        finally:
            gc.unfreeze()
        self.pids = sorted(p.pid for p in self._executor._processes.values() if p.pid)

    def submit(
        self, items: Sequence[tuple[bytes | str, dict[str, Any] | None]]
    ) -> Future[list[PooledEvent]]:
        return self._executor.submit(_evaluate, list(items))

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
