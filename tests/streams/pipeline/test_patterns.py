"""Pattern rules on the real recorded stream: silent on it alone, and each scenario
injected into it detected within its window; window state survives a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from detectors.event import RawEvent
from sinks.metrics import Metrics
from streams.app import build_detection
from streams.pipeline.stages import Pipeline
from streams.settings import Settings
from tests import scenarios as sc


def _pipeline() -> Pipeline:
    metrics = Metrics()
    return Pipeline(Settings().scope.build(), build_detection(Settings(), metrics), metrics)


def _run(events: list[RawEvent], batch: int = 100) -> list[str]:
    p = _pipeline()
    rules = []
    for i in range(0, len(events), batch):
        rules += [a.rule for a in p.process(events[i : i + batch]).alerts]
    return rules


def test_no_pattern_alert_on_the_recorded_stream_alone() -> None:
    fired = _run([RawEvent(None, e, 0) for e in sc.recorded()])
    assert [r for r in fired if r.startswith("pattern.")] == []


@pytest.mark.parametrize(("rule", "scenario"), list(sc.scenarios()), ids=lambda x: str(x)[:30])
def test_each_scenario_is_detected_in_the_recorded_stream(
    rule: str, scenario: list[tuple[bytes, dict[str, object] | None]]
) -> None:
    events = sc.inject(sc.recorded(), scenario)
    fired = _run(events)
    assert rule in fired
    # and only once the scenario is complete: without its last event, nothing
    partial = sc.inject(sc.recorded(), scenario[:-1])
    assert rule not in _run(partial)


def test_window_state_survives_a_restart(tmp_path: Path) -> None:
    """Half the brigade before a restart, half after: still one brigade."""
    import asyncio

    from streams.app import build_monitor
    from streams.source.checkpoint import CheckpointStore
    from tests.streams.pipeline.test_runner import FlakySink

    scenario = dict(sc.scenarios())["pattern.brigading"]
    events = sc.inject(sc.recorded(), scenario, every=800)  # attacks at ~800, ~1600, ~2400
    first, second = events[:1700], events[1700:]

    class Source:
        def __init__(self, items: list[RawEvent]) -> None:
            self.items = items

        async def batches(self):  # type: ignore[no-untyped-def]
            for i in range(0, len(self.items), 50):
                yield [r._replace(sse_id=f"[{i}]") for r in self.items[i : i + 50]]

        def stop(self) -> None:
            pass

    async def run(items: list[RawEvent], sink: FlakySink) -> None:
        store = CheckpointStore(tmp_path)
        cp = store.load()
        monitor = build_monitor(
            Settings(state_dir=str(tmp_path)),
            Source(items),
            metrics=Metrics(),
            sinks=[sink],
            archive=False,
            checkpoint=store,
            streams_name="recentchange",
        )
        if cp is not None:
            monitor.restore_state(store.load_state(cp))
        await monitor.run()

    before, after = FlakySink(), FlakySink()
    asyncio.run(run(first, before))
    assert not any("brigading" in a for a in before.rules)
    asyncio.run(run(second, after))
    assert any("brigading" in a for a in after.rules), after.rules

    # without the saved state the second half alone sees only one attacker
    fresh = FlakySink()
    for f in tmp_path.glob("*"):
        f.unlink()
    asyncio.run(run(second, fresh))
    assert not any("brigading" in a for a in fresh.rules)


def test_a_redelivered_event_is_not_counted_twice_by_a_window() -> None:
    """A resume may deliver an event again that the saved ids no longer cover (a late
    event, a quiet topic's last event): the window must not count it a second time."""
    scenario = dict(sc.scenarios())["pattern.harassment-spree"]
    events = [RawEvent(None, data, 0, content) for data, content in scenario]
    four = events[:-1]
    first = _pipeline()
    assert not [a for a in first.process(four).alerts if a.rule.startswith("pattern.")]
    second = _pipeline()  # restarted: pattern state restored, the saved ids not covering it
    second.windows.restore(first.windows.snapshot())
    second.throttle.restore(first.throttle.snapshot())
    again = second.process(four[-1:]).alerts
    assert "pattern.harassment-spree" not in [a.rule for a in again]
    # a fifth distinct attack still completes the spree
    fifth = second.process(events[-1:]).alerts
    assert "pattern.harassment-spree" in [a.rule for a in fifth]
