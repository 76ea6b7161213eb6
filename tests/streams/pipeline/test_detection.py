"""Storm guard, per-rule metrics and sampled cost in the detection stage."""

from __future__ import annotations

from pathlib import Path

from detectors.rules.engine import RuleEngine
from detectors.rules.examples import example_change
from detectors.rules.loader import load_rules
from detectors.rules.model import Example
from sinks.metrics import Metrics
from streams.pipeline.detection import Detection, StormGuard, StormGuardConfig

RULES = """\
rules:
  - id: noisy
    title: Matches everything with a summary
    category: harassment
    severity: low
    match: {field: summary, regex: '.'}
    examples:
      match: [{summary: x}]
  - id: rare
    title: Rare
    category: harassment
    severity: low
    match: {field: summary, keywords: [idiot]}
    examples:
      match: [{summary: idiot}]
"""


def _engine(tmp_path: Path) -> RuleEngine:
    (tmp_path / "r.yaml").write_text(RULES)
    rules, issues = load_rules([tmp_path])
    assert not issues
    return RuleEngine(rules)


def test_storm_guard_mutes_a_runaway_rule_and_a_reload_unmutes_it(tmp_path: Path) -> None:
    metrics = Metrics()
    cfg = StormGuardConfig(window_events=100, max_share=0.1, min_hits=5)
    det = Detection(_engine(tmp_path), metrics, storm=cfg, profile_every_events=0)
    alerted = 0
    for i in range(300):
        change, ctx = example_change(Example(summary="idiot" if i % 50 == 0 else "fine"))
        alerted += sum(f.rule == "noisy" for f in det.detect(change, ctx))
    assert alerted == 10, "the hit that takes it over 10 in the window mutes it"
    assert "noisy" in det.guard.muted and "rare" not in det.guard.muted
    value = metrics.registry.get_sample_value
    assert value("rcwatch_rule_muted", {"rule": "noisy"}) == 1
    assert value("rcwatch_rule_hits_total", {"rule": "noisy"}) == 300
    assert value("rcwatch_rule_muted_hits_total", {"rule": "noisy"}) == 290
    assert value("rcwatch_rule_hits_total", {"rule": "rare"}) == 6
    det.swap(_engine(tmp_path))
    assert value("rcwatch_rule_muted", {"rule": "noisy"}) == 0
    change, ctx = example_change(Example(summary="again"))
    assert [f.rule for f in det.detect(change, ctx)] == ["noisy"]


def test_guard_window_forgets_old_hits() -> None:
    guard = StormGuard(StormGuardConfig(window_events=10, max_share=0.2, min_hits=1))
    muted = [r for seq in range(0, 100, 5) for r in guard.observe(seq, ["steady"])]
    assert muted == [], "one hit every 5 events is 2 per window: at the threshold, not over"
    assert guard.observe(100, ["steady"]) == [] and guard.observe(101, ["steady"]) == ["steady"]


def test_sampled_cost_per_rule(tmp_path: Path) -> None:
    metrics = Metrics()
    det = Detection(_engine(tmp_path), metrics, profile_every_events=10)
    for _ in range(100):
        det.detect(*example_change(Example(summary="fine")))
    samples = metrics.registry.get_sample_value("rcwatch_rule_cost_samples_total", {"rule": "rare"})
    cost = metrics.registry.get_sample_value("rcwatch_rule_cost_seconds_total", {"rule": "rare"})
    assert samples == 10 and cost is not None and cost > 0
