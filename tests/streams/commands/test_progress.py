"""The closing summary of run, replay and the demo."""

from __future__ import annotations

from detectors.event import RawEvent
from sinks.metrics import Metrics
from streams.app import build_detection
from streams.commands.progress import format_summary
from streams.pipeline.runner import RunSummary
from streams.pipeline.stages import Pipeline
from streams.settings import Settings
from tests.privatedata import SECRETS, pii_event


def test_updates_are_not_counted_as_alerts() -> None:
    """Issue 20, item 16: the summary counted throttle updates as alerts (10) where the
    alert store, which keeps one row per alert, showed 8."""
    settings = Settings()
    pipeline = Pipeline(settings.scope.build(), build_detection(settings, Metrics()), Metrics())
    # three addresses posted on one user talk page: one alert, then two updates of it
    events = [
        RawEvent(None, pii_event(n, f"mail {SECRETS[0]}", "User talk:Target"), 0) for n in (2, 4, 6)
    ]
    delivered = pipeline.process(events).alerts
    assert len(delivered) == 3 and [a.count for a in delivered] == [1, 2, 3]
    assert sum(pipeline.alerts_by_rule.values()) == 1 and pipeline.alert_updates == 2
    summary = RunSummary(
        events=3,
        alerts=sum(pipeline.alerts_by_rule.values()),
        updates=pipeline.alert_updates,
        alerts_by_rule=pipeline.alerts_by_rule,
    )
    text = format_summary(summary)
    assert "alerts: 1 (and 2 updates of them" in text
    assert "  privacy.email-in-summary: 1" in text.splitlines()
