"""Prometheus metrics and the ``/metrics``, ``/healthz`` (ready) and ``/livez`` endpoints.

Every metric lives in its own ``CollectorRegistry`` (one per monitor, so tests and several
monitors in one process do not share counters). Label values are bounded: stream names,
change types, drop and reconnect reasons, rule ids, categories, severities and sink names.
Never a user, a title or an IP.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.aiohttp import make_aiohttp_handler

from sinks.serving import Limits, Listener

__all__ = ["Metrics", "MetricsServer"]

log = logging.getLogger(__name__)

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

# Change types the recentchange schema defines; anything else is counted as "other" so a
# misbehaving producer cannot blow up label cardinality.
_KNOWN_TYPES = frozenset({"edit", "new", "log", "categorize", "external"})
# The public EventStreams streams (meta.stream): label values as they are; the streams a
# deployment connects to are added (``allow_streams``); anything else is "other".
PUBLIC_STREAMS = frozenset(
    f"mediawiki.{name}"
    for name in (
        "recentchange", "page-create", "page-delete", "page-move", "page-undelete",
        "page-links-change", "page-properties-change", "revision-create",
        "revision-score", "revision-tags-change", "revision-visibility-change",
    )
)  # fmt: skip


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None, version: str = "") -> None:
        r = self.registry = registry or CollectorRegistry()
        self._streams = PUBLIC_STREAMS
        self.build_info = Gauge("rcwatch_build_info", "rcwatch version", ["version"], registry=r)
        self.build_info.labels(version).set(1)

        # source
        self.events_received = Counter(
            "rcwatch_events_received",
            "Events received, by stream (public or configured streams; else 'other') and "
            "change type",
            ["stream", "type"],
            registry=r,
        )
        self.events_dropped = Counter(
            "rcwatch_events_dropped",
            "Events not run through detectors, by reason (canary, malformed, oversized, filtered)",
            ["reason"],
            registry=r,
        )
        self.events_by_family = Counter(
            "rcwatch_events_by_family",
            "Events received, by wiki family (wikipedia, wikidata, commons, ...) and type",
            ["family", "type"],
            registry=r,
        )
        self.events_processed = Counter(
            "rcwatch_events_processed", "Events run through the detectors", registry=r
        )
        self.events_by_language = Counter(
            "rcwatch_events_by_language",
            "Events with text (added text or a summary) by the text's language, and whether "
            "rcwatch judges abuse in it (judged=no: nobody looked, not clean)",
            ["language", "judged"],
            registry=r,
        )
        self.stream_connected = Gauge(
            "rcwatch_stream_connected", "1 while the event stream is connected", registry=r
        )
        self.reconnects = Counter(
            "rcwatch_stream_reconnects", "Stream reconnects, by reason", ["reason"], registry=r
        )
        self.stream_consecutive_failures = Gauge(
            "rcwatch_stream_consecutive_failures",
            "Failed connection attempts since the last successful connect (0 when connected)",
            registry=r,
        )
        self.stream_bad_positions = Counter(
            "rcwatch_stream_bad_positions",
            "Event ids the server sent that cannot be a stream position (kept the last good)",
            ["reason"],
            registry=r,
        )
        self.stream_bytes = Counter(
            "rcwatch_stream_bytes", "Bytes read from the event stream", registry=r
        )
        self.stream_error_events = Counter(
            "rcwatch_stream_error_events",
            "'event: error' messages sent by the server",
            registry=r,
        )
        self.last_event_time = Gauge(
            "rcwatch_last_event_timestamp_seconds",
            "Event time (meta.dt) of the newest event processed",
            registry=r,
        )
        self.last_receive_time = Gauge(
            "rcwatch_last_receive_timestamp_seconds",
            "Wall-clock time the last event (canary included) was received",
            registry=r,
        )
        self.lag = Gauge(
            "rcwatch_lag_seconds",
            "Wall clock minus the event time of the newest event processed",
            registry=r,
        )
        self.latency = Histogram(
            "rcwatch_processing_latency_seconds",
            "From receiving an event to its alerts being accepted by every sink",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "rcwatch_events_in_flight", "Events received but not yet fully processed", registry=r
        )
        self.queue_depth = Gauge(
            "rcwatch_queue_batches",
            "Batches waiting between the source and the processor",
            registry=r,
        )

        # detection and alerts
        self.alerts = Counter(
            "rcwatch_alerts",
            "Alerts raised, by rule, category and severity",
            ["rule", "category", "severity"],
            registry=r,
        )
        self.detector_errors = Counter(
            "rcwatch_detector_errors",
            "Detector exceptions (the event is still processed)",
            ["detector"],
            registry=r,
        )

        self.upstream_evaluations = Counter(
            "rcwatch_upstream_evaluations",
            "Events that came with the rules' answer worked out upstream (a scale-out fetch "
            "worker), by outcome: used, or rules_differ (other rules answered: evaluated here); "
            "pattern_rule_unknown counts window stages' findings of a pattern rule not in force "
            "here (left out)",
            ["outcome"],
            registry=r,
        )
        for outcome in ("used", "rules_differ"):
            self.upstream_evaluations.labels(outcome)
        self.detector_truncated = Counter(
            "rcwatch_detector_truncated",
            "Events whose text was examined only in part, by what was cut short: a field over "
            "the engine's limit ('text') or a recognizer out of candidates (its kind)",
            ["what"],
            registry=r,
        )

        # rules
        self.rules_loaded = Gauge(
            "rcwatch_rules_loaded", "Enabled rules in the running rule set", registry=r
        )
        self.rules_reloads = Counter(
            "rcwatch_rules_reloads",
            "Rule reloads, by result (ok, failed)",
            ["result"],
            registry=r,
        )
        self.rules_last_reload_ok = Gauge(
            "rcwatch_rules_last_reload_ok",
            "1 if the last reload succeeded; 0 while broken files keep the previous rules",
            registry=r,
        )
        self.rule_hits = Counter(
            "rcwatch_rule_hits",
            "Events a rule matched (before the storm guard)",
            ["rule"],
            registry=r,
        )
        self.rule_cost = Counter(
            "rcwatch_rule_cost_seconds",
            "Sampled evaluation time of each rule on its own (divide by samples)",
            ["rule"],
            registry=r,
        )
        self.rule_cost_samples = Counter(
            "rcwatch_rule_cost_samples", "Events sampled for rule cost", ["rule"], registry=r
        )
        self.rule_muted = Gauge(
            "rcwatch_rule_muted", "1 while the storm guard mutes a rule", ["rule"], registry=r
        )
        self.rule_mutes = Counter(
            "rcwatch_rule_storm_mutes",
            "Times the storm guard muted a rule",
            ["rule"],
            registry=r,
        )
        self.rule_muted_hits = Counter(
            "rcwatch_rule_muted_hits",
            "Matches of a muted rule (not alerted)",
            ["rule"],
            registry=r,
        )

        # content fetching (MediaWiki Action API)
        self.content_requests = Counter(
            "rcwatch_content_requests",
            "HTTP requests to wiki APIs for added text, by result "
            "(ok, not_found, http_429, http_5xx, maxlag, ratelimited, timeout, error)",
            ["result"],
            registry=r,
        )
        self.content_fetch_seconds = Histogram(
            "rcwatch_content_fetch_seconds",
            "Time to get an event's content, retries included (cache hits excluded)",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
            registry=r,
        )
        self.content_events = Counter(
            "rcwatch_content_events",
            "Events that needed content, by outcome (fetched, cached, archived, skipped, missed)",
            ["outcome"],
            registry=r,
        )
        self.content_misses = Counter(
            "rcwatch_content_misses",
            "Events whose content could not be had (metadata rules still ran), by reason",
            ["reason"],
            registry=r,
        )
        self.content_retries = Counter(
            "rcwatch_content_retries",
            "Retried content requests, by reason",
            ["reason"],
            registry=r,
        )
        self.content_pending = Gauge(
            "rcwatch_content_pending", "Events waiting for their content", registry=r
        )

        # windowed pattern rules and alert throttling
        self.window_keys = Gauge(
            "rcwatch_window_keys",
            "Open window groups (pattern rules) held in memory",
            registry=r,
        )
        self.window_evictions = Counter(
            "rcwatch_window_evictions",
            "Window groups dropped because the key cap was reached (oldest first)",
            registry=r,
        )
        self.alert_updates = Counter(
            "rcwatch_alert_updates",
            "Repeats folded into an earlier alert within its cooldown (sent as an update)",
            ["rule"],
            registry=r,
        )
        self.alerts_repeated = Counter(
            "rcwatch_alerts_repeated",
            "Alerts not sent again: the same rule on the same change was already counted "
            "(a re-delivered event)",
            ["rule"],
            registry=r,
        )
        self.alert_escalations = Counter(
            "rcwatch_alert_escalations",
            "Alerts whose severity rose with repeats",
            ["rule"],
            registry=r,
        )

        # sinks
        self.sink_received = Counter(
            "rcwatch_sink_received", "Alerts routed to a sink", ["sink"], registry=r
        )
        self.sink_sent = Counter(
            "rcwatch_sink_sent", "Alerts a sink accepted", ["sink"], registry=r
        )
        self.sink_dropped = Counter(
            "rcwatch_sink_dropped",
            "Alerts a sink did not send, by reason (duplicate, error)",
            ["sink", "reason"],
            registry=r,
        )
        self.sink_writes = Counter(
            "rcwatch_sink_writes", "Write calls to a sink (batches)", ["sink"], registry=r
        )
        self.sink_failures = Counter(
            "rcwatch_sink_failures", "Failed write or flush attempts", ["sink"], registry=r
        )
        self.sink_ledger_errors = Counter(
            "rcwatch_sink_ledger_errors",
            "Delivered alerts a sink could not record in its ledger (a restart may "
            "deliver them again)",
            ["sink"],
            registry=r,
        )
        self.sink_retries = Counter(
            "rcwatch_sink_retries",
            "Delivery attempts repeated after a failure (from the spool)",
            ["sink"],
            registry=r,
        )
        self.sink_dead_letters = Counter(
            "rcwatch_sink_dead_letters",
            "Alerts written to a sink's dead-letter file, by reason (attempts, rejected)",
            ["sink", "reason"],
            registry=r,
        )
        self.sink_spooled = Counter(
            "rcwatch_sink_spooled",
            "Alerts written to a sink's on-disk spool because its target was failing",
            ["sink"],
            registry=r,
        )
        self.sink_spool_entries = Gauge(
            "rcwatch_sink_spool_entries", "Alerts waiting in a sink's spool", ["sink"], registry=r
        )
        self.sink_spool_bytes = Gauge(
            "rcwatch_sink_spool_bytes", "Bytes held by a sink's spool", ["sink"], registry=r
        )
        self.sink_spool_limit_bytes = Gauge(
            "rcwatch_sink_spool_limit_bytes",
            "A sink's spool size cap (when reached, the stream waits)",
            ["sink"],
            registry=r,
        )
        self.sink_up = Gauge(
            "rcwatch_sink_up",
            "1 when the last delivery attempt to a sink's target succeeded",
            ["sink"],
            registry=r,
        )
        self.sink_delivery_seconds = Histogram(
            "rcwatch_sink_delivery_seconds",
            "Time of one delivery attempt to a sink's target",
            ["sink"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )

        # archive and checkpoint
        self.archive_events = Counter(
            "rcwatch_archive_events", "Events written to the raw-event archive", registry=r
        )
        self.archive_duplicates = Counter(
            "rcwatch_archive_duplicates",
            "Re-delivered events not archived again (already in the archive)",
            registry=r,
        )
        self.archive_bytes = Counter(
            "rcwatch_archive_bytes", "Compressed bytes written to the archive", registry=r
        )
        self.archive_failures = Counter(
            "rcwatch_archive_failures", "Failed archive writes", registry=r
        )
        self.checkpoint_writes = Counter(
            "rcwatch_checkpoint_writes", "Checkpoint writes", registry=r
        )
        self.state_corrupt = Counter(
            "rcwatch_state_corrupt",
            "Unusable state files or records moved aside at start, by file kind",
            ["file"],
            registry=r,
        )
        for kind in ("checkpoint", "origin", "pattern_state", "ledger", "archive"):
            self.state_corrupt.labels(kind)
        # the HTTP servers (sinks.serving)
        self.http_connections_closed = Counter(
            "rcwatch_http_connections_closed",
            "Connections the metrics or triage server closed on its own, by server and reason "
            "(header_timeout, idle_timeout, request_timeout, evicted: room made at the cap, "
            "refused: the cap reached with every connection inside a request)",
            ["server", "reason"],
            registry=r,
        )
        self.checkpoint_event_time = Gauge(
            "rcwatch_checkpoint_event_timestamp_seconds",
            "Event time of the checkpointed position",
            registry=r,
        )

    def allow_streams(self, names: Iterable[str]) -> None:
        """Stream names (``meta.stream``) counted under their own label value."""
        self._streams = self._streams | frozenset(names)

    def received(
        self, stream: str | None, change_type: str | None, n: int = 1, server: str | None = None
    ) -> None:
        t = change_type if change_type in _KNOWN_TYPES else "other"
        label = "unknown" if stream is None else stream if stream in self._streams else "other"
        self.events_received.labels(label, t).inc(n)
        self.events_by_family.labels(wiki_family(server), t).inc(n)


# the label values of rcwatch_events_by_family: a fixed set, whatever the stream carries
WIKI_FAMILIES = (
    "wikipedia",
    "wiktionary",
    "wikibooks",
    "wikinews",
    "wikiquote",
    "wikisource",
    "wikiversity",
    "wikivoyage",
    "wikidata",
    "commons",
    "wikimedia",
    "mediawiki",
    "wikifunctions",
)


@functools.lru_cache(maxsize=4096)
def wiki_family(server_name: str | None) -> str:
    """``en.wikipedia.org`` -> ``wikipedia``; ``commons.wikimedia.org`` -> ``commons``;
    anything unknown -> ``other`` (the label set stays bounded)."""
    if not server_name:
        return "unknown"
    parts = server_name.lower().split(".")
    if len(parts) < 2:
        return "other"
    if parts[0] == "commons" and parts[-2] == "wikimedia":
        return "commons"
    family = parts[-2]
    return family if family in WIKI_FAMILIES else "other"


Health = Callable[[], tuple[bool, dict[str, Any]]]


class MetricsServer:
    """Serves ``/metrics`` (Prometheus, content-negotiated) and ``/healthz`` (JSON), within
    the connection cap and deadlines of ``sinks.serving``."""

    def __init__(
        self,
        metrics: Metrics,
        host: str,
        port: int,
        health: Health,
        limits: Limits | None = None,
    ) -> None:
        self.metrics = metrics
        self.host = host
        self.port = port
        self._health = health
        self.limits = limits
        self._listener: Listener | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=1024)
        app.router.add_get("/metrics", make_aiohttp_handler(self.metrics.registry))
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/livez", self._livez)
        closed = self.metrics.http_connections_closed
        listener = Listener(
            app, self.host, self.port, self.limits,
            closed=lambda reason: closed.labels("metrics", reason).inc(),
        )  # fmt: skip
        await listener.start()
        self._listener = listener
        self.port = listener.port

    @property
    def open_connections(self) -> int:
        return 0 if self._listener is None else self._listener.open_connections

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def _healthz(self, request: web.Request) -> web.Response:
        ok, details = self._health()
        details = {"status": "ok" if ok else "unhealthy", **details}
        return web.json_response(details, status=200 if ok else 503)

    async def _livez(self, request: web.Request) -> web.Response:
        # liveness: the process and its event loop answer (readiness is /healthz)
        return web.json_response({"status": "alive"})

    async def stop(self) -> None:
        if self._listener is not None:
            await self._listener.stop()
            self._listener = None
