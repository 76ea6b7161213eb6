"""``rcwatch demo --hold``: after the sample the hold is quiet and its counts exact."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from streams.commands import demo
from streams.commands.monitor import with_metrics_addr
from streams.commands.parser import build_parser
from streams.settings import default_config_path, load_settings
from streams.standins.sse_server import EventStreamsServer


async def test_hold_after_the_sample_warns_of_nothing_and_counts_each_event_once(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Defect (issue 20, item 15): once the sample ended, the idle local stream stalled the
    client every 30 s (a WARNING each time), and each reconnect delivered the last event
    again, counted: 614 events for the 612 served. Now the local server closes connections
    as EventStreams does, the demo's stall timeout is longer than that, and what a resume
    delivers again is recognised. The 15 minutes are shortened here; the rest is the real
    demo, stopped with the operator's Ctrl-C."""
    servers: list[EventStreamsServer] = []

    class Recorded(EventStreamsServer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            servers.append(self)

    monkeypatch.setattr(demo, "EventStreamsServer", Recorded)
    monkeypatch.setattr(demo, "CONNECTION_SECONDS", 0.2)
    # the ratio the demo keeps (a stall only after the routine close), shortened: a stall
    # would come within this test's wait
    monkeypatch.setattr(demo, "STALL_SECONDS", 3.0)
    args = build_parser().parse_args(
        ["demo", "--hold", "--speed", "max", "--state-dir", str(tmp_path / "state"),
         "--metrics-addr", "127.0.0.1:0"]
    )  # fmt: skip
    settings = with_metrics_addr(load_settings(default_config_path()), args.metrics_addr)
    sample = len(demo.load_sample())
    with caplog.at_level(logging.INFO):
        task = asyncio.create_task(demo.run_demo(settings, args))
        deadline = time.monotonic() + 30
        # the sample, then four routine closes of an idle stream, each resumed
        while not (servers and servers[0].connections >= 5):
            assert not task.done(), "the demo ended by itself"
            assert time.monotonic() < deadline, "the local server did not close connections"
            await asyncio.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C
        assert await task == 0
    server = servers[0]
    assert server.served > sample, "a resume delivered events again"
    err = capsys.readouterr().err
    assert f"events: {sample:,} in" in err, err
    assert "duplicate" not in err
    stream = [r for r in caplog.records if r.name == "streams.source.eventstreams"]
    assert not [r.getMessage() for r in stream if r.levelno >= logging.WARNING]
    closes = [r for r in stream if r.getMessage() == "stream closed by the server; reconnecting"]
    assert len(closes) >= 4
