"""Composition root: settings in, a wired monitor out. The only place that knows every part."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
from collections.abc import Callable, Sequence
from pathlib import Path

from detectors.base import Detector
from detectors.classifier import ModelError, TextClassifier, load_model
from detectors.confload import ConfigError, ConfigIssue
from detectors.rules.engine import RuleEngine
from detectors.rules.loader import load_rules
from detectors.windows import WindowStore
from sinks.archive import EventArchive
from sinks.base import Sink
from sinks.factory import REMOTE_SINK_CONFIGS, build_remote_sink
from sinks.jsonl import JsonlSink
from sinks.metrics import Health, Metrics, MetricsServer
from sinks.secrets import SecretError
from sinks.stdout import StdoutSink
from sinks.store import StoreSink, VerdictCollector
from streams import __version__
from streams.fetch.content import ContentFetcher
from streams.fetch.wikihosts import WikiHosts
from streams.pipeline.detection import Detection
from streams.pipeline.parallel import DetectionPool
from streams.pipeline.rules_reload import RulesReloader
from streams.pipeline.runner import Monitor, RunSummary, Source
from streams.pipeline.stages import BatchResult, Pipeline
from streams.pipeline.throttle import Throttle
from streams.settings import JsonlSinkConfig, Settings, StdoutSinkConfig, parse_host_port
from streams.source.checkpoint import CheckpointStore
from streams.triage.pages import RuleText
from streams.triage.server import TriageServer

__all__ = [
    "StopAbandoned",
    "UsageError",
    "build_detection",
    "build_monitor",
    "build_sinks",
    "load_engine",
    "rule_texts",
    "run_monitor",
    "serve_metrics",
    "serve_triage",
]

log = logging.getLogger(__name__)


class UsageError(Exception):
    """Bad options or an unusable environment; the CLI prints it and exits with 2."""


_MODELS: dict[tuple[str, Path], tuple[int, TextClassifier]] = {}


def load_classifiers(settings: Settings) -> dict[str, TextClassifier]:
    """Every classifier rules may name (the shipped models, then ``detectors.classifiers``),
    loaded once per process per file version. Raises ConfigError naming a model that
    cannot be loaded."""
    out: dict[str, TextClassifier] = {}
    issues = []
    for name, directory in settings.detectors.model_dirs().items():
        key = (name, directory.resolve())
        try:
            stamp = (directory / "model.json").stat().st_mtime_ns
            cached = _MODELS.get(key)
            if cached is None or cached[0] != stamp:
                cached = _MODELS[key] = (stamp, load_model(directory))
            out[name] = cached[1]
        except (OSError, ModelError) as exc:
            issues.append(ConfigIssue(str(directory), None, f"detectors.classifiers.{name}",
                                      str(exc)))  # fmt: skip
    if issues:
        raise ConfigError(issues)
    return out


def load_engine(settings: Settings, *, include_disabled: bool = False) -> RuleEngine:
    """The rule engine for the settings' rule paths. Raises ConfigError listing every problem."""
    classifiers = load_classifiers(settings)
    rules, issues = load_rules(settings.rules_paths, classifiers.keys())
    if issues:
        raise ConfigError(issues)
    return RuleEngine(rules, include_disabled=include_disabled, classifiers=classifiers)


def build_detection(
    settings: Settings,
    metrics: Metrics,
    *,
    engine: RuleEngine | None = None,
    extra: Sequence[Detector] = (),
) -> Detection:
    d = settings.detectors
    return Detection(
        engine or load_engine(settings),
        metrics,
        extra=extra,
        storm=d.storm_guard,
        profile_every_events=d.profile_every_events,
    )


