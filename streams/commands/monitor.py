"""``rcwatch run`` and ``rcwatch replay``: the monitor over a live stream or recorded files."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys
from pathlib import Path

from sinks.metrics import Metrics
from streams import __version__
from streams.app import (
    UsageError,
    build_monitor,
    build_sinks,
    run_monitor,
    serve_metrics,
    serve_triage,
)
from streams.commands.progress import ProgressBar, format_summary
from streams.pipeline.parallel import default_workers
from streams.pipeline.runner import Monitor
from streams.pipeline.stages import BatchResult
from streams.settings import (
    JsonlSinkConfig,
    Settings,
    StdoutSinkConfig,
    parse_host_port,
    validate_for_run,
)
from streams.source.checkpoint import CheckpointStore, StateDirLock
from streams.source.eventstreams import EventStreamsSource, parse_since, stream_names
from streams.source.replay import ReplaySource, parse_speed
from streams.source.start import Start, resolve_start

__all__ = [
    "apply_stream_args",
    "open_stream",
    "replay",
    "run",
    "with_jsonl",
    "with_metrics_addr",
]

log = logging.getLogger("rcwatch")

EXIT_OK, EXIT_STREAM = 0, 3


def run(settings: Settings, args: argparse.Namespace, source_name: str) -> int:
    settings = _apply_run_args(settings, args)
    return asyncio.run(_cmd_run(settings, source_name, args.reset_checkpoint))


def replay(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(_cmd_replay(settings, args))


def with_jsonl(settings: Settings, path: str) -> Settings:
    sinks = list(settings.sinks)
    for i, s in enumerate(sinks):
        if isinstance(s, JsonlSinkConfig):
            sinks[i] = dataclasses.replace(s, path=path)
            break
    else:
        sinks.append(JsonlSinkConfig(path=path))
    return dataclasses.replace(settings, sinks=tuple(sinks))


def _apply_run_args(settings: Settings, args: argparse.Namespace) -> Settings:
    settings = apply_stream_args(settings, args)
    if args.archive:
        settings = dataclasses.replace(
            settings, archive=dataclasses.replace(settings.archive, enabled=True, dir=args.archive)
        )
    if args.no_archive:
        settings = dataclasses.replace(
            settings, archive=dataclasses.replace(settings.archive, enabled=False)
        )
    if args.alerts_jsonl:
        settings = with_jsonl(settings, args.alerts_jsonl)
    return settings


def apply_stream_args(settings: Settings, args: argparse.Namespace) -> Settings:
    """--stream-url, --since, --user-agent, --state-dir and --metrics-addr (run, ingest)."""
    stream = settings.stream
    if args.stream_url:
        stream = dataclasses.replace(stream, url=args.stream_url)
    if args.since:
        try:
            parse_since(args.since)
        except ValueError as exc:
            raise UsageError(f"--since: {exc}") from None
        stream = dataclasses.replace(stream, since=args.since)
    if args.user_agent:
        stream = dataclasses.replace(stream, user_agent=args.user_agent)
    settings = dataclasses.replace(settings, stream=stream)
    if args.state_dir:
        settings = dataclasses.replace(settings, state_dir=args.state_dir)
    if args.metrics_addr:
        settings = with_metrics_addr(settings, args.metrics_addr)
    return settings


def checked_addr(option: str, addr: str) -> str:
    """A HOST:PORT given on the command line, or a usage error naming the option."""
    try:
        parse_host_port(addr)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None
    return addr


def with_metrics_addr(settings: Settings, addr: str) -> Settings:
    addr = checked_addr("--metrics-addr", addr)
    return dataclasses.replace(
        settings, metrics=dataclasses.replace(settings.metrics, enabled=True, addr=addr)
    )


def with_triage_addr(settings: Settings, option: str, addr: str | None) -> Settings:
    """The triage page enabled, at ``addr`` when given (else the settings' address)."""
    triage = dataclasses.replace(settings.triage, enabled=True)
    if addr:
        triage = dataclasses.replace(triage, addr=checked_addr(option, addr))
    return dataclasses.replace(settings, triage=triage)


async def _cmd_run(settings: Settings, source_name: str, reset: bool) -> int:
    validate_for_run(settings, source_name)
    state = Path(settings.state_dir)
    lock = StateDirLock(state)
    lock.acquire()
    try:
        return await _run_locked(settings, state, reset)
    finally:
        lock.release()


def open_stream(
    settings: Settings, store: CheckpointStore, *, reset: bool, metrics: Metrics | None = None
) -> tuple[str, Metrics, Start, EventStreamsSource]:
    """Where the stream resumes (checkpoint, origin or --since) and the source reading it,
    with the metrics that source reports to (new ones unless given): for ``rcwatch run``
    and the ingest."""
    names = stream_names(settings.stream.url)
    metrics = metrics or Metrics(version=__version__)
    metrics.allow_streams(f"mediawiki.{name}" for name in names.split(","))
    start = resolve_start(
        store,
        streams=names,
        since=settings.stream.since,
        margin_seconds=settings.stream.position_margin_seconds,
        metrics=metrics,
        reset=reset,
    )
    source = EventStreamsSource(
        settings.stream, metrics, last_event_id=start.last_event_id, since=start.since
    )
    return names, metrics, start, source


async def _run_locked(settings: Settings, state: Path, reset: bool) -> int:
    store = CheckpointStore(state)
    names, metrics, start, source = open_stream(settings, store, reset=reset)
    monitor = build_monitor(
        settings,
        source,
        metrics=metrics,
        checkpoint=store,
        streams_name=names,
        reloader=True,
        fetch_content=True,
    )
    if start.checkpoint is not None:
        monitor.restore_state(store.load_state(start.checkpoint))
    triage = await serve_triage(settings, metrics)
    try:
        server = await serve_metrics(settings, metrics, monitor.health)
        if server is not None:
            log.info("metrics served", extra={"fields": {"url": server.url + "/metrics"}})
        summary = await run_monitor(monitor, server)
    finally:
        if triage is not None:
            await triage.stop()
    print(format_summary(summary), file=sys.stderr)
    return EXIT_STREAM if summary.fatal else EXIT_OK


async def _cmd_replay(settings: Settings, args: argparse.Namespace) -> int:
    try:
        speed = parse_speed(args.speed if args.speed is not None else settings.replay.speed)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    missing = [f for f in args.files if not Path(f).is_file()]  # noqa: ASYNC240
    if missing:
        raise UsageError(f"no such file: {', '.join(missing)}")
    # a replay is a test run: alerts go to the terminal and, if asked, to a JSONL file;
    # never to the production sinks of the settings file
    sinks: list[JsonlSinkConfig | StdoutSinkConfig] = []
    if not args.quiet:
        sinks.append(StdoutSinkConfig())
    if args.alerts_jsonl:
        sinks.append(JsonlSinkConfig(path=args.alerts_jsonl))
    settings = dataclasses.replace(
        settings, sinks=tuple(sinks), metrics=dataclasses.replace(settings.metrics, enabled=False)
    )
    if args.metrics_addr:
        settings = with_metrics_addr(settings, args.metrics_addr)
    source = ReplaySource(
        args.files, speed=speed, batch_max_events=settings.pipeline.batch_max_events
    )
    bar = ProgressBar(source.progress.bytes_total)
    if args.no_progress:
        bar.enabled = False
    holder: list[Monitor] = []

    def on_batch(_: BatchResult) -> None:
        p = holder[0].pipeline
        bar.update(source.bytes_read, p.events, sum(p.alerts_by_rule.values()))

    metrics = Metrics(version=__version__)
    monitor = build_monitor(
        settings,
        source,
        metrics=metrics,
        archive=False,
        on_batch=on_batch,
        sinks=build_sinks(settings, ledger_dir=None),  # a replay keeps no state
        workers=args.workers or default_workers(),
    )
    holder.append(monitor)
    server = await serve_metrics(settings, metrics, monitor.health)
    summary = await run_monitor(monitor, server)
    bar.update(source.bytes_read, summary.events, summary.alerts, force=True)
    bar.close()
    if source.progress.truncated_files:
        print(
            f"warning: {source.progress.truncated_files} file(s) had a torn gzip member "
            "(its partial last line skipped)",
            file=sys.stderr,
        )
    print(format_summary(summary), file=sys.stderr)
    return EXIT_OK
