"""``rcwatch alerts`` over a PostgreSQL store named by a DSN in either of libpq's forms, and
every way of failing to reach it: one line, exit 2, no password, no traceback, no file.

Issue 20, item 4: a ``key=value`` DSN was taken for a SQLite path (printed with its
password, files named after it in the working directory, a local store used instead of the
team's), and a URL DSN with a syntax error gave a traceback that repeated the password."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sinks.store import AlertStore
from tests.sinks.test_jsonl import make_alert

SECRET = "hunter2-s3cret"


def _alerts(cwd: Path, dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``rcwatch alerts ...`` run from ``cwd``, the store's DSN in the environment."""
    config = cwd.parent / "rcwatch.yaml"
    config.write_text("store:\n  postgres_dsn: {env: RCWATCH_STORE_DSN}\n")
    return subprocess.run(
        [sys.executable, "-m", "streams", "alerts", *args, "--config", str(config)],
        capture_output=True, text=True, timeout=60, cwd=cwd, check=False,
        env={**os.environ, "RCWATCH_STORE_DSN": dsn},
    )  # fmt: skip


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    return cwd


def test_a_key_value_dsn_reads_the_teams_database(postgres_db: str, workdir: Path) -> None:
    store = AlertStore(postgres_db)
    store.add([make_alert(1).to_dict()])
    store.close()
    name = postgres_db.rsplit("/", 1)[1]
    # trust auth: the password is never asked for, so any will do
    dsn = f"host=127.0.0.1 port=5432 user=postgres dbname={name} password='{SECRET}'"
    out = _alerts(workdir, dsn, "list")
    assert out.returncode == 0, out.stderr
    assert make_alert(1).id[:12] in out.stdout  # the team's store, not a local file
    assert "1 alert(s)" in out.stderr
    assert list(workdir.iterdir()) == []  # no SQLite file named after the DSN
    assert SECRET not in out.stdout + out.stderr


@pytest.mark.parametrize(
    "dsn",
    [
        f"postgresql://rcwatch:{SECRET}@db.example.org:54x2/rcwatch",  # a port not a number
        f"postgresql://rcwatch:{SECRET}%zz@db.example.org/rcwatch",  # bad percent-encoding
        f"postgresql://rcwatch:{SECRET}@db.example.org/rcwatch?passwd={SECRET}",  # no option
        f"host=db.example.org password={SECRET} {SECRET}",  # a word with no '='
        f"host=db.example.org password='{SECRET}",  # an unterminated quote
        f"mysql://rcwatch:{SECRET}@db.example.org/rcwatch",  # another database
        f"/var/lib/{SECRET}.db",  # a path is not a DSN
    ],
)
def test_a_dsn_that_is_not_one_is_refused_in_one_line(dsn: str, workdir: Path) -> None:
    out = _alerts(workdir, dsn, "list")
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("rcwatch: store.postgres_dsn: env:RCWATCH_STORE_DSN: not a")
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert SECRET not in out.stdout + out.stderr
    assert list(workdir.iterdir()) == []


@pytest.mark.parametrize(
    "command",
    [
        ["list"],
        ["show", "abcdef12"],
        ["export-labels", "--out", "x.csv"],
        ["verdict", "abcdef12", "true"],
    ],
)
@pytest.mark.parametrize(
    "dsn",
    [
        f"postgresql://rcwatch:{SECRET}@127.0.0.1:1/rcwatch",  # nothing listens
        f"host=127.0.0.1 port=1 user=rcwatch password={SECRET} dbname=rcwatch",
    ],
)
def test_a_store_that_does_not_answer_is_one_line_without_the_password(
    dsn: str, command: list[str], workdir: Path
) -> None:
    out = _alerts(workdir, dsn, *command)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("rcwatch: cannot open the alert store postgresql://")
    assert "password=***" in out.stderr or "rcwatch:***@" in out.stderr
    assert "OperationalError" in out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert SECRET not in out.stdout + out.stderr
    assert list(workdir.iterdir()) == []