def build_sinks(
    settings: Settings, *, ledger_dir: Path | None, metrics: Metrics | None = None
) -> list[Sink]:
    """Raises ``UsageError`` when a sink cannot be built (a secret that cannot be read)."""
    sinks: list[Sink] = []
    for cfg in settings.sinks:
        if isinstance(cfg, REMOTE_SINK_CONFIGS):
            try:
                sink: Sink = build_remote_sink(
                    cfg,
                    state_dir=Path(settings.state_dir),
                    user_agent=settings.stream.user_agent,
                    metrics=metrics,
                )
            except (SecretError, ValueError) as exc:
                raise UsageError(f"sink {cfg.name!r}: {exc}") from exc
            sinks.append(sink)
            continue
        if isinstance(cfg, JsonlSinkConfig):
            sink = JsonlSink(cfg.name, settings.jsonl_path(cfg))
            sink.route = cfg.route
            sinks.append(sink)
        elif isinstance(cfg, StdoutSinkConfig):
            ledger = ledger_dir / f"{cfg.name}.ids" if ledger_dir is not None else None
            sink = StdoutSink(cfg.name, ledger_path=ledger, fmt=cfg.format)
            sink.route = cfg.route
            sinks.append(sink)
    try:
        store = settings.store_target()
    except SecretError as exc:
        raise UsageError(f"store.postgres_dsn: {exc}") from exc
    if store is not None and ledger_dir is not None:  # a replay keeps no state
        sinks.append(StoreSink("alert-store", store, settings.store.retention_days))
        if metrics is not None:
            with contextlib.suppress(ValueError):  # already registered (sinks built twice)
                metrics.registry.register(VerdictCollector(store))
    return sinks


def build_monitor(
    settings: Settings,
    source: Source,
    *,
    metrics: Metrics | None = None,
    sinks: list[Sink] | None = None,
    archive: bool = True,
    checkpoint: CheckpointStore | None = None,
    streams_name: str = "",
    on_batch: Callable[[BatchResult], None] | None = None,
    detection: Detection | None = None,
    reloader: bool = False,
    fetch_content: bool = False,
    throttle: bool = True,
    workers: int = 1,
) -> Monitor:
    """``workers``: more than one runs the rules in that many worker processes (replays;
    streams.pipeline.parallel)."""
    metrics = metrics or Metrics(version=__version__)
    event_archive = None
    archive_dir = settings.archive_dir if archive else None
    if archive_dir is not None:
        a = settings.archive
        event_archive = EventArchive(
            archive_dir,
            rotate_bytes=a.rotate_bytes,
            rotate_seconds=a.rotate_seconds,
            keep_files=a.keep_files,
        )
    p = settings.pipeline
    detection = detection or build_detection(settings, metrics)
    pc = settings.patterns
    fetcher = None
    if fetch_content and settings.content.enabled:
        fetcher = ContentFetcher(settings.content, metrics, user_agent=settings.stream.user_agent)
    pipeline = Pipeline(
        settings.scope.build(),
        detection,
        metrics,
        archive=event_archive,
        dedup_capacity=p.dedup_event_ids,
        # the resume overlap is a millisecond; live-end positions resume by time with the
        # margin: the ids of events that recent are saved with the checkpoint
        resume_dedup_seconds=settings.stream.position_margin_seconds + 5.0,
        windows=WindowStore(
            max_keys=pc.max_keys,
            page_memory_seconds=pc.page_memory_seconds,
            pii_memory_seconds=pc.pii_memory_seconds,
        ),
        throttle=Throttle(
            settings.throttle if throttle else dataclasses.replace(settings.throttle, enabled=False)
        ),
        fetch_content=fetcher is not None,
        hosts=WikiHosts(settings.content.allowed_hosts),
        thread_min_chars=p.detect_in_thread_min_chars,
    )
    if workers > 1:
        if fetcher is not None or reloader:
            raise ValueError(
                "worker processes are for replays: they fetch no content and run the rules "
                "loaded at the start (no reloader)"
            )
        pipeline.pool = DetectionPool(pipeline, workers)
    if sinks is None:
        sinks = build_sinks(
            settings, ledger_dir=Path(settings.state_dir) / "ledger", metrics=metrics
        )
    background = []
    reload_job: RulesReloader | None = None
    if reloader:
        reload_job = RulesReloader(
            settings.rules_paths,
            detection,
            metrics,
            check_seconds=settings.detectors.reload_check_seconds,
        )
        background.append(reload_job.run)
    monitor = Monitor(
        source=source,
        pipeline=pipeline,
        sinks=sinks,
        metrics=metrics,
        archive=event_archive,
        checkpoint=checkpoint,
        streams_name=streams_name,
        checkpoint_interval_seconds=p.checkpoint_interval_seconds,
        queue_max_batches=p.queue_max_batches,
        shutdown_timeout_seconds=p.shutdown_timeout_seconds,
        reorder_max_events=p.reorder_max_events,
        on_batch=on_batch,
        background=background,
        fetcher=fetcher,
    )
    monitor.reloader = reload_job
    return monitor


