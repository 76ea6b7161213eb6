"""Serving an aiohttp application on a listening socket, with the limits every listening
socket of rcwatch keeps (``/metrics`` and ``/healthz``, the triage page).

aiohttp alone bounds neither how long a client may take to send a request nor how many
connections are open: 300 clients that sent half a request line and stopped held 300 file
descriptors until the process ran out, and checkpoint writes failed. Here:

- **a cap** (``max_connections``): connections are accepted one at a time by this module,
  never more than the cap plus the one being decided on. At the cap, a new connection
  closes the connection idle the longest (still sending its headers, or kept alive between
  requests); when every connection is inside a request, the new one is refused (a 503, then
  closed). So clients that hold connections without asking anything cannot keep a
  well-behaved client (a Prometheus scrape) out, and the rest wait in the kernel's backlog,
  holding no descriptor of ours.
- **a header deadline** (``header_seconds``): a connection must deliver a whole request's
  headers within this of opening, however it dribbles them (slowloris), else it is closed;
- **an idle deadline** (``idle_seconds``): after each request, the next one's headers must
  arrive within this, else the connection is closed; it also bounds how long a response
  may take to reach a client that does not read;
- **a request deadline** (``request_seconds``): a handler, with the time its request body
  takes to arrive, gets this long; then the client gets 408 and the connection is closed.

Each connection closed on these grounds is counted by reason (``header_timeout``,
``idle_timeout``, ``request_timeout``, ``evicted``, ``refused``). Only public aiohttp and
asyncio interfaces are used: the runner's ``Server`` is the protocol factory handed to
``loop.connect_accepted_socket``, and an outermost middleware marks a connection busy while
a handler runs (``request.protocol``). Whether a connection is idle is this module's own
bookkeeping, not aiohttp's keep-alive timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler

__all__ = ["Limits", "Listener"]

log = logging.getLogger(__name__)

_BACKLOG = 128
# accept() failing for want of descriptors or memory: wait, as asyncio's own server does
_RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_REFUSED = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 17\r\n"
    b"Retry-After: 1\r\nConnection: close\r\n\r\ntoo many clients\n"
)


@dataclass(frozen=True)
class Limits:
    """Fixed defaults (no setting): a scrape or a page asks in milliseconds, and a few
    people or scrapers never need 64 connections at once."""

    max_connections: int = 64
    header_seconds: float = 10.0
    idle_seconds: float = 30.0
    request_seconds: float = 30.0


class _Connection:
    __slots__ = ("busy", "idle_since", "timer", "transport")

    def __init__(self, transport: asyncio.Transport, now: float) -> None:
        self.transport = transport
        self.busy = 0  # handlers running on it
        self.idle_since = now
        self.timer: asyncio.TimerHandle | None = None


class Listener:
    """Serves ``app`` on ``host:port`` (port 0: any free port, then read ``port``) within
    ``limits``. ``closed(reason)`` is called for each connection closed by a limit."""

    def __init__(
        self,
        app: web.Application,
        host: str,
        port: int,
        limits: Limits | None = None,
        closed: Callable[[str], None] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.limits = limits or Limits()
        self._closed = closed
        # outermost, so that it sees every request and its deadline covers every handler
        app.middlewares.insert(0, self._track)
        # aiohttp's own keep-alive timer, a backstop behind this module's deadlines
        backstop = 2 * max(self.limits.header_seconds, self.limits.idle_seconds)
        # lingering: how long the unread rest of a body is read after a response (10 s in
        # aiohttp) before the connection closes; a client that stalls gets 2 s, not 10
        self._runner = web.AppRunner(
            app, access_log=None, keepalive_timeout=backstop, lingering_time=2.0
        )
        self._sockets: list[socket.socket] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._connections: dict[object, _Connection] = {}  # aiohttp's protocol -> its state
        self._resource_logged = 0.0

    @property
    def open_connections(self) -> int:
        self._prune()
        return len(self._connections)

    async def start(self) -> None:
        await self._runner.setup()
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(
                self.host, self.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
            for family, _, _, _, address in dict.fromkeys(infos):
                sock = socket.create_server(address, family=family, backlog=_BACKLOG)
                sock.setblocking(False)
                self._sockets.append(sock)
        except BaseException:
            await self.stop()
            raise
        if self.port == 0 and self._sockets:
            self.port = self._sockets[0].getsockname()[1]
        self._tasks = [asyncio.create_task(self._accept(s)) for s in self._sockets]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for sock in self._sockets:
            sock.close()
        self._sockets = []
        for conn in self._connections.values():
            if conn.timer is not None:
                conn.timer.cancel()
        await self._runner.cleanup()  # ends the requests in progress, closes connections
        for conn in self._connections.values():
            conn.transport.abort()
        self._connections.clear()

    # -- accepting -----------------------------------------------------------------------

    async def _accept(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        while True:
            try:
                client, _ = await loop.sock_accept(sock)
            except (ConnectionAbortedError, InterruptedError):
                continue
            except OSError as exc:
                if exc.errno not in _RESOURCE_ERRORS:
                    raise
                self._log_resources(exc)
                await asyncio.sleep(1.0)
                continue
            if self.open_connections >= self.limits.max_connections and not self._evict():
                self._count("refused")
                with contextlib.suppress(OSError):
                    client.send(_REFUSED)
                client.close()
                continue
            try:
                transport, protocol = await loop.connect_accepted_socket(server, client)
            except OSError:
                client.close()
                continue
            conn = _Connection(transport, loop.time())
            self._connections[protocol] = conn
            conn.timer = loop.call_later(
                self.limits.header_seconds, self._expire, protocol, "header_timeout"
            )

    def _prune(self) -> None:
        gone = [p for p, c in self._connections.items() if c.transport.is_closing()]
        for protocol in gone:
            conn = self._connections.pop(protocol)
            if conn.timer is not None:
                conn.timer.cancel()

    def _evict(self) -> bool:
        """Close the connection idle the longest, to make room; False when all are busy."""
        idle = [(c.idle_since, p) for p, c in self._connections.items() if not c.busy]
        if not idle:
            return False
        _, protocol = min(idle, key=lambda pair: pair[0])
        self._close(protocol, "evicted")
        return True

    def _expire(self, protocol: object, reason: str) -> None:
        conn = self._connections.get(protocol)
        if conn is None or conn.busy:
            return
        conn.timer = None
        self._close(protocol, reason)

    def _close(self, protocol: object, reason: str) -> None:
        conn = self._connections.pop(protocol)
        if conn.timer is not None:
            conn.timer.cancel()
        if not conn.transport.is_closing():
            self._count(reason)
        conn.transport.abort()  # close() would wait for a client that never reads

    def _count(self, reason: str) -> None:
        if self._closed is not None:
            self._closed(reason)

    def _log_resources(self, exc: OSError) -> None:
        now = time.monotonic()
        if now - self._resource_logged >= 60:
            self._resource_logged = now
            log.warning(
                "cannot accept connections: out of resources; retrying",
                extra={"fields": {"port": self.port, "error": exc.strerror}},
            )

    # -- every request -------------------------------------------------------------------

    @web.middleware
    async def _track(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        conn = self._connections.get(request.protocol)
        if conn is not None:
            conn.busy += 1
            if conn.timer is not None:
                conn.timer.cancel()
                conn.timer = None
        deadline = asyncio.timeout(self.limits.request_seconds)
        try:
            async with deadline:
                return await handler(request)
        except TimeoutError:
            if not deadline.expired():
                raise
            self._count("request_timeout")
            late = web.HTTPRequestTimeout(text="the request took too long")
            late.force_close()
            raise late from None
        finally:
            if conn is not None:
                conn.busy -= 1
                conn.idle_since = loop.time()
                if not conn.busy and request.protocol in self._connections:
                    conn.timer = loop.call_later(
                        self.limits.idle_seconds, self._expire, request.protocol, "idle_timeout"
                    )
