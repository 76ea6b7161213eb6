"""Private data at rest: state files are private to the monitor, and keep no name that is
only a key.

Issue 9.8 reproduced: ``state-*.json`` (mode 0644) kept a raw user name holding a phone
number that every alert had redacted.
"""

from __future__ import annotations

import os
from pathlib import Path

from detectors.event import RawEvent
from sinks.metrics import Metrics
from streams.app import build_detection
from streams.pipeline.stages import Pipeline
from streams.settings import Settings
from streams.standins.sse_server import EventStreamsServer
from tests import scenarios as sc
from tests.harness import fast_stream_config, make_monitor, run_until, settings_for

PHONE_USER = "Jane Roe 07700 900123"


def _events() -> list[tuple[bytes, dict[str, object] | None]]:
    """A user whose name holds a phone number edits pages, and (from several IPs) insults
    another user, so that pattern windows (brigading, hounding, sprees) hold groups."""
    out = [sc.event(title="Talk:Some article", user=PHONE_USER, summary="copyedit")]
    out += [
        sc.event(title=f"User talk:{PHONE_USER}", user=f"203.0.113.{i}", added="you idiot")
        for i in range(4)
    ]
    out.append(sc.event(title="Talk:Some article", user="Mallory", added="you are a moron"))
    return out


def test_the_pattern_state_keeps_no_name_that_is_only_a_key() -> None:
    settings = Settings()
    metrics = Metrics()
    pipeline = Pipeline(settings.scope.build(), build_detection(settings, metrics), metrics)
    pipeline.process([RawEvent(None, data, 0, content) for data, content in _events()])
    assert pipeline.windows.size > 0, "the events left state to check"
    state = str(pipeline.windows.snapshot()) + str(pipeline.throttle.snapshot())
    for secret in ("07700", "900123", PHONE_USER, "Jane Roe"):
        assert secret not in state, f"{secret!r} kept in the pattern state"


async def test_state_files_are_created_private(tmp_path: Path) -> None:
    server = EventStreamsServer([data for data, _ in _events()])
    await server.start()
    state = tmp_path / "state"
    try:
        settings = settings_for(state, fast_stream_config(server.url))
        monitor, _, _ = make_monitor(settings)
        await run_until(monitor, lambda: server.caught_up(monitor.tracker.watermark_id))
    finally:
        await server.stop()
    files = [p for p in state.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"checkpoint.json", "origin.json", "alerts.jsonl"}
    assert any(p.name.startswith("state-") for p in files)
    for path in files:
        assert (os.stat(path).st_mode & 0o777) == 0o600, f"{path} is readable by others"
    for path in [state, *(p for p in state.rglob("*") if p.is_dir())]:
        assert (os.stat(path).st_mode & 0o777) == 0o700, f"{path} is open to others"
    for path in files:
        if path.name.startswith("state-"):
            assert b"07700" not in path.read_bytes() and b"Jane Roe" not in path.read_bytes()
