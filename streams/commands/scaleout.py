"""``rcwatch scaleout topics|ingest``: the scale-out processes (docs/scaleout.md)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import signal
import sys
from pathlib import Path

from sinks.metrics import Metrics, MetricsServer
from streams import __version__
from streams.commands.monitor import apply_stream_args
from streams.scaleout.config import ScaleOutConfig
from streams.scaleout.ingest import Ingest
from streams.scaleout.topics import ensure_topics, topic_specs
from streams.settings import Settings, parse_host_port, validate_for_run
from streams.source.checkpoint import CheckpointStore, StateDirLock
from streams.source.eventstreams import EventStreamsSource, stream_names
from streams.source.start import resolve_start

__all__ = ["run_scaleout_command"]


def _config(settings: Settings, args: argparse.Namespace) -> ScaleOutConfig:
    cfg = settings.scaleout
    if args.bootstrap_servers:
        cfg = dataclasses.replace(cfg, bootstrap_servers=args.bootstrap_servers)
    return cfg


def run_scaleout_command(settings: Settings, args: argparse.Namespace) -> int:
    cfg = _config(settings, args)
    if args.scaleout_command == "topics":
        created = asyncio.run(ensure_topics(cfg.bootstrap_servers, topic_specs(cfg)))
        for spec in topic_specs(cfg):
            what = "created" if spec.name in created else "exists"
            print(f"{spec.name}: {spec.partitions} partitions ({what})")
        return 0
    settings = apply_stream_args(settings, args)
    validate_for_run(settings, "settings")
    return asyncio.run(_ingest(settings, cfg, reset=args.reset_checkpoint))


async def _ingest(settings: Settings, cfg: ScaleOutConfig, *, reset: bool) -> int:
    state = Path(settings.state_dir)
    lock = StateDirLock(state)  # a second ingest on this state directory is refused
    lock.acquire()
    try:
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
        await ensure_topics(cfg.bootstrap_servers, topic_specs(cfg))
        source = EventStreamsSource(
            settings.stream, metrics, last_event_id=start.last_event_id, since=start.since
        )
        ingest = Ingest(source, cfg, store, names, metrics)
        server = None
        if settings.metrics.enabled:
            host, port = parse_host_port(settings.metrics.addr)
            server = MetricsServer(metrics, host, port, source.health)
            await server.start()
            print(f"metrics: {server.url}/metrics", file=sys.stderr)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, ingest.stop)
        try:
            summary = await ingest.run()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            if server is not None:
                await server.stop()
        print(
            f"ingest: {summary.produced:,} events produced in {summary.batches:,} batches "
            f"({summary.retries} retried) to {cfg.events_topic}",
            file=sys.stderr,
        )
        return 0
    finally:
        lock.release()
