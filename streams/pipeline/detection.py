"""The detection stage: the rule engine plus what a pure engine must not do itself.

- per-rule hit counts (metric ``rcwatch_rule_hits_total{rule}``);
- sampled evaluation cost: every ``profile_every_events``-th event is also evaluated rule
  by rule, each rule alone, and timed (``rcwatch_rule_cost_seconds_total{rule}`` /
  ``rcwatch_rule_cost_samples_total{rule}`` is the mean cost of a rule per event);
- the storm guard: a rule that matches more than ``max_share`` of the last
  ``window_events`` events (and at least ``min_hits``) is muted, reported in the log and in
  ``rcwatch_rule_muted{rule}``, and its further hits are counted, not alerted; a reload
  unmutes it (like AbuseFilter's emergency disable of a runaway filter);
- hot swap: ``swap`` replaces the engine between events, so a reload drops nothing;
- budgets: what the engine cut short on an event (a text over ``MAX_FIELD_CHARS``, a
  recognizer out of candidates) is counted in ``rcwatch_detector_truncated_total`` and
  logged (rate-limited, with the event id, never the text).

``detect`` is ``account(evaluate(...))``. ``evaluate`` is the pure part (the engine and the
extra detectors) and may run in a worker thread, so that a megabyte of hostile text never
holds the event loop; ``account`` is the bookkeeping, always on the loop's thread.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from detectors.base import DetectionContext, Detector, Finding
from detectors.event import RecentChange
from detectors.recognizers.base import Budget
from detectors.rules.engine import RuleEngine
from sinks.metrics import Metrics
from streams.logs import RateLimit

__all__ = ["PROFILE_MAX_CHARS", "Detection", "StormGuard", "StormGuardConfig", "text_size"]

log = logging.getLogger(__name__)

# events with more text than this are never sampled rule by rule (that would multiply the
# cost of an already long evaluation by the number of rules)
PROFILE_MAX_CHARS = 16_384


def text_size(change: RecentChange, ctx: DetectionContext) -> int:
    """Characters of text the rules may read on this event."""
    return (
        len(change.comment)
        + len(change.title or "")
        + len(change.user or "")
        + len(ctx.added_text or "")
        + len(ctx.removed_text or "")
    )


@dataclass(frozen=True)
class StormGuardConfig:
    enabled: bool = True
    window_events: int = field(default=5000, metadata={"min": 10})
    max_share: float = field(default=0.02, metadata={"gt": 0, "max": 1})
    min_hits: int = field(default=25, metadata={"min": 1})


class StormGuard:
    def __init__(self, config: StormGuardConfig) -> None:
        self.config = config
        self.threshold = max(config.min_hits, config.max_share * config.window_events)
        self._hits: dict[str, deque[int]] = {}
        self.muted: dict[str, int] = {}  # rule -> hits in window when muted

    def observe(self, seq: int, rule_ids: Sequence[str]) -> list[str]:
        """Record hits at event ``seq``; returns rules muted by this event."""
        if not self.config.enabled:
            return []
        newly = []
        horizon = seq - self.config.window_events
        for rule in rule_ids:
            if rule in self.muted:
                continue
            q = self._hits.setdefault(rule, deque())
            q.append(seq)
            while q and q[0] <= horizon:
                q.popleft()
            if len(q) > self.threshold:
                self.muted[rule] = len(q)
                newly.append(rule)
        return newly

    def reset(self) -> None:
        self._hits.clear()
        self.muted.clear()


def covered_languages(engine: RuleEngine) -> frozenset[str]:
    """Languages rcwatch can judge abuse in: English (the shipped rule packs and model),
    those the enabled rules name in language conditions, and those a classifier the rules
    use was validated on (``TextClassifier.covered_languages``)."""
    models = frozenset(
        code for model in engine.classifiers.values() for code in model.covered_languages
    )
    return frozenset({"en"}) | engine.languages() | models


class Detection:
    def __init__(
        self,
        engine: RuleEngine,
        metrics: Metrics,
        *,
        extra: Sequence[Detector] = (),
        storm: StormGuardConfig | None = None,
        profile_every_events: int = 1000,
    ) -> None:
        self.metrics = metrics
        self.extra = list(extra)
        self.guard = StormGuard(storm or StormGuardConfig())
        self.profile_every = profile_every_events
        self.events = 0
        self.engine = engine
        self._singles: dict[str, RuleEngine] = {}
        self._quiet = RateLimit(10.0)
        self._install(engine)

    def _install(self, engine: RuleEngine) -> None:
        self.engine = engine
        self._singles = {}
        self.covered = covered_languages(engine)
        self.metrics.rules_loaded.set(len(engine.rules))
        for rule in engine.rules:
            self.metrics.rule_muted.labels(rule.id).set(0)

    def swap(self, engine: RuleEngine) -> None:
        """Use new rules from the next event on; muted rules get another chance."""
        old = {r.id for r in self.engine.rules}
        for rule_id in old - {r.id for r in engine.rules}:
            self.metrics.rule_muted.remove(rule_id)
        self.guard.reset()
        self._install(engine)

    def needs_content(self, change: RecentChange) -> bool:
        return self.engine.needs_content(change)

    def detect(
        self, change: RecentChange, ctx: DetectionContext, seq: int | None = None
    ) -> list[Finding]:
        findings, budget = self.evaluate(change, ctx)
        return self.account(change, ctx, findings, budget, seq)

    def evaluate(self, change: RecentChange, ctx: DetectionContext) -> tuple[list[Finding], Budget]:
        """The pure part: safe to run in a worker thread."""
        budget = Budget()
        findings = self.engine.evaluate(change, ctx, budget=budget)
        for detector in self.extra:
            try:
                findings.extend(detector.detect(change, ctx))
            except Exception:
                budget.exhausted.add(f"error:{detector.name}")
        return findings, budget

    def account(
        self,
        change: RecentChange,
        ctx: DetectionContext,
        findings: list[Finding],
        budget: Budget,
        seq: int | None = None,
    ) -> list[Finding]:
        """Counts, logs, samples and guards one evaluated event (on the loop's thread).
        ``seq``: the event's place in the stream, for the storm guard (the pipeline gives
        it, so the guard's count does not depend on when an event was accounted)."""
        self.events += 1
        if budget.exhausted:
            self._report(change, budget)
        if (
            self.profile_every
            and self.events % self.profile_every == 0
            and text_size(change, ctx) <= PROFILE_MAX_CHARS
        ):
            self._profile(change, ctx)
        return self.guarded(findings, seq)

    def _report(self, change: RecentChange, budget: Budget) -> None:
        m = self.metrics
        truncated = []
        for what in sorted(budget.exhausted):
            if what.startswith("error:"):
                name = what[len("error:") :]
                m.detector_errors.labels(name).inc()
                log.error(
                    "detector failed; event processed without it",
                    extra={"fields": {"detector": name, "event_id": change.meta_id}},
                )
            else:
                truncated.append(what)
                m.detector_truncated.labels(what).inc()
        if truncated:
            suppressed = self._quiet.allow("truncated")
            if suppressed is not None:
                log.warning(
                    "text too large to examine in full; the first part was examined "
                    "(rcwatch_detector_truncated_total)",
                    extra={
                        "fields": {
                            "event_id": change.meta_id,
                            "wiki": change.wiki,
                            "cut_short": ",".join(truncated),
                            "suppressed_since_last": suppressed,
                        }
                    },
                )

    def guarded(self, findings: list[Finding], seq: int | None = None) -> list[Finding]:
        """Count hits and apply the storm guard (for pattern rules' findings too), at the
        event's place in the stream (``seq``; by default, how many were accounted)."""
        if not findings:
            return findings
        m = self.metrics
        rule_ids = [f.rule for f in findings]
        for rule in rule_ids:
            m.rule_hits.labels(rule).inc()
        for rule in self.guard.observe(self.events if seq is None else seq, rule_ids):
            hits = self.guard.muted[rule]
            m.rule_muted.labels(rule).set(1)
            m.rule_mutes.labels(rule).inc()
            log.error(
                "storm guard muted a rule: it matches too large a share of events; "
                "fix it and reload the rules to unmute",
                extra={
                    "fields": {
                        "rule": rule,
                        "hits": hits,
                        "window_events": self.guard.config.window_events,
                    }
                },
            )
        if self.guard.muted:
            kept = []
            for f in findings:
                if f.rule in self.guard.muted:
                    m.rule_muted_hits.labels(f.rule).inc()
                else:
                    kept.append(f)
            return kept
        return findings

    def _profile(self, change: RecentChange, ctx: DetectionContext) -> None:
        m = self.metrics
        for rule in self.engine.rules:
            single = self._singles.get(rule.id)
            if single is None:
                single = self._singles[rule.id] = RuleEngine(
                    [rule], classifiers=self.engine.classifiers
                )
            t0 = time.perf_counter()
            single.evaluate(change, ctx)
            m.rule_cost.labels(rule.id).inc(time.perf_counter() - t0)
            m.rule_cost_samples.labels(rule.id).inc()
