"""The local EventStreams server reads ``since`` the way the upstream service's code does.

Upstream (mediawiki-services-eventstreams ``routes/stream.js`` with KafkaSSE, FACTS.md): a
value JavaScript takes for a number stays a string, which the Kafka client's offset lookup
reads as timestamp 0: reading starts at the beginning of what the service holds, not at that
time. Only a date string is a time. A client tested against a server that took epoch
milliseconds as a time would pass here and replay the whole retention against the real one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest

from streams.source.eventstreams import ms_to_iso
from streams.standins.sse_server import EventStreamsServer
from tests.harness import TEST_UA


@pytest.fixture
async def server(sample_events: list[bytes]) -> AsyncIterator[EventStreamsServer]:
    # event-time Kafka timestamps: every event's position is known before it is served
    s = EventStreamsServer(sample_events[:100], clock="event")
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


async def _first(
    server: EventStreamsServer, since: str, then_publish: bytes | None = None
) -> tuple[int, bytes | None]:
    """Status and the data of the first event served for ``?since=``; with
    ``then_publish``, that event is published once the stream has opened."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.url, params={"since": since}, headers={"User-Agent": TEST_UA}) as resp,
    ):
        if resp.status != 200:
            return resp.status, None
        async for line in resp.content:
            if line.startswith(b":ok") and then_publish is not None:
                server.publish([then_publish])
            if line.startswith(b"data: "):
                return 200, line[len(b"data: ") :].rstrip(b"\n")
        return 200, None


async def test_an_iso_time_starts_there(server: EventStreamsServer) -> None:
    at = server.kafka_timestamp(40)
    for since in (ms_to_iso(at), ms_to_iso(at).replace("Z", "+00:00")):
        assert await _first(server, since) == (200, server.topic_events()[40])


@pytest.mark.parametrize("since", ["1", "0", "1e3", " 42 ", "0x10"])
async def test_a_number_starts_at_the_beginning_not_at_that_time(
    server: EventStreamsServer, since: str
) -> None:
    assert await _first(server, since) == (200, server.topic_events()[0])


async def test_epoch_milliseconds_of_a_served_event_still_start_at_the_beginning(
    server: EventStreamsServer,
) -> None:
    """The defect's shape: ``since=<epoch ms>`` meant "from there" to rcwatch."""
    assert await _first(server, str(server.kafka_timestamp(40))) == (
        200,
        server.topic_events()[0],
    )


async def test_a_bad_value_is_400_invalid_timestamp(server: EventStreamsServer) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            server.url, params={"since": "yesterday-ish"}, headers={"User-Agent": TEST_UA}
        ) as resp,
    ):
        assert resp.status == 400
        assert orjson.loads(await resp.read())["type"] == "invalid_timestamp"


@pytest.mark.parametrize("since", ["", "1970-01-01T00:00:00Z"])
async def test_empty_or_a_parsed_zero_is_the_live_end(
    server: EventStreamsServer, since: str
) -> None:
    """Both are false in JavaScript: KafkaSSE assigns the live end (``offset: -1``)."""
    after = b'{"published": "after the connection opened"}'
    assert await _first(server, since, then_publish=after) == (200, after)
