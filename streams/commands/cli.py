"""``rcwatch`` command line: run, replay, demo.

Every option is also a key in the settings file (``config/rcwatch.yaml``); the command line
wins. Exit codes: 0 done, 1 unexpected error, 2 bad usage or configuration, 3 the stream
server refused us for good (HTTP 400/403/404...).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from detectors.confload import ConfigError
from sinks.base import SinkError
from sinks.metrics import Metrics
from streams import __version__
from streams.app import (
    StopAbandoned,
    UsageError,
    build_monitor,
    build_sinks,
    run_monitor,
    serve_metrics,
    tune_gc,
)
from streams.commands.demo import run_demo
from streams.commands.model import add_model_parser, run_model_command
from streams.commands.progress import ProgressBar, format_summary
from streams.commands.rules import add_rules_parser, run_rules_command
from streams.commands.sinks import add_sinks_parser, run_sinks_command
from streams.logs import setup_logging
from streams.pipeline.runner import Monitor
from streams.pipeline.stages import BatchResult
from streams.settings import (
    JsonlSinkConfig,
    Settings,
    StdoutSinkConfig,
    default_config_path,
    load_settings,
    parse_host_port,
    validate_for_run,
)
from streams.source.checkpoint import CheckpointError, CheckpointStore, StateDirLock
from streams.source.eventstreams import EventStreamsSource, parse_since, stream_names
from streams.source.replay import ReplaySource, parse_speed
from streams.source.start import resolve_start

__all__ = ["EXIT_CONFIG", "EXIT_ERROR", "EXIT_OK", "EXIT_STREAM", "UsageError", "main"]

log = logging.getLogger("rcwatch")

EXIT_OK, EXIT_ERROR, EXIT_CONFIG, EXIT_STREAM = 0, 1, 2, 3


# -- argument parsing -------------------------------------------------------------------------


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="settings file (default: config/rcwatch.yaml)")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    p.add_argument("--log-format", choices=["text", "json"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rcwatch",
        description="Real-time Trust & Safety monitor over Wikimedia EventStreams.",
    )
    parser.add_argument("--version", action="version", version=f"rcwatch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    run = sub.add_parser(
        "run",
        help="monitor a live event stream",
        description="Read an EventStreams stream, run the detectors, deliver alerts. Resumes "
        "from the checkpoint in the state directory.",
    )
    _common(run)
    run.add_argument("--stream-url", metavar="URL", help="EventStreams URL; join streams with ','")
    run.add_argument(
        "--since",
        metavar="TIME",
        help="where the first start begins (later starts resume from the checkpoint, or "
        "from this first start's origin): ISO-8601, epoch ms, or an age (15m, 2h, 1d)",
    )
    run.add_argument("--state-dir", metavar="DIR", help="checkpoint, ledgers, default outputs")
    run.add_argument("--archive", metavar="DIR", help="raw-event archive directory")
    run.add_argument("--no-archive", action="store_true", help="do not archive raw events")
    run.add_argument("--alerts-jsonl", metavar="FILE", help="JSONL file alerts are appended to")
    run.add_argument("--metrics-addr", metavar="HOST:PORT", help="/metrics and /healthz address")
    run.add_argument("--user-agent", metavar="TEXT", help="descriptive User-Agent with contact")
    run.add_argument(
        "--reset-checkpoint",
        action="store_true",
        help="forget the saved position and origin; start from --since (or the live end)",
    )

    replay = sub.add_parser(
        "replay",
        help="run the detectors over recorded files",
        description="Replay recorded NDJSON files (plain or .gz; plain events or capture "
        "wrappers, including rcwatch's own archive) through the full pipeline.",
    )
    replay.add_argument("files", nargs="+", metavar="FILE")
    _common(replay)
    replay.add_argument(
        "--speed", metavar="max|N", help="'max' or a multiple of real time (by event time)"
    )
    replay.add_argument("--alerts-jsonl", metavar="FILE", help="also append alerts to this file")
    replay.add_argument(
        "--metrics-addr", metavar="HOST:PORT", help="serve /metrics while replaying"
    )
    replay.add_argument("--quiet", action="store_true", help="do not print alerts")
    replay.add_argument("--no-progress", action="store_true", help="no progress bar")

    add_rules_parser(sub, _common)
    add_model_parser(sub, _common)
    add_sinks_parser(sub, _common)

    demo = sub.add_parser(
        "demo",
        help="offline demo over bundled recorded events",
        description="Serve a bundled sample of recorded events over a local server that speaks "
        "the EventStreams protocol, and monitor it. Needs no network.",
    )
    _common(demo)
    demo.add_argument("--speed", metavar="N", default="4", help="multiple of real time (default 4)")
    demo.add_argument("--state-dir", metavar="DIR", help="keep state here (default: a temp dir)")
    demo.add_argument("--metrics-addr", metavar="HOST:PORT", help="default 127.0.0.1:9410")
    demo.add_argument(
        "--hold", action="store_true", help="keep running after the sample (until Ctrl-C)"
    )
    demo.add_argument(
        "--keep-sinks",
        action="store_true",
        help="also deliver to the remote sinks of the settings file (Redis, Kafka, webhooks...)",
    )
    return parser


# -- settings ---------------------------------------------------------------------------------


def _load(args: argparse.Namespace) -> tuple[Settings, str]:
    path = Path(args.config) if args.config else default_config_path()
    settings = load_settings(path)
    logging_cfg = settings.logging
    if args.log_level:
        logging_cfg = dataclasses.replace(logging_cfg, level=args.log_level)
    if args.log_format:
        logging_cfg = dataclasses.replace(logging_cfg, format=args.log_format)
    settings = dataclasses.replace(settings, logging=logging_cfg)
    return settings, str(path) if path else "built-in defaults"


def _with_jsonl(settings: Settings, path: str) -> Settings:
    sinks = list(settings.sinks)
    for i, s in enumerate(sinks):
        if isinstance(s, JsonlSinkConfig):
            sinks[i] = dataclasses.replace(s, path=path)
            break
    else:
        sinks.append(JsonlSinkConfig(path=path))
    return dataclasses.replace(settings, sinks=tuple(sinks))


def _apply_run_args(settings: Settings, args: argparse.Namespace) -> Settings:
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
    if args.archive:
        settings = dataclasses.replace(
            settings, archive=dataclasses.replace(settings.archive, enabled=True, dir=args.archive)
        )
    if args.no_archive:
        settings = dataclasses.replace(
            settings, archive=dataclasses.replace(settings.archive, enabled=False)
        )
    if args.alerts_jsonl:
        settings = _with_jsonl(settings, args.alerts_jsonl)
    if args.metrics_addr:
        settings = _with_metrics_addr(settings, args.metrics_addr)
    return settings


def _with_metrics_addr(settings: Settings, addr: str) -> Settings:
    try:
        parse_host_port(addr)
    except ValueError as exc:
        raise UsageError(f"--metrics-addr: {exc}") from None
    return dataclasses.replace(
        settings, metrics=dataclasses.replace(settings.metrics, enabled=True, addr=addr)
    )


# -- running ----------------------------------------------------------------------------------


async def _cmd_run(settings: Settings, source_name: str, reset: bool) -> int:
    validate_for_run(settings, source_name)
    state = Path(settings.state_dir)
    lock = StateDirLock(state)
    lock.acquire()
    try:
        return await _run_locked(settings, state, reset)
    finally:
        lock.release()


async def _run_locked(settings: Settings, state: Path, reset: bool) -> int:
    store = CheckpointStore(state)
    names = stream_names(settings.stream.url)
    metrics = Metrics(version=__version__)
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
    server = await serve_metrics(settings, metrics, monitor)
    if server is not None:
        log.info("metrics served", extra={"fields": {"url": server.url + "/metrics"}})
    summary = await run_monitor(monitor, server)
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
        settings = _with_metrics_addr(settings, args.metrics_addr)
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
    )
    holder.append(monitor)
    server = await serve_metrics(settings, metrics, monitor)
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    tune_gc()
    try:
        settings, source_name = _load(args)
        setup_logging(settings.logging.level, settings.logging.format)
        if args.command == "run":
            settings = _apply_run_args(settings, args)
            return asyncio.run(_cmd_run(settings, source_name, args.reset_checkpoint))
        if args.command == "replay":
            return asyncio.run(_cmd_replay(settings, args))
        if args.command == "rules":
            return run_rules_command(settings, args)
        if args.command == "sinks":
            return run_sinks_command(settings, args)
        if args.command == "model":
            return run_model_command(settings, args)
        if args.command == "demo":
            if args.metrics_addr:
                settings = _with_metrics_addr(settings, args.metrics_addr)
            return asyncio.run(run_demo(settings, args))
    except ConfigError as exc:
        print(f"rcwatch: configuration error{'s' if len(exc.issues) > 1 else ''}:", file=sys.stderr)
        for issue in exc.issues:
            print(f"  {issue}", file=sys.stderr)
        return EXIT_CONFIG
    except (UsageError, CheckpointError) as exc:
        print(f"rcwatch: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except SinkError as exc:  # a sink that cannot start (an unwritable alert file, ...)
        print(f"rcwatch: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except OSError as exc:  # the file system refused what start-up needs
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"rcwatch: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_CONFIG
    except StopAbandoned as stop:  # a second signal: stopped waiting for the sinks
        print(
            "rcwatch: stopped without waiting for the sinks; events after the last checkpoint "
            "(and spooled alerts) are processed by the next run",
            file=sys.stderr,
        )
        return 128 + stop.signum
    parser.error(f"unknown command {args.command}")
    return EXIT_CONFIG  # pragma: no cover
