"""``rcwatch scaleout topics|ingest``: the scale-out processes (docs/scaleout.md)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from detectors.event import RecentChange
from sinks.metrics import Health, Metrics, MetricsServer
from streams import __version__
from streams.app import UsageError, build_detection, build_monitor, run_monitor, serve_metrics
from streams.commands.monitor import (
    apply_stream_args,
    open_stream,
    with_jsonl,
    with_metrics_addr,
)
from streams.commands.progress import format_summary
from streams.fetch.content import Content, ContentFetcher
from streams.pipeline.rules_reload import RulesReloader
from streams.pipeline.stages import evaluate_record
from streams.scaleout.config import ScaleOutConfig
from streams.scaleout.fetcher import FetchWorker
from streams.scaleout.ingest import Ingest
from streams.scaleout.kafka_source import KafkaSource
from streams.scaleout.records import encode_evaluation, parse_position
from streams.scaleout.topics import ensure_topics, topic_specs
from streams.settings import Settings, validate_for_run
from streams.source.checkpoint import CheckpointStore, StateDirLock
from streams.source.start import load_checkpoint

__all__ = ["run_scaleout_command"]


def _config(settings: Settings, args: argparse.Namespace) -> ScaleOutConfig:
    cfg = settings.scaleout
    if args.bootstrap_servers:
        cfg = dataclasses.replace(cfg, bootstrap_servers=args.bootstrap_servers)
    return cfg


def run_scaleout_command(settings: Settings, args: argparse.Namespace) -> int:
    cfg = _config(settings, args)
    if args.scaleout_command == "topics":
        created = asyncio.run(_topics(cfg))
        for spec in topic_specs(cfg):
            what = "created" if spec.name in created else "exists"
            print(f"{spec.name}: {spec.partitions} partitions ({what})")
        return 0
    if args.scaleout_command == "worker":
        if args.metrics_addr:
            settings = with_metrics_addr(settings, args.metrics_addr)
        return asyncio.run(_worker(settings, cfg))
    if args.scaleout_command == "detect":
        if args.state_dir:
            settings = dataclasses.replace(settings, state_dir=args.state_dir)
        if args.alerts_jsonl:
            settings = with_jsonl(settings, args.alerts_jsonl)
        if args.metrics_addr:
            settings = with_metrics_addr(settings, args.metrics_addr)
        return asyncio.run(_detect(settings, cfg))
    settings = apply_stream_args(settings, args)
    validate_for_run(settings, "settings")
    return asyncio.run(_ingest(settings, cfg, reset=args.reset_checkpoint))


@contextlib.contextmanager
def _handled(handlers: dict[signal.Signals, Callable[[], None]]) -> Iterator[None]:
    """The event loop calls ``handlers`` on those signals; afterwards the handlers in place
    before come back (the entry point's: a later signal ends in one line)."""
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in handlers}
    for sig, handler in handlers.items():
        loop.add_signal_handler(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            loop.remove_signal_handler(sig)
            if old is not None:
                signal.signal(sig, old)


def _signals(
    stop: Callable[[], None], reload: Callable[[], None] | None = None
) -> contextlib.AbstractContextManager[None]:
    """While a stage runs: SIGINT/SIGTERM call ``stop``, SIGHUP ``reload``."""
    return _handled(
        {signal.SIGINT: stop, signal.SIGTERM: stop, signal.SIGHUP: reload or (lambda: None)}
    )


@contextlib.contextmanager
def _starting() -> Iterator[None]:
    """Until a stage runs, SIGINT/SIGTERM cancel its start-up (creating topics can wait on
    a broker), and the entry point ends the process with its one line (130/143)."""
    task = asyncio.current_task()
    got: list[int] = []

    def on(sig: signal.Signals) -> Callable[[], None]:
        def cancel() -> None:
            got.append(sig)
            if task is not None:
                task.cancel()

        return cancel

    try:
        with _handled({sig: on(sig) for sig in (signal.SIGINT, signal.SIGTERM)}):
            yield
    except asyncio.CancelledError:
        if not got:
            raise
        from streams.entry import Terminated

        raise (Terminated() if got[0] == signal.SIGTERM else KeyboardInterrupt()) from None


async def _topics(cfg: ScaleOutConfig) -> list[str]:
    """ensure_topics with its failures as one-line errors: a broker that cannot be reached,
    topics that exist with fewer partitions (a configuration error)."""
    from aiokafka.errors import KafkaError

    try:
        return await ensure_topics(cfg.bootstrap_servers, topic_specs(cfg))
    except KafkaError as exc:
        raise UsageError(
            f"cannot reach the Kafka brokers at {cfg.bootstrap_servers}: {type(exc).__name__}"
        ) from None
    except RuntimeError as exc:
        raise UsageError(str(exc)) from None


async def _serve(settings: Settings, metrics: Metrics, health: Health) -> MetricsServer | None:
    server = await serve_metrics(settings, metrics, health)
    if server is not None:
        print(f"metrics: {server.url}/metrics", file=sys.stderr)
    return server


async def _worker(settings: Settings, cfg: ScaleOutConfig) -> int:
    """A fetch worker: the events topic in, the enriched topic out (one of N)."""
    metrics = Metrics(version=__version__)
    with _starting():
        await _topics(cfg)
    detection = build_detection(settings, metrics)
    # the rules decide which texts to fetch: a worker reloads them as the detect stage does
    reloader = RulesReloader(
        settings.rules_paths,
        detection,
        metrics,
        check_seconds=settings.detectors.reload_check_seconds,
    )
    scope = settings.scope.build()
    fetcher = (
        ContentFetcher(settings.content, metrics, user_agent=settings.stream.user_agent)
        if settings.content.enabled
        else None
    )

    def needs_content(change: RecentChange) -> bool:
        return (
            fetcher is not None
            and change.domain != "canary"
            and scope.accepts(change)
            and detection.needs_content(change)
        )

    async def fetch(change: RecentChange) -> Content:
        assert fetcher is not None
        return await fetcher.fetch(change)

    def evaluate(change: RecentChange, content: dict[str, Any] | None) -> bytes | None:
        """The rules' answer for an event in scope, worked out here so the detect stage
        only has to take it (it checks the rules' digest against its own)."""
        digest = detection.engine.digest
        answer = evaluate_record(detection, scope, change, content)
        if answer is None or detection.engine.digest != digest:  # out of scope, or reloaded
            return None
        return encode_evaluation(digest, *answer)

    worker = FetchWorker(cfg, needs_content, fetch, metrics, evaluate)
    with _starting():
        server = await _serve(
            settings, metrics, lambda: (bool(worker.assigned), {"role": "worker"})
        )
    reloading = asyncio.create_task(reloader.run())
    try:
        with _signals(worker.stop, reloader.request):
            summary = await worker.run()
    finally:
        reloading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reloading
        if fetcher is not None:
            await fetcher.close()
        if server is not None:
            await server.stop()
    print(
        f"worker: {summary.records:,} events passed on, {summary.fetched:,} texts fetched, "
        f"{summary.rebalances} assignments",
        file=sys.stderr,
    )
    return 0


async def _detect(settings: Settings, cfg: ScaleOutConfig) -> int:
    """The detect stage: the enriched topic through the single-process pipeline."""
    state = Path(settings.state_dir)
    lock = StateDirLock(state)
    lock.acquire()
    try:
        store = CheckpointStore(state)
        streams_name = f"kafka:{cfg.enriched_topic}"
        metrics = Metrics(version=__version__)
        # the checkpoint, else the one before it; an unreadable one is set aside and counted
        cp = load_checkpoint(store, metrics)
        offsets: dict[int, int] = {}
        if cp is not None:
            if cp.streams != streams_name:
                raise UsageError(
                    f"the state directory {state} belongs to {cp.streams!r}, not "
                    f"{streams_name!r}: give the detect stage a state directory of its own"
                )
            try:
                offsets = parse_position(cp.last_event_id, cfg.enriched_topic)
            except ValueError as exc:
                raise UsageError(f"{store.path}: not a detect-stage position ({exc})") from None
        with _starting():
            await _topics(cfg)
        source = KafkaSource(cfg, cfg.enriched_topic, offsets, settings.pipeline.batch_max_events)
        monitor = build_monitor(
            settings,
            source,
            metrics=metrics,
            checkpoint=store,
            streams_name=streams_name,
            reloader=True,
            fetch_content=False,  # the fetch workers did
        )
        if cp is not None:
            monitor.restore_state(store.load_state(cp))
        with _starting():
            server = await serve_metrics(settings, metrics, monitor.health)
        summary = await run_monitor(monitor, server)
        print(format_summary(summary), file=sys.stderr)
        return 0
    finally:
        lock.release()


async def _ingest(settings: Settings, cfg: ScaleOutConfig, *, reset: bool) -> int:
    state = Path(settings.state_dir)
    lock = StateDirLock(state)  # a second ingest on this state directory is refused
    lock.acquire()
    try:
        with _starting():
            await _topics(cfg)
            store = CheckpointStore(state)
            names, metrics, _start, source = open_stream(settings, store, reset=reset)
            ingest = Ingest(source, cfg, store, names, metrics)
            server = await _serve(settings, metrics, source.health)
        try:
            with _signals(ingest.stop):
                summary = await ingest.run()
        finally:
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
