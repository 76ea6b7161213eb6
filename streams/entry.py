"""The ``rcwatch`` command's entry point: a clean exit on any signal, at any moment.

It imports only the standard library before it takes over SIGINT and SIGTERM, then loads
the command line. A signal that lands during an import waits until the import is over (an
extension module interrupted while it initialises can crash the process). A signal during
start-up (imports, settings, connecting) or shutdown ends the process with one line on
stderr and the usual exit status (130 for SIGINT, 143 for SIGTERM), never a Python
traceback; once the command has finished, signals are ignored while the process exits (with
the command's status). While the monitor runs, it handles both signals itself (finish what
was received, flush, checkpoint; a second signal stops waiting for sinks).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import NoReturn

__all__ = ["Terminated", "main"]


class Terminated(BaseException):
    """SIGTERM arrived where the monitor was not handling it (start-up, shutdown)."""


def _on_signal(signum: int, frame: FrameType | None) -> None:
    """SIGINT or SIGTERM outside the monitor's own handling: raise, unless an import is
    running. An interrupted import can leave an extension module half-initialised, and
    some crash the process when that happens (orjson: SIGSEGV, seen 2 times in 10 with
    SIGINT 50 ms into start-up), so the signal waits until the import is over."""
    if _importing(frame):
        _deferred.append(signum)
        signal.setitimer(signal.ITIMER_REAL, _RECHECK_S)
        return
    raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    """Deliver a deferred signal again, to whatever handles it now (this module while
    starting, which defers again if still importing; the monitor once it runs)."""
    if _deferred:
        signum = _deferred.pop()
        _deferred.clear()
        signal.raise_signal(signum)


def _importing(frame: FrameType | None) -> bool:
    """Whether ``frame`` runs inside an import (importlib's frames are on its stack)."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


_deferred: list[int] = []
_RECHECK_S = 0.005


def _interruption(exc: BaseException) -> BaseException | None:
    """The KeyboardInterrupt or Terminated behind ``exc``: a signal during an import can
    surface wrapped (a class body's ``__set_name__`` turns it into a RuntimeError)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, (KeyboardInterrupt, Terminated)):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def main(argv: Sequence[str] | None = None) -> NoReturn:
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.signal(signal.SIGTERM, _on_signal)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not when ignored
        signal.signal(signal.SIGINT, _on_signal)
    try:
        from streams.commands.cli import main as cli_main

        status = cli_main(argv)
    except BaseException as exc:
        cause = _interruption(exc)
        if cause is None:
            raise
        _ignore_signals()
        terminated = isinstance(cause, Terminated)
        print(f"rcwatch: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
        _exit_now(143 if terminated else 130)
    # the command is over and has said so: a signal during the interpreter's teardown
    # would kill the process by that signal (no line, status -2) or print a traceback
    _ignore_signals()
    _exit_now(status)


def _ignore_signals() -> None:
    """Nothing may interrupt the exit itself."""
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _exit_now(status: int) -> NoReturn:
    """Exit with ``status`` at once. The usual exit is not safe here: when an interrupt
    passed through ``exec`` of a string (dataclasses build methods that way), CPython
    remembers it as unhandled although it was caught, and at the end of a normal exit kills
    itself with SIGINT (status -2, seen 1 time in 10 here). Everything that needed cleaning
    up already has (the stack unwound through every ``finally``); the standard streams are
    flushed here."""
    if "logging" in sys.modules:  # what atexit would do: flush and close log handlers
        with contextlib.suppress(Exception):
            sys.modules["logging"].shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)
