"""Command-line start-up: ``rcwatch --help`` and ``rcwatch rules validate`` against
``python -c pass`` (the interpreter's own start), in the same run.

    python -m bench.cli_startup [--repeats N]

Each command runs in a fresh process ``--repeats`` times; the best wall time of each is
reported (the least disturbed by the machine), with its ratio to ``python -c pass``, and the
CPU time (user + system) of that run. Goal for ``--help``: under 0.3 s on this machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "rcwatch --help": [sys.executable, "-m", "streams", "--help"],
    "rcwatch rules validate": [sys.executable, "-m", "streams", "rules", "validate"],
    "rcwatch model info": [sys.executable, "-m", "streams", "model", "info"],
    "import streams.app (everything)": [sys.executable, "-c", "import streams.app"],
}


def best(argv: list[str], repeats: int) -> tuple[float, float]:
    """(best wall seconds, CPU seconds of that run)."""
    results = []
    for _ in range(repeats):
        before = os.times()
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        after = os.times()
        cpu = (after.children_user - before.children_user) + (
            after.children_system - before.children_system
        )
        results.append((wall, cpu))
    return min(results)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.cli_startup", description=__doc__)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)
    base_wall, _ = best(COMMANDS["python -c pass"], args.repeats)
    print(f"best of {args.repeats} runs each, fresh processes")
    print(f"{'command':<34} {'wall s':>8} {'CPU s':>7} {'x python -c pass':>17}")
    for name, cmd in COMMANDS.items():
        wall, cpu = best(cmd, args.repeats)
        print(f"{name:<34} {wall:8.3f} {cpu:7.3f} {wall / base_wall:17.1f}")


if __name__ == "__main__":
    main()
