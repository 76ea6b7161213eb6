"""Tests that need ../shared/data skip without it, or fail where it must be there (CI)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PROBE = """
from tests.conftest import shared_data

def test_missing():
    shared_data("no-such-folder", "no-such-file")
"""


def _run(tmp_path: Path, require: bool) -> subprocess.CompletedProcess[str]:
    probe = tmp_path / "test_probe.py"
    probe.write_text(PROBE)
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    if require:
        env["RCWATCH_REQUIRE_SHARED_DATA"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", str(probe)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
        check=False,
    )


def test_absent_shared_data_skips_with_the_reason(tmp_path: Path) -> None:
    out = _run(tmp_path, require=False)
    assert out.returncode == 0 and "1 skipped" in out.stdout, out.stdout


def test_absent_shared_data_fails_when_required(tmp_path: Path) -> None:
    out = _run(tmp_path, require=True)
    assert out.returncode == 1 and "RCWATCH_REQUIRE_SHARED_DATA=1" in out.stdout, out.stdout
