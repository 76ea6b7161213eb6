"""/metrics and /healthz over HTTP, and label values that never carry private data."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest

from detectors.event import RawEvent
from sinks.metrics import Metrics, MetricsServer
from sinks.serving import Limits
from streams.app import build_detection
from streams.pipeline.stages import Pipeline
from streams.settings import Settings
from tests.conftest import wait_for


async def test_endpoints() -> None:
    metrics = Metrics(version="9.9")
    metrics.received("mediawiki.recentchange", "edit", 3)
    state = {"ok": True}
    server = MetricsServer(metrics, "127.0.0.1", 0, lambda: (state["ok"], {"connected": True}))
    await server.start()
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(server.url + "/metrics") as r:
                body = await r.text()
                assert r.status == 200
                assert (
                    'rcwatch_events_received_total{stream="mediawiki.recentchange",type="edit"} 3.0'
                    in body
                )
                assert 'rcwatch_build_info{version="9.9"} 1.0' in body
            async with s.get(server.url + "/healthz") as r:
                assert r.status == 200
                assert (await r.json()) == {"status": "ok", "connected": True}
            state["ok"] = False
            async with s.get(server.url + "/healthz") as r:
                assert r.status == 503 and (await r.json())["status"] == "unhealthy"
    finally:
        await server.stop()


def test_label_values_never_hold_event_content(sample_events: list[bytes]) -> None:
    metrics = Metrics()
    pipeline = Pipeline(Settings().scope.build(), build_detection(Settings(), metrics), metrics)
    result = pipeline.process([RawEvent(None, e, 0) for e in sample_events])
    assert result.alerts
    users = {str(orjson.loads(raw).get("user")) for raw in sample_events}
    seen = set()
    for family in metrics.registry.collect():
        for sample in family.samples:
            for name, value in sample.labels.items():
                if name == "le":  # histogram buckets
                    continue
                seen.add(value)
                # bounded vocabularies only: lower-case identifiers, never free text
                assert re.fullmatch(r"[a-z0-9_.\-]{0,64}", value), (family.name, name, value)
                assert value not in users and "@" not in value
    assert {"privacy.email-in-summary", "privacy", "medium", "canary"} <= seen


# -- the listening socket's limits (sinks.serving), against the real metrics server ------


async def _silent(
    server: MetricsServer, sent: bytes
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(sent)
    await writer.drain()
    return reader, writer


async def _closed_by_server(reader: asyncio.StreamReader) -> bool:
    """Reads until the server closes the connection (bounded by the caller)."""
    try:
        while await reader.read(65536):
            pass
    except ConnectionResetError:
        pass
    return True


async def _dribble(writer: asyncio.StreamWriter) -> None:
    """A slowloris: one more header line every 50 ms, never the end of the headers."""
    while not writer.is_closing():
        writer.write(b"X-More: 1\r\n")
        await asyncio.sleep(0.05)


@pytest.fixture
async def limited() -> AsyncIterator[MetricsServer]:
    limits = Limits(max_connections=8, header_seconds=0.5, idle_seconds=0.5)
    server = MetricsServer(Metrics(), "127.0.0.1", 0, lambda: (True, {}), limits=limits)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_a_client_that_never_finishes_its_request_or_sits_idle_is_closed(
    limited: MetricsServer,
) -> None:
    """Defect: a half-sent request line, or an idle keep-alive connection, was held open
    for as long as the client liked (150 s and more): 300 of them used every descriptor."""
    half = [await _silent(limited, b"GET /metri") for _ in range(3)]
    dribbled = await _silent(limited, b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
    idle = await _silent(limited, b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"200 OK" in await asyncio.wait_for(idle[0].readuntil(b"\r\n"), 10)
    clients = [*half, dribbled, idle]
    dribbling = asyncio.create_task(_dribble(dribbled[1]))  # bytes keep coming: no extension
    try:
        # closed within the deadline (0.5 s): bounded generously, never a fixed sleep
        await asyncio.wait_for(asyncio.gather(*(_closed_by_server(r) for r, _ in clients)), 10)
    finally:
        dribbling.cancel()
        for _, writer in clients:
            writer.close()
    closed = limited.metrics.http_connections_closed
    assert closed.labels("metrics", "header_timeout")._value.get() == 4
    assert closed.labels("metrics", "idle_timeout")._value.get() == 1
    assert limited.open_connections == 0


async def test_connections_past_the_cap_never_keep_a_scrape_out() -> None:
    """Defect: no cap: every connection a client opened was held (and a descriptor with
    it). At the cap, the connection idle the longest makes room; /healthz still answers."""
    limits = Limits(max_connections=8, header_seconds=60, idle_seconds=60)
    server = MetricsServer(Metrics(), "127.0.0.1", 0, lambda: (True, {}), limits=limits)
    await server.start()
    clients = []
    try:
        for _ in range(30):
            clients.append(await _silent(server, b"GET /healthz HT"))
            assert server.open_connections <= 8
        await wait_for(lambda: server.open_connections == 8, 10, "the server to accept them all")
        # the oldest 22 were closed to make room, long before their header deadline
        await asyncio.wait_for(asyncio.gather(*(_closed_by_server(r) for r, _ in clients[:22])), 10)
        async with aiohttp.ClientSession() as s, s.get(server.url + "/healthz") as r:
            assert r.status == 200
        assert server.open_connections <= 8
    finally:
        for _, writer in clients:
            writer.close()
        await server.stop()
    evicted = server.metrics.http_connections_closed.labels("metrics", "evicted")
    assert evicted._value.get() >= 22
