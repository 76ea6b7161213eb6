"""Same rule, same target, within the cooldown: one alert, updated, escalating."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from detectors.event import RawEvent
from sinks.alert import Alert
from sinks.jsonl import JsonlSink
from sinks.metrics import Metrics
from streams.app import build_detection
from streams.pipeline.stages import Pipeline
from streams.pipeline.throttle import Throttle, ThrottleConfig
from streams.settings import Settings
from tests import scenarios as sc
from tests.sinks.test_jsonl import make_alert


def _apply(t: Throttle, alert: Alert, when: float) -> tuple[Alert, bool, bool]:
    out = t.apply(alert, when)
    assert out is not None, "a new source alert is never a repeat"
    return out


def test_repeats_within_cooldown_update_one_alert() -> None:
    t = Throttle(ThrottleConfig(cooldown_seconds=600, escalate_at=(3, 5)))
    first = make_alert(1)
    out = [_apply(t, dataclasses.replace(make_alert(n), target="User:X"), when=10.0 * n)
           for n in range(1, 7)]  # fmt: skip
    alerts = [a for a, _u, _e in out]
    assert [a.count for a in alerts] == [1, 2, 3, 4, 5, 6]
    assert len({a.id for a in alerts}) == 1, "updates carry the group's id"
    assert len({a.delivery_id for a in alerts}) == 6
    assert [a.severity for a in alerts] == [
        "medium",
        "medium",
        "high",
        "high",
        "critical",
        "critical",
    ]
    assert [u for _a, u, _e in out] == [False, True, True, True, True, True]
    assert alerts[-1].first_event_time == first.event_time


def test_cooldown_and_targets_separate_groups() -> None:
    t = Throttle(ThrottleConfig(cooldown_seconds=600))
    a, _, _ = _apply(t, dataclasses.replace(make_alert(1), target="User:X"), when=0.0)
    b, upd, _ = _apply(t, dataclasses.replace(make_alert(2), target="User:Y"), when=10.0)
    assert not upd and b.id != a.id
    c, upd, _ = _apply(t, dataclasses.replace(make_alert(3), target="User:X"), when=700.0)
    assert not upd and c.count == 1, "a repeat after the cooldown is a new alert"
    state = t.snapshot()
    again = Throttle(ThrottleConfig(cooldown_seconds=600))
    again.restore(state)
    d, upd, _ = _apply(again, dataclasses.replace(make_alert(4), target="User:X"), when=800.0)
    assert upd and d.id == c.id and d.count == 2


async def test_jsonl_sink_keeps_updates_apart_across_restarts(tmp_path: Path) -> None:
    t = Throttle()
    alerts = [
        _apply(t, dataclasses.replace(make_alert(n), target="T"), float(n))[0] for n in (1, 2)
    ]
    sink = JsonlSink("j", tmp_path / "a.jsonl")
    await sink.start()
    await sink.send(alerts)
    await sink.close()
    again = JsonlSink("j", tmp_path / "a.jsonl")
    await again.start()
    assert list(again.delivered_ids()) == [alerts[0].delivery_id, alerts[1].delivery_id]
    assert alerts[1].delivery_id == f"{alerts[0].id}~2"


def test_a_pile_on_pages_once_and_escalates() -> None:
    metrics = Metrics()
    p = Pipeline(Settings().scope.build(), build_detection(Settings(), metrics), metrics)
    attacks = [
        sc.event(title="User talk:Victim", user=f"Troll{i}", added=f"you {w}")
        for i, w in enumerate(["idiot", "moron", "imbecile"])
    ]
    result = p.process([RawEvent(None, d, 0, c) for d, c in attacks])
    insults = [a for a in result.alerts if a.rule == "harassment.personal-attack"]
    assert [a.count for a in insults] == [1, 2, 3]
    assert len({a.id for a in insults}) == 1
    assert insults[-1].severity == "critical" and insults[0].severity == "high"
    assert insults[0].target == "User:Victim"
    value = metrics.registry.get_sample_value
    assert value("rcwatch_alert_updates_total", {"rule": "harassment.personal-attack"}) == 2
    assert value("rcwatch_alert_escalations_total", {"rule": "harassment.personal-attack"}) == 1


def test_the_same_change_counted_twice_is_a_repeat_not_a_new_count() -> None:
    """A re-delivered event (resume overlap, restart) must neither re-page nor escalate."""
    t = Throttle(ThrottleConfig(cooldown_seconds=600, escalate_at=(2,)))
    first = dataclasses.replace(make_alert(1), target="User:X")
    second = dataclasses.replace(make_alert(2), target="User:X")
    assert _apply(t, first, 10.0)[0].count == 1
    for _ in range(10):  # the first change again: not counted
        assert t.apply(first, 10.0) is None
    update, is_update, escalated = _apply(t, second, 20.0)
    assert (update.count, is_update, escalated) == (2, True, True)
    restored = Throttle(ThrottleConfig(cooldown_seconds=600, escalate_at=(2,)))
    restored.restore(t.snapshot())  # the memory of counted changes survives a restart
    assert restored.apply(second, 20.0) is None and restored.apply(first, 10.0) is None
    assert _apply(restored, dataclasses.replace(make_alert(3), target="User:X"), 30.0)[0].count == 3


def test_throttle_state_of_an_older_version_still_restores() -> None:
    t = Throttle()
    t.restore({"version": 1, "groups": [[["r", "w", "T"], ["id-1", 1, 5.0, 5.0, None, "low"]]]})
    update, is_update, _ = _apply(t, dataclasses.replace(make_alert(9), rule="r", wiki="w",
                                                         target="T"), 6.0)  # fmt: skip
    assert is_update and update.id == "id-1" and update.count == 2


def test_the_same_events_in_another_order_give_the_same_deliveries() -> None:
    """Review finding: a resumed connection served two topics' backlogs in another order than
    live, and the restored throttle opened a group under the other alert's id: a fresh
    count-1 alert paged again. Group ids come from the group, not from its first alert."""
    x = dataclasses.replace(make_alert(1), target="User:X")
    y = dataclasses.replace(make_alert(2), target="User:X")

    def deliveries(order: list[Alert]) -> list[str]:
        t = Throttle(ThrottleConfig(cooldown_seconds=600))
        return [_apply(t, a, 30.0)[0].delivery_id for a in order]

    assert deliveries([x, y]) == deliveries([y, x])
