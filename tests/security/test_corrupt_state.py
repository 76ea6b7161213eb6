"""State files that are valid JSON but not what rcwatch wrote never crash a start: they are
set aside (or the part is dropped), counted, and the start goes on.

Review finding: eight hand-made files crashed every start (``since_ms: 10**18``, a numeric
``event_time``, ``state_file: 5``, windows or throttle of the wrong shape, ``seen: [[]]``),
and a throttle group with a text time was restored unchecked and crashed at the first alert.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from detectors.event import RawEvent
from sinks.metrics import Metrics
from streams.source.checkpoint import CheckpointStore
from streams.source.start import resolve_start
from tests.harness import fast_stream_config, make_monitor, metric_total, settings_for

LIVE = (
    '[{"topic":"eqiad.mediawiki.recentchange","partition":0,"timestamp":1777000000000},'
    '{"topic":"codfw.mediawiki.recentchange","partition":0,"offset":-1}]'
)
GOOD = '[{"topic":"eqiad.mediawiki.recentchange","partition":0,"timestamp":1777000000000}]'
ORIGIN = {"streams": "recentchange", "created_at": "x", "started_from": "live end"}


def _checkpoint(**fields: Any) -> dict[str, Any]:
    return {"last_event_id": GOOD, "streams": "recentchange", "event_time": None,
            "updated_at": "2026-05-05T11:17:45.000Z", "state_file": None, **fields}  # fmt: skip


@pytest.mark.parametrize(
    ("file", "content", "kind"),
    [
        ("origin.json", {**ORIGIN, "since_ms": 10**18}, "origin"),
        ("origin.json", {**ORIGIN, "since_ms": True}, "origin"),
        ("checkpoint.json", _checkpoint(last_event_id=LIVE, event_time=5), "checkpoint"),
        ("checkpoint.json", _checkpoint(last_event_id=LIVE, updated_at=5), "checkpoint"),
        ("checkpoint.json", _checkpoint(state_file=5), "checkpoint"),
        ("checkpoint.json", _checkpoint(state_file="../../etc/passwd"), "checkpoint"),
        ("checkpoint.json", [1, 2], "checkpoint"),
    ],
    ids=[
        "since-far-future",
        "since-true",
        "event-time-number",
        "updated-at-number",
        "state-file-number",
        "state-file-path",
        "not-an-object",
    ],
)
def test_a_checkpoint_or_origin_of_the_wrong_shape_is_set_aside(
    tmp_path: Path, file: str, content: Any, kind: str
) -> None:
    (tmp_path / file).write_bytes(orjson.dumps(content))
    metrics = Metrics()
    start = resolve_start(
        CheckpointStore(tmp_path), streams="recentchange", since=None, margin_seconds=1,
        metrics=metrics,
    )  # fmt: skip
    assert start.last_event_id is None and start.since is not None
    assert metric_total(metrics, "rcwatch_state_corrupt", file=kind) == 1
    assert list(tmp_path.glob(f"{file}.corrupt-*")), "the file is kept for inspection"


EMPTY_W = {"version": 2, "now": 0, "groups": [], "editors": [], "removed": [], "evictions": 0}
EMPTY_T = {"version": 2, "groups": []}
WINDOW = {**EMPTY_W, "groups": [["pattern.brigading", "abc", [[1.0, ""]]]]}


@pytest.mark.parametrize(
    "state",
    [
        {"windows": [], "throttle": EMPTY_T, "seen": []},
        {"windows": {**EMPTY_W, "removed": [[1, []]]}, "throttle": EMPTY_T, "seen": []},
        {"windows": EMPTY_W, "throttle": EMPTY_T, "seen": [[]]},
        {"windows": EMPTY_W, "throttle": [], "seen": []},
        {
            "windows": EMPTY_W,
            "seen": [],
            "throttle": {
                "version": 2,
                "groups": [[["r", "w", "k"], ["id", 1, "t", "t", None, "low", {}]]],
            },
        },
        {"windows": WINDOW, "throttle": {"version": 2, "groups": [[["r"], []]]}, "seen": []},
        [1],
    ],
    ids=[
        "windows-a-list",
        "removed-not-a-map",
        "seen-empty-pair",
        "throttle-a-list",
        "throttle-text-time",
        "partial",
        "not-an-object",
    ],
)
def test_pattern_state_of_the_wrong_shape_is_dropped_whole(
    tmp_path: Path, state: Any, sample_events: list[bytes]
) -> None:
    settings = settings_for(tmp_path, fast_stream_config("http://127.0.0.1:9/v2/stream/x"))
    monitor, _, metrics = make_monitor(settings)
    monitor.restore_state(orjson.dumps(state))
    assert monitor.pipeline.windows.size == 0 and monitor.pipeline.throttle.size == 0
    assert metric_total(metrics, "rcwatch_state_corrupt", file="pattern_state") == 1
    # and the first alert of the run does not trip over what was read
    result = monitor.pipeline.process([RawEvent(None, e, 0) for e in sample_events[:61]])
    assert any(a.rule == "privacy.email-in-summary" for a in result.alerts)
