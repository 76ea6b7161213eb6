"""The limits of a listening socket (``sinks.serving``) that the metrics server's tests do
not reach: a handler's deadline (a request body that never arrives) and the cap when every
connection is inside a request. Real sockets against a real server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from sinks.serving import Limits, Listener

LIMITS = Limits(max_connections=2, header_seconds=30, idle_seconds=30, request_seconds=0.5)


@pytest.fixture
async def served() -> AsyncIterator[tuple[Listener, asyncio.Event, list[str]]]:
    release = asyncio.Event()
    closed: list[str] = []

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="done")

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def form(request: web.Request) -> web.Response:
        return web.Response(text=str(len(await request.read())))

    app = web.Application()
    app.router.add_get("/slow", slow)
    app.router.add_post("/form", form)
    app.router.add_get("/ok", ok)
    listener = Listener(app, "127.0.0.1", 0, LIMITS, closed=closed.append)
    await listener.start()
    try:
        yield listener, release, closed
    finally:
        release.set()
        await listener.stop()


async def test_a_request_body_that_never_arrives_gets_408_and_the_connection_closes(
    served: tuple[Listener, asyncio.Event, list[str]],
) -> None:
    listener, _, closed = served
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    try:
        writer.write(b"POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhalf")
        answer = await asyncio.wait_for(reader.read(), 30)  # to the server's close
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408")
    assert closed == ["request_timeout"]


async def test_at_the_cap_with_every_connection_busy_a_new_one_is_refused(
    served: tuple[Listener, asyncio.Event, list[str]],
) -> None:
    listener, release, closed = served
    url = f"http://127.0.0.1:{listener.port}"
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        busy = [asyncio.create_task(_get(http, url + "/slow")) for _ in range(2)]
        while listener.open_connections < 2:
            await asyncio.sleep(0.02)
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        try:
            writer.write(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                answer = await asyncio.wait_for(reader.read(), 30)
            except ConnectionResetError:
                answer = b""  # closed before the 503 was read: refused all the same
        finally:
            writer.close()
        assert answer == b"" or answer.startswith(b"HTTP/1.1 503")
        assert closed == ["refused"]
        release.set()
        assert await asyncio.gather(*busy) == ["done", "done"]
        assert await _get(http, url + "/ok") == "ok"  # room again


async def _get(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url) as r:
        return await r.text()
