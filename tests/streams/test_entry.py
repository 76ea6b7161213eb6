"""The entry point: however a signal lands, one line or none, never a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# A command that has finished (its summary printed) and a signal that keeps arriving while
# the process exits: the thread waits until the command has returned, then signals.
SCRIPT = """
import os, sys, threading, time
import streams.commands.cli

MAIN = threading.main_thread().ident

def stack(frame):
    while frame is not None:
        yield frame
        frame = frame.f_back

def spam(sig):
    while any(f.f_code is command.__code__ for f in stack(sys._current_frames().get(MAIN))):
        time.sleep(0.0002)
    end = time.monotonic() + 0.5
    while time.monotonic() < end:
        os.kill(os.getpid(), sig)
        time.sleep(0.0005)

def command(argv):
    print("summary: done", file=sys.stderr, flush=True)
    threading.Thread(target=spam, args=(int(sys.argv[1]),)).start()
    return 0

streams.commands.cli.main = command
from streams.entry import main
sys.exit(main([]))
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_the_process_exits_changes_nothing(
    sig: signal.Signals, tmp_path: Path
) -> None:
    """Defect: a signal after the summary, while the interpreter tore down, printed a
    KeyboardInterrupt or Terminated traceback, or killed the process by the signal (status
    -2, no line). Now the finished command's status stands."""
    script = tmp_path / "exit_under_fire.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(script), str(int(sig))],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert "Traceback" not in done.stderr and "Error" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "summary: done", done.stderr
    assert done.returncode == 0, done.stderr


# A command whose first import is interrupted halfway by the signal; the module's import then
# keeps running bytecode for a while, so a handler that raises at once would cut it short.
PROBE = """
import os, signal, sys, time
os.kill(os.getpid(), int(os.environ["PROBE_SIGNAL"]))
for _ in range(200):
    time.sleep(0.0005)
print("probe: imported whole", file=sys.stderr, flush=True)
"""

IMPORTING = """
import sys, time
import streams.commands.cli

def command(argv):
    import probe
    time.sleep(30)  # the deferred signal lands here, once the import is over
    return 0

streams.commands.cli.main = command
from streams.entry import main
sys.exit(main([]))
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_an_import_waits_until_the_import_is_over(
    sig: signal.Signals, tmp_path: Path
) -> None:
    """Defect: SIGINT 50 ms into start-up killed the process with SIGSEGV (status -11) 2
    times in 10: the KeyboardInterrupt cut orjson's extension module off halfway through its
    initialisation. No import is interrupted now, whichever module it is: the signal is
    delivered once the import has finished, and the exit is the usual one line."""
    (tmp_path / "probe.py").write_text(PROBE)
    script = tmp_path / "interrupted_import.py"
    script.write_text(IMPORTING)
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}",
        "PROBE_SIGNAL": str(int(sig)),
    }
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    lines = done.stderr.strip().splitlines()
    expected = "rcwatch: interrupted" if sig == signal.SIGINT else "rcwatch: terminated"
    assert lines == ["probe: imported whole", expected], done.stderr
    assert done.returncode == (130 if sig == signal.SIGINT else 143)
