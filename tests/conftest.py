"""Shared fixtures: recorded events, the local EventStreams server, a monitor harness."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from streams.demo import load_sample
from streams.sse_server import EventStreamsServer

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_data(*parts: str) -> Path:
    """A file under ../shared/data, or skip the test with a clear message."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not available (the shared data directory is absent)")
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
