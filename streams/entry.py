"""The ``rcwatch`` command's entry point: a clean exit on any signal, at any moment.

It imports only the standard library before it takes over SIGTERM, then loads the command
line. A signal during start-up (imports, settings, connecting) or shutdown ends the process
with one line on stderr and the usual exit status (130 for SIGINT, 143 for SIGTERM), never
a Python traceback. While the monitor runs, it handles both signals itself (finish what was
received, flush, checkpoint; a second signal stops waiting for sinks).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence
from types import FrameType

__all__ = ["Terminated", "main"]


class Terminated(BaseException):
    """SIGTERM arrived where the monitor was not handling it (start-up, shutdown)."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        from streams.cli import main as cli_main  # noqa: PLC0415 (after the handler)

        return cli_main(argv)
    except KeyboardInterrupt:
        print("rcwatch: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("rcwatch: terminated", file=sys.stderr)
        return 143
