"""The processing steps, in two stages around the one thing that may wait: content.

``prepare`` (per batch, in stream order, synchronous):
    decode -> de-duplicate -> scope -> detection, for every event that does not need the
    text an edit added. Events in scope of a rule that reads added or removed text are
    marked for fetching (unless the record already carries the text, as an enriched
    archive does); the runner fetches them concurrently.

Events with a lot of text (``thread_min_chars`` and more: a megabyte added to a talk page)
are not evaluated inline: the runner evaluates them in a worker thread, so the event loop
(the stream, ``/healthz``, the sinks) never waits for a long evaluation.

``complete`` (per batch, strictly in stream order, once its fetches are done):
    detection of the fetched events -> archive -> pattern rules (windows, page memory)
    -> alert builder -> throttle. The runner then delivers the alerts and marks the batch
    done. Keeping this stage in order makes windows, throttle counts and the checkpoint
    exact and deterministic, while fetching and the detection of events that need no
    content run ahead.

Nothing is dropped without a metric: every event is counted as received or dropped with a
reason, every content miss with its reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from detectors.base import EMPTY_CONTEXT, DetectionContext, Finding
from detectors.event import MalformedEvent, RawEvent, RecentChange, decode_event
from detectors.language import event_language, language_label
from detectors.recognizers.base import Budget
from detectors.windows import WindowStore, text_fingerprints
from sinks.alert import Alert
from sinks.archive import EventArchive
from sinks.dedup import RecentIds
from sinks.metrics import Metrics
from streams.fetch.content import WIKIMEDIA_HOSTS, Content
from streams.fetch.wikihosts import WikiHosts
from streams.logs import RateLimit
from streams.pipeline.alerting import build_alerts
from streams.pipeline.detection import Detection, text_size
from streams.pipeline.scope import Scope
from streams.pipeline.throttle import Throttle

if TYPE_CHECKING:
    from streams.pipeline.parallel import DetectionPool

__all__ = [
    "BatchResult", "BatchWork", "EventWork", "Pipeline", "PooledEvent", "PooledResult",
    "evaluate_event", "evaluate_record",
]  # fmt: skip

# what a worker process answers for one in-scope event (streams.pipeline.parallel): its
# findings, what ran out of budget, and the fingerprints of its added and removed text
# (None when it had no text)
PooledResult = tuple[list[Finding], tuple[str, ...], tuple[frozenset[str], frozenset[str]] | None]
# and for every event of a batch: the event decoded (without its raw object, which
# nothing after decoding reads) or why it is malformed, and the answer when in scope
PooledEvent = tuple[RecentChange | str, PooledResult | None]
_NOTHING: PooledResult = ([], (), None)

log = logging.getLogger(__name__)

_EXPIRE_EVERY_EVENTS = 10_000
_RESUME_IDS_MAX = 20_000


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class EventWork:
    raw: RawEvent
    change: RecentChange | None = None  # None: malformed (archived, nothing else)
    in_scope: bool = False
    findings: list[Finding] | None = None  # None: waiting for content or a worker thread
    content: Content | None = None
    fetch: asyncio.Future[Content] | None = None
    deferred: bool = False  # detection left to stage 2 without a fetch (too much text)
    resolved: bool = False  # content taken from the fetch and counted
    # personal-data fingerprints of the added and removed text, when worked out off the
    # loop with the detection (pattern rules and page memory need them)
    fingerprints: tuple[frozenset[str], frozenset[str]] | None = None
    # its place among the events in scope, in stream order (the storm guard counts by it)
    seq: int = 0


@dataclass
class BatchWork:
    events: list[EventWork] = field(default_factory=list)
    sse_id: str | None = None
    seq: int = -1
    # events the runner holds for this batch (backpressure), counted at stage 1
    held: int = 1
    # with a worker pool: the batch as read, and the workers' answer for it (stage 2)
    batch: list[RawEvent] = field(default_factory=list)
    pooled: Future[list[PooledEvent]] | None = None

    @property
    def fetches(self) -> list[asyncio.Future[Content]]:
        return [e.fetch for e in self.events if e.fetch is not None]


@dataclass
class BatchResult:
    alerts: list[Alert] = field(default_factory=list)
    processed: int = 0
    last_event_dt: str | None = None
    last_event_time: float | None = None
    received_ns: int | None = None  # receive time of the batch's first event


def content_from_record(d: dict[str, object]) -> Content:
    """The ``content`` of an enriched archive line, validated."""
    status = d.get("status")
    if status not in ("ok", "missing", "failed", "skipped"):
        return Content("failed", reason="bad_record")
    added, removed, reason = d.get("added"), d.get("removed"), d.get("reason")
    return Content(
        status,
        added if isinstance(added, str) else None,
        removed if isinstance(removed, str) else None,
        reason if isinstance(reason, str) else None,
    )


def content_context(content: Content | None) -> DetectionContext:
    if content is None or content.status != "ok":
        return EMPTY_CONTEXT
    return DetectionContext(added_text=content.added, removed_text=content.removed)


def evaluate_event(
    detection: Detection, change: RecentChange, ctx: DetectionContext
) -> tuple[list[Finding], Budget, tuple[frozenset[str], frozenset[str]] | None]:
    """Everything about one event that reads its whole text: the rules, and the
    fingerprints the page memory and pattern rules need (when there are pattern rules).
    Pure: a worker thread, a worker process or a scale-out fetch worker runs it, and the
    ordered stage takes the answer through ``Detection.account``."""
    findings, budget = detection.evaluate(change, ctx)
    fps = None
    if detection.engine.pattern_rules:
        # a budget of their own, not reported: the windows work them out unreported when
        # an event is evaluated inline, and the metrics must not depend on where it was
        fps = text_fingerprints(change, ctx, Budget())
    return findings, budget, fps


def evaluate_record(
    detection: Detection, scope: Scope, change: RecentChange, record: dict[str, Any] | None
) -> PooledResult | None:
    """The rules' answer for one decoded event, as a worker hands it on (a replay's worker
    process, a scale-out fetch worker): None when the event is not in scope (a canary, or
    the scope refuses it), the fingerprints only when it had text. ``record``: its text,
    as an enriched record carries it."""
    if change.domain == "canary" or not scope.accepts(change):
        return None
    ctx = content_context(content_from_record(record) if record is not None else None)
    findings, budget, fps = evaluate_event(detection, change, ctx)
    if not (ctx.added_text or ctx.removed_text):
        fps = None  # nothing to fingerprint: the taker knows it without a transfer
    return findings, tuple(sorted(budget.exhausted)), fps


class Pipeline:
    def __init__(
        self,
        scope: Scope,
        detection: Detection,
        metrics: Metrics,
        *,
        archive: EventArchive | None = None,
        dedup_capacity: int = 50_000,
        resume_dedup_seconds: float = 15.0,
        windows: WindowStore | None = None,
        throttle: Throttle | None = None,
        fetch_content: bool = False,
        clock: Callable[[], str] = utc_now_iso,
        hosts: WikiHosts | None = None,
        thread_min_chars: int | None = None,
    ) -> None:
        self.scope = scope
        self.detection = detection
        self.metrics = metrics
        self.archive = archive
        self.windows = windows or WindowStore()
        self.throttle = throttle or Throttle()
        self.fetch_content = fetch_content
        # None: every event is evaluated inline (tests, backtests)
        self.thread_min_chars = thread_min_chars
        self.hosts = hosts or WikiHosts(WIKIMEDIA_HOSTS)  # alert links point only at these
        self._recent = RecentIds(dedup_capacity)
        # (event id, event time) of completed events, newest last: the ids a resume can
        # re-deliver are saved with the checkpoint (``resume_ids``)
        self._completed: deque[tuple[str, float]] = deque(maxlen=_RESUME_IDS_MAX)
        self.resume_dedup_seconds = resume_dedup_seconds
        self._clock = clock
        self._quiet = RateLimit(5.0)
        self.alerts_by_rule: Counter[str] = Counter()  # new alerts, not their updates
        self.alert_updates = 0  # repeats delivered as updates of an alert (count > 1)
        self.dropped: Counter[str] = Counter()
        self.events = 0
        self.processed = 0
        self._since_expiry = 0
        self._evictions_seen = 0
        self._scoped = 0  # events in scope so far (their seq)
        # replays and backtests: the rules run in worker processes (streams.pipeline.parallel)
        self.pool: DetectionPool | None = None

    # -- stage 1 ----------------------------------------------------------------------

    def prepare(self, batch: Sequence[RawEvent]) -> BatchWork:
        """Stage 1 for one batch. With a worker pool, the batch is only handed to the
        workers here (decoding and the rules run there); ``apply_pooled`` does the rest
        in stage 2, in stream order, exactly as below."""
        if self.pool is not None:
            work = BatchWork(batch=list(batch), held=len(batch) or 1)
            for raw in batch:
                if raw.sse_id is not None:
                    work.sse_id = raw.sse_id
            work.pooled = self.pool.submit([(raw.data, raw.content) for raw in batch])
            self.events += len(batch)
            return work
        work = BatchWork()
        self._prepare(work, batch, None)
        work.held = len(work.events) or 1
        self.events += len(batch)
        return work

    def apply_pooled(self, work: BatchWork, results: list[PooledEvent]) -> None:
        """The worker pool's answers for a batch (its events decoded, and the rules'
        findings on those in scope), taken in stream order through the same steps as an
        evaluation in this process: de-duplication, scope, ``Detection.account``."""
        work.pooled = None
        self._prepare(work, work.batch, results)
        work.batch = []

    def _prepare(
        self, work: BatchWork, batch: Sequence[RawEvent], pooled: list[PooledEvent] | None
    ) -> None:
        scope_accepts = self.scope.accepts
        recent_add = self._recent.add
        received: Counter[tuple[str | None, str | None, str | None]] = Counter()
        dropped = self.dropped
        before = dropped.copy()
        detection = self.detection
        archived_content = 0
        upstream: Counter[str] = Counter()  # counted once a batch, not once an event
        for i, raw in enumerate(batch):
            if raw.sse_id is not None:
                work.sse_id = raw.sse_id
            answer = None
            change: RecentChange | MalformedEvent
            if pooled is None:
                try:
                    change = decode_event(raw.data)
                except MalformedEvent as exc:
                    change = exc
            else:
                decoded, answer = pooled[i]
                change = MalformedEvent(decoded) if isinstance(decoded, str) else decoded
            if isinstance(change, MalformedEvent):
                dropped["malformed"] += 1
                self._log_malformed(raw, change.reason)
                work.events.append(EventWork(raw))
                continue
            if change.meta_id is not None and not recent_add(change.meta_id):
                dropped["duplicate"] += 1
                continue
            received[(change.stream, change.type, change.server_name)] += 1
            item = EventWork(raw, change)
            work.events.append(item)
            if change.domain == "canary":
                dropped["canary"] += 1
                continue
            if not scope_accepts(change):
                dropped["filtered"] += 1
                continue
            item.in_scope = True
            self._scoped += 1
            item.seq = self._scoped
            if raw.content is not None:  # an enriched archive carries the text
                item.content = content_from_record(raw.content)
                archived_content += item.content.status == "ok"
            if pooled is None and raw.evaluated is not None:  # a scale-out worker's answer
                digest, *given = raw.evaluated
                if digest == detection.engine.digest:
                    answer = (given[0], given[1], given[2])
                    upstream["used"] += 1
                else:  # other rules answered it (a reload on one side): evaluated here
                    upstream["rules_differ"] += 1
            if pooled is not None or answer is not None:  # evaluated by a worker process
                findings, exhausted, fps = answer or _NOTHING
                budget = Budget()
                if exhausted:
                    budget.exhausted.update(exhausted)
                item.fingerprints = fps
                item.findings = detection.account(
                    change, content_context(item.content), list(findings), budget, item.seq
                )
            elif raw.content is not None:
                if self._too_big(change, content_context(item.content)):
                    item.deferred = True  # the runner evaluates it off the loop
                else:
                    item.findings = detection.detect(
                        change, content_context(item.content), item.seq
                    )
            elif self.fetch_content and detection.needs_content(change):
                pass  # the runner starts the fetch; detection waits for it
            elif self._too_big(change, EMPTY_CONTEXT):
                item.deferred = True
            else:
                item.findings = detection.detect(change, EMPTY_CONTEXT, item.seq)
        m = self.metrics
        for (stream, ctype, server), n in received.items():
            m.received(stream, ctype, n, server)
        for reason, n in (dropped - before).items():
            m.events_dropped.labels(reason).inc(n)
        if archived_content:
            m.content_events.labels("archived").inc(archived_content)
        for outcome, n in upstream.items():
            m.upstream_evaluations.labels(outcome).inc(n)

    def needs_fetch(self, item: EventWork) -> bool:
        return item.in_scope and item.findings is None and item.fetch is None and not item.deferred

    def _too_big(self, change: RecentChange, ctx: DetectionContext) -> bool:
        limit = self.thread_min_chars
        return limit is not None and text_size(change, ctx) >= limit

    def awaiting_detection(self, item: EventWork) -> DetectionContext | None:
        """For stage 2: the context of an event still to be evaluated (its content taken
        from the fetch and counted), or None when it has findings already."""
        if not item.in_scope or item.findings is not None or item.change is None:
            return None
        if not item.resolved:
            item.resolved = True
            if not item.deferred:
                fetch = item.fetch
                if fetch is not None and fetch.done() and not fetch.cancelled():
                    item.content = fetch.result()
                m = self.metrics
                if item.content is None:  # the fetch was cancelled (shutdown)
                    m.content_events.labels("missed").inc()
                    m.content_misses.labels("cancelled").inc()
                elif item.content.status == "skipped":
                    m.content_events.labels("skipped").inc()
                elif item.content.status != "ok":
                    m.content_events.labels("missed").inc()  # its reason: the fetcher's
        return content_context(item.content)

    def offload(self, item: EventWork, ctx: DetectionContext) -> bool:
        """Whether this event's evaluation belongs in a worker thread."""
        return item.change is not None and self._too_big(item.change, ctx)

    def evaluate_off_loop(
        self, change: RecentChange, ctx: DetectionContext
    ) -> tuple[list[Finding], Budget, tuple[frozenset[str], frozenset[str]] | None]:
        """Everything about one event that reads its whole text (``evaluate_event``).
        Pure: the runner calls it in a worker thread."""
        return evaluate_event(self.detection, change, ctx)

    # -- stage 2 ----------------------------------------------------------------------

    def complete(self, work: BatchWork) -> BatchResult:
        if work.pooled is not None:  # not taken by the runner yet: wait for the workers
            self.apply_pooled(work, work.pooled.result())
        result = BatchResult()
        if work.events:
            result.received_ns = work.events[0].raw.recv_ns
        m = self.metrics
        archive = self.archive
        windows = self.windows
        languages: Counter[str | None] = Counter()
        last: RecentChange | None = None
        completed = self._completed
        for item in work.events:
            change = item.change
            if change is None:
                if archive is not None:
                    archive.append(item.raw.sse_id, None, item.raw.data, item.raw.recv_ns, None)
                continue
            when = change.event_time or 0.0
            if change.meta_id is not None:
                completed.append((change.meta_id, when))
            pending = self.awaiting_detection(item)
            if pending is not None:  # fetched (or deferred): evaluate now, inline
                item.findings = self.detection.detect(change, pending, item.seq)
            if archive is not None:
                content = item.content
                stored = (
                    {"status": content.status, "added": content.added,
                     "removed": content.removed, "reason": content.reason}
                    if content is not None and content.status != "skipped" else None
                )  # fmt: skip
                archive.append(
                    item.raw.sse_id, change.meta_id, item.raw.data, item.raw.recv_ns, stored
                )
            if not item.in_scope:
                continue
            last = change
            result.processed += 1
            ctx = content_context(item.content)
            if ctx.added_text or change.comment:
                languages[event_language(change, ctx)] += 1
            findings = item.findings or []
            if item.raw.patterns is not None:  # windows kept upstream (partitioned)
                if item.raw.patterns:
                    known = self._known_patterns(item.raw.patterns)
                    findings = findings + self.detection.guarded(known, item.seq)
            elif self.detection.engine.pattern_rules:
                fps = item.fingerprints
                pctx = windows.context_for(change, ctx, findings, fps[0] if fps else None)
                candidates = self.detection.engine.evaluate_patterns(change, pctx)
                if candidates:
                    fired = windows.observe(
                        change, pctx, candidates, self.detection.engine.pattern_rules, when
                    )
                    if fired:
                        findings = findings + self.detection.guarded(fired, item.seq)
                windows.remember(change, ctx, when, findings, fps[1] if fps else None)
                self._since_expiry += 1
                if self._since_expiry >= _EXPIRE_EVERY_EVENTS:
                    self._since_expiry = 0
                    windows.expire(self.detection.engine.pattern_rules)
            if findings:
                for alert in build_alerts(change, ctx, findings, self._clock(), self.hosts):
                    throttled = self.throttle.apply(alert, when)
                    if throttled is None:  # this rule on this change was counted already
                        m.alerts_repeated.labels(alert.rule).inc()
                        continue
                    delivered, update, escalated = throttled
                    result.alerts.append(delivered)
                    if update:  # a repeat folded into an alert counted already
                        self.alert_updates += 1
                    else:
                        self.alerts_by_rule[alert.rule] += 1
                    m.alerts.labels(alert.rule, alert.category, delivered.severity).inc()
                    if update:
                        m.alert_updates.labels(alert.rule).inc()
                    if escalated:
                        m.alert_escalations.labels(alert.rule).inc()
        m.events_processed.inc(result.processed)
        covered = self.detection.covered
        for lang, n in languages.items():
            judged = "yes" if lang in covered else "no"
            m.events_by_language.labels(language_label(lang), judged).inc(n)
        m.window_keys.set(windows.size)
        if windows.evictions > self._evictions_seen:
            m.window_evictions.inc(windows.evictions - self._evictions_seen)
            self._evictions_seen = windows.evictions
        self.processed += result.processed
        if last is not None:
            result.last_event_dt = last.dt
            result.last_event_time = last.event_time
        return result

    def _known_patterns(self, fired: Sequence[Finding]) -> list[Finding]:
        """The window stages' findings of the pattern rules in force here: one this
        process's rules no longer have (a reload here, not yet upstream) is counted and
        left out, and a rule name no rules file gave never becomes a metric label."""
        known = self.detection.engine.pattern_rules
        kept = [f for f in fired if f.rule in known]
        if len(kept) < len(fired):
            self.metrics.upstream_evaluations.labels("pattern_rule_unknown").inc(
                len(fired) - len(kept)
            )
        return kept

    def resume_ids(self) -> list[list[object]]:
        """[event id, event time] of the completed events a resume may deliver again: those
        within ``resume_dedup_seconds`` of the newest (the resume overlap, and topics
        resumed by time from a live-end position). Saved with the checkpoint."""
        if not self._completed:
            return []
        horizon = max(t for _, t in self._completed) - self.resume_dedup_seconds
        return [[i, t] for i, t in self._completed if t >= horizon]

    def restore_resume_ids(self, entries: object) -> None:
        """The ids saved with the checkpoint; ValueError (nothing changed) for anything
        that is not a list of [id, time] pairs."""
        if not isinstance(entries, list):
            raise ValueError("saved event ids are not a list")
        pairs = []
        for entry in entries:
            if not (isinstance(entry, list) and len(entry) == 2):
                raise ValueError("a saved event id is not an [id, time] pair")
            event_id, when = entry
            if not isinstance(event_id, str) or isinstance(when, bool):
                raise ValueError("a saved event id is not an [id, time] pair")
            if not isinstance(when, (int, float)):
                raise ValueError("a saved event id is not an [id, time] pair")
            pairs.append((event_id, float(when)))
        for event_id, when in pairs:
            self._recent.add(event_id)
            self._completed.append((event_id, when))

    def process(self, batch: Sequence[RawEvent]) -> BatchResult:
        """Both stages at once, without fetching (tests, benchmarks, simple callers)."""
        return self.complete(self.prepare(batch))

    def _log_malformed(self, raw: RawEvent, reason: str) -> None:
        suppressed = self._quiet.allow("malformed")
        if suppressed is not None:
            log.warning(
                "malformed event skipped",
                extra={
                    "fields": {
                        "reason": reason,
                        "sse_id": raw.sse_id,
                        "bytes": len(raw.data),
                        "suppressed_since_last": suppressed,
                    }
                },
            )
