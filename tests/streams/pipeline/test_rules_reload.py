"""Hot reload: a valid change swaps the rules between events; a broken one is refused."""

from __future__ import annotations

import asyncio
from pathlib import Path

from detectors.rules.engine import RuleEngine
from detectors.rules.examples import example_change
from detectors.rules.loader import load_rules
from detectors.rules.model import Example
from sinks.metrics import Metrics
from streams.pipeline.detection import Detection
from streams.pipeline.rules_reload import RulesReloader

RULE = """\
rules:
  - id: words
    title: Words
    category: harassment
    severity: low
    match: {{field: summary, keywords: [{word}]}}
    examples:
      match: [{{summary: {word}}}]
"""


def _setup(tmp_path: Path) -> tuple[Detection, RulesReloader, Metrics]:
    (tmp_path / "r.yaml").write_text(RULE.format(word="idiot"))
    rules, issues = load_rules([tmp_path])
    assert not issues
    metrics = Metrics()
    det = Detection(RuleEngine(rules), metrics, profile_every_events=0)
    return det, RulesReloader([tmp_path], det, metrics, check_seconds=0.05), metrics


def _hits(det: Detection, text: str) -> int:
    return len(det.detect(*example_change(Example(summary=text))))


async def test_file_change_is_picked_up(tmp_path: Path) -> None:
    det, reloader, metrics = _setup(tmp_path)
    task = asyncio.create_task(reloader.run())
    try:
        assert _hits(det, "moron") == 0
        (tmp_path / "r.yaml").write_text(RULE.format(word="moron"))
        for _ in range(100):
            if reloader.reloads:
                break
            await asyncio.sleep(0.02)
        assert _hits(det, "moron") == 1 and _hits(det, "idiot") == 0
        assert (
            metrics.registry.get_sample_value("rcwatch_rules_reloads_total", {"result": "ok"}) == 1
        )
    finally:
        task.cancel()


async def test_broken_file_keeps_the_previous_rules(tmp_path: Path) -> None:
    det, reloader, metrics = _setup(tmp_path)
    (tmp_path / "r.yaml").write_text(RULE.format(word="idiot").replace("keywords", "keywordz"))
    task = asyncio.create_task(reloader.run())
    try:
        reloader.request()  # what SIGHUP does
        for _ in range(100):
            if reloader.failures:
                break
            await asyncio.sleep(0.02)
        assert reloader.failures == 1
        assert _hits(det, "idiot") == 1, "the previous rules are still running"
        assert metrics.registry.get_sample_value("rcwatch_rules_last_reload_ok") == 0
        assert (
            metrics.registry.get_sample_value("rcwatch_rules_reloads_total", {"result": "failed"})
            == 1
        )
    finally:
        task.cancel()


async def test_reload_mid_stream_drops_no_event(tmp_path: Path, sample_events: list[bytes]) -> None:
    """The swap happens between batches: every event is evaluated by the old or the new
    rules, none by neither."""
    from streams.app import build_monitor
    from streams.settings import Settings
    from tests.streams.pipeline.test_runner import FlakySink, ListSource

    det, reloader, metrics = _setup(tmp_path)
    text = RULE.format(word="zebra")  # a word no sample event contains
    swapped_at: list[int] = []

    class SwappingSource(ListSource):
        async def batches(self):  # type: ignore[no-untyped-def]
            async for batch in super().batches():
                if self.produced > 300 and not swapped_at:
                    (tmp_path / "r.yaml").write_text(text)
                    assert reloader.reload()
                    swapped_at.append(self.produced)
                yield batch

    source = SwappingSource(sample_events, batch=25)
    sink = FlakySink()
    monitor = build_monitor(
        Settings(state_dir=str(tmp_path / "state")),
        source,
        metrics=metrics,
        sinks=[sink],
        archive=False,
        detection=det,
    )
    summary = await monitor.run()
    assert swapped_at and summary.events == len(sample_events)
    assert summary.processed + summary.dropped["canary"] == len(sample_events)
    assert _hits(det, "zebra") == 1 and _hits(det, "idiot") == 0
