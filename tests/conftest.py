"""Shared fixtures: recorded events, the local EventStreams server, a monitor harness."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from streams.commands.demo import load_sample
from streams.standins.sse_server import EventStreamsServer

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_data(*parts: str) -> Path:
    """A file under ../shared/data, or skip the test with a clear message (fail instead
    with ``RCWATCH_REQUIRE_SHARED_DATA=1``, as CI sets: its clone has the data beside it)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        message = f"{path} is not available (the shared data directory is absent)"
        if os.environ.get("RCWATCH_REQUIRE_SHARED_DATA") == "1":
            pytest.fail(f"{message} [RCWATCH_REQUIRE_SHARED_DATA=1]")
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def sample_events() -> list[bytes]:
    """The bundled demo sample: 600 recorded events plus 7 documented synthetic ones."""
    return load_sample()


@pytest.fixture
async def es_server(sample_events: list[bytes]) -> AsyncIterator[EventStreamsServer]:
    server = EventStreamsServer(sample_events)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


REPO = Path(__file__).resolve().parents[1]


class Processes:
    """``rcwatch`` child processes owned by one test: every one is killed (and reaped) when
    the test ends, whatever the outcome. Their stderr goes to a file, not a pipe, so a
    chatty child can never block on a full pipe."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[tuple[asyncio.subprocess.Process, Path]] = []

    async def rcwatch(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        stdout: Path | None = None,
        new_session: bool = False,
    ) -> asyncio.subprocess.Process:
        """``stdout``: a file the process's standard output goes to (else discarded);
        ``new_session``: its own process group, for a signal to the whole group."""
        log = self.logs / f"rcwatch-{len(self.started)}.log"
        with log.open("wb") as err, (stdout or Path(os.devnull)).open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "streams", *args,
                cwd=REPO,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=new_session,
            )  # fmt: skip
        self.started.append((proc, log))
        return proc

    def stderr(self, proc: asyncio.subprocess.Process) -> str:
        return next(log for p, log in self.started if p is proc).read_text(errors="replace")

    async def kill_all(self) -> None:
        for proc, _ in self.started:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()


@pytest.fixture
async def processes(tmp_path: Path) -> AsyncIterator[Processes]:
    owned = Processes(tmp_path)
    try:
        yield owned
    finally:
        await owned.kill_all()


async def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll a condition (never a fixed sleep); fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def _tmpfs(mount: Path, options: str) -> Iterator[Path]:
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({made.stderr.strip()}): needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs, to fill up for real (a full disk cannot be faked faithfully: the
    kernel decides how much of a write lands). Root only: skipped with a message otherwise.
    Unmounted in every outcome."""
    yield from _tmpfs(tmp_path / "tmpfs", "size=256k")


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A read-only file system (even root cannot write there). Unmounted in every outcome."""
    yield from _tmpfs(tmp_path / "read-only", "ro,size=64k")


def fill_up(directory: Path) -> Path:
    """Fill the file system holding ``directory`` (a filler file; delete it to free)."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)
    return filler


POSTGRES_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
def postgres_db() -> Iterator[str]:
    """A fresh database on the machine's PostgreSQL (trust auth on 127.0.0.1), dropped when
    the test ends, whatever the outcome; its DSN."""
    import uuid

    import psycopg

    name = f"rcwatch_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