async def serve_metrics(
    settings: Settings, metrics: Metrics, health: Health, fallback: bool = False
) -> MetricsServer | None:
    """/metrics and /healthz (``health``: a monitor's, or a scale-out stage's) when the
    settings ask for them; a port in use is a usage error, or (``fallback``) any port."""
    if not settings.metrics.enabled:
        return None
    host, port = parse_host_port(settings.metrics.addr)
    server = MetricsServer(metrics, host, port, health)
    try:
        await server.start()
    except OSError as exc:
        if not fallback:
            raise UsageError(
                f"cannot serve metrics on {settings.metrics.addr}: {exc.strerror}"
            ) from exc
        server = MetricsServer(metrics, host, 0, health)
        await server.start()
    return server


def rule_texts(settings: Settings) -> dict[str, RuleText]:
    """What the triage page says about each rule the settings load (disabled ones too)."""
    rules, issues = load_rules(settings.rules_paths, load_classifiers(settings).keys())
    if issues:
        raise ConfigError(issues)
    return {
        r.id: RuleText(r.title, str(r.category), str(r.severity), r.enabled, r.description,
                       r.false_positives)
        for r in rules
    }  # fmt: skip


async def serve_triage(
    settings: Settings, metrics: Metrics | None, *, token: str | None = None
) -> TriageServer | None:
    """The triage page when the settings enable it (``token``: one made for this run,
    when the settings name none). A port in use or a token that cannot be read is a usage
    error."""
    cfg = settings.triage
    if not cfg.enabled:
        return None
    try:
        target = settings.store_target()
        if cfg.token is not None:
            token = cfg.token.resolve().reveal()
    except SecretError as exc:
        raise UsageError(f"triage: {exc}") from exc
    if target is None:
        raise UsageError("the triage page needs the alert store (store.enabled: true)")
    try:
        server = TriageServer(
            cfg, target, rule_texts(settings), token=token,
            registry=metrics.registry if metrics is not None else None,
            retention_days=settings.store.retention_days,
        )  # fmt: skip
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        await server.start()
    except OSError as exc:
        raise UsageError(f"cannot serve the triage page on {cfg.addr}: {exc.strerror}") from exc
    log.info("triage page served", extra={"fields": {"url": server.url}})
    return server


class StopAbandoned(Exception):
    """A second signal: the run stopped without waiting for its sinks."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


async def run_monitor(monitor: Monitor, server: MetricsServer | None) -> RunSummary:
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    signals: list[int] = []

    def on_signal(signum: int) -> None:
        signals.append(signum)
        if len(signals) == 1:
            monitor.request_stop()
        elif main_task is not None:  # a second Ctrl-C: stop waiting for sinks
            main_task.cancel()

    handled = [signal.SIGINT, signal.SIGTERM]
    if monitor.reloader is not None:
        handled.append(signal.SIGHUP)
    # restored afterwards: asyncio would leave the defaults, and a SIGTERM during the
    # rest of the shutdown must still end in one clean line (streams.entry)
    previous = {sig: signal.getsignal(sig) for sig in handled}
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    if monitor.reloader is not None:
        loop.add_signal_handler(signal.SIGHUP, monitor.reloader.request)
    try:
        return await monitor.run()
    except asyncio.CancelledError:
        if len(signals) >= 2:
            raise StopAbandoned(signals[-1]) from None
        raise
    finally:
        for sig, handler in previous.items():
            loop.remove_signal_handler(sig)
            if handler is not None:
                signal.signal(sig, handler)
        if server is not None:
            await server.stop()
