"""``rcwatch scaleout topics|ingest``: the scale-out processes (docs/scaleout.md)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from detectors.event import RecentChange
from detectors.windows import Observation, WindowStore
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
from streams.pipeline.runner import Monitor
from streams.pipeline.stages import content_context, content_from_record, evaluate_record
from streams.scaleout.checkpoints import CheckpointCopier, latest_checkpoint
from streams.scaleout.config import ScaleOutConfig
from streams.scaleout.fetcher import FetchWorker
from streams.scaleout.ingest import Ingest
from streams.scaleout.kafka_source import KafkaSource
from streams.scaleout.lease import Lease, last_position
from streams.scaleout.patterns import PageShard
from streams.scaleout.produce import new_producer
from streams.scaleout.records import encode_evaluation, parse_marks, parse_position
from streams.scaleout.topics import ensure_topics, topic_specs
from streams.scaleout.window_stage import WindowStage
from streams.settings import Settings, validate_for_run
from streams.source.checkpoint import CheckpointStore, StateDirLock
from streams.source.eventstreams import stream_names
from streams.source.start import load_checkpoint

if TYPE_CHECKING:
    pass

__all__ = ["run_scaleout_command"]

log = logging.getLogger(__name__)


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
    if args.scaleout_command in ("worker", "windows"):
        if args.metrics_addr:
            settings = with_metrics_addr(settings, args.metrics_addr)
        if args.scaleout_command == "windows":
            if cfg.windows != "partitioned":
                raise UsageError(
                    "window stages run with scaleout.windows: partitioned (the detect stage "
                    "keeps the windows otherwise)"
                )
            return asyncio.run(_windows(settings, cfg))
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


@contextlib.asynccontextmanager
async def _handled(handlers: dict[signal.Signals, Callable[[], None]]) -> AsyncIterator[None]:
    """The event loop calls ``handlers`` on those signals; afterwards the handlers in place
    before come back (the entry point's: a later signal ends in one line).

    A signal the loop has received but not yet dispatched when its handler is removed is
    dropped by asyncio. One that came during a stretch of work without an await (loading
    the rules) would be lost, and the stage would run on, deaf to it. So before the
    handlers go, the loop runs twice: once to read the signal, once to dispatch it."""
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in handlers}
    for sig, handler in handlers.items():
        loop.add_signal_handler(sig, handler)
    try:
        yield
    finally:
        try:
            for _ in range(2):
                await asyncio.sleep(0)
        finally:
            for sig, old in previous.items():
                loop.remove_signal_handler(sig)
                if old is not None:
                    signal.signal(sig, old)


def _signals(
    stop: Callable[[], None], reload: Callable[[], None] | None = None
) -> contextlib.AbstractAsyncContextManager[None]:
    """While a stage runs: SIGINT/SIGTERM call ``stop``, SIGHUP ``reload``."""
    return _handled(
        {signal.SIGINT: stop, signal.SIGTERM: stop, signal.SIGHUP: reload or (lambda: None)}
    )


@contextlib.asynccontextmanager
async def _starting() -> AsyncIterator[None]:
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
        async with _handled({sig: on(sig) for sig in (signal.SIGINT, signal.SIGTERM)}):
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
    async with _starting():
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

    def evaluate(
        shard: PageShard | None, seq: int | None, change: RecentChange, content: Any
    ) -> tuple[bytes | None, list[Observation]]:
        """The rules' answer for an event in scope, worked out here so the detect stage
        only has to take it (it checks the rules' digest against its own); with
        partitioned windows, the pattern observations too, with this partition's page
        memory (``shard``)."""
        engine = detection.engine
        answer = evaluate_record(detection, scope, change, content)
        if answer is None:  # out of scope
            return None, []
        observed: list[Observation] = []
        if shard is not None and engine.pattern_rules:
            findings, _, fps = answer
            ctx = content_context(content_from_record(content) if content is not None else None)
            observed = shard.observe(
                seq, change=change, ctx=ctx, findings=findings, fingerprints=fps, engine=engine
            )
        if detection.engine is not engine:  # reloaded meanwhile: the detect stage evaluates
            return None, observed
        return encode_evaluation(engine.digest, *answer), observed

    pc = settings.patterns

    def page_memory() -> WindowStore:
        return WindowStore(
            max_keys=pc.max_keys,
            page_memory_seconds=pc.page_memory_seconds,
            pii_memory_seconds=pc.pii_memory_seconds,
        )

    worker = FetchWorker(cfg, needs_content, fetch, metrics, evaluate, page_memory=page_memory)
    async with _starting():
        server = await _serve(
            settings, metrics, lambda: (bool(worker.assigned), {"role": "worker"})
        )
    reloading = asyncio.create_task(reloader.run())
    try:
        async with _signals(worker.stop, reloader.request):
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


async def _windows(settings: Settings, cfg: ScaleOutConfig) -> int:
    """A window stage: the observations topic in, the fired topic out (one of N)."""
    metrics = Metrics(version=__version__)
    async with _starting():
        await _topics(cfg)
    stage = WindowStage(cfg, metrics, max_keys=settings.patterns.max_keys)
    async with _starting():
        server = await _serve(
            settings, metrics, lambda: (bool(stage.assigned), {"role": "windows"})
        )
    try:
        async with _signals(stage.stop):
            summary = await stage.run()
    finally:
        if server is not None:
            await server.stop()
    print(
        f"windows: {summary.observations:,} observations counted, {summary.fired:,} findings "
        f"fired, {summary.rebalances} assignments",
        file=sys.stderr,
    )
    return 0


class _Standby:
    """A stage that stands by until it holds its lease: a stop (a signal) and a lost lease
    reach the running part once there is one (``activate``), also when they came during
    its set-up, and health says "standby" until then. A lost lease also ``fence``s the
    stage: it publishes no position or checkpoint copy after it, which would otherwise be
    the newest a later standby reads."""

    def __init__(self, role: str) -> None:
        self.role = role
        self.stopping = asyncio.Event()
        self.gone = False  # the lease was taken away
        self._stop: Callable[[], None] | None = None
        self._fence: Callable[[], None] | None = None
        self._health: Health | None = None

    def activate(self, stop: Callable[[], None], health: Health, fence: Callable[[], None]) -> None:
        self._stop, self._health, self._fence = stop, health, fence
        if self.gone:
            self.lost()
        elif self.stopping.is_set():  # a signal came during the set-up
            stop()

    def stop(self) -> None:
        self.stopping.set()
        if self._stop is not None:
            self._stop()

    def lost(self) -> None:
        self.gone = True
        if self._fence is not None:
            self._fence()
        if self._stop is not None:
            self._stop()

    def health(self) -> tuple[bool, dict[str, Any]]:
        if self._health is not None:
            return self._health()
        return True, {"role": self.role, "state": "standby"}

    def lost_line(self, lease: Lease) -> int:
        """The exit status: 1, with one line, when another process took the lease."""
        if not lease.lost:
            return 0
        print(
            f"rcwatch: another {self.role} took this stream's lease; start this one again "
            "to stand by",
            file=sys.stderr,
        )
        return 1


async def _detect(settings: Settings, cfg: ScaleOutConfig) -> int:
    """The detect stage: the enriched topic through the single-process pipeline, while
    this process holds the detect lease (standing by until then)."""
    state = Path(settings.state_dir)
    lock = StateDirLock(state)
    lock.acquire()
    try:
        store = CheckpointStore(state)
        metrics = Metrics(version=__version__)
        role = _Standby("detect")
        lease = Lease(
            cfg, cfg.detect_group, cfg.detect_checkpoints_topic, role.lost, metrics.registry
        )
        async with _starting():
            await _topics(cfg)
            server = await _serve(settings, metrics, role.health)
        try:
            async with _starting():
                await lease.start()
            async with _signals(role.stop):
                held = await _lease_or_stop(lease, role)
            if not held:
                return 0
            async with _starting():
                monitor = await _active_detect(settings, cfg, store, metrics)
                producer = new_producer(cfg)
                await producer.start()
            copier = CheckpointCopier(cfg, store, metrics.registry)
            role.activate(monitor.request_stop, monitor.health, copier.fence)
            copying = asyncio.create_task(copier.run(producer))
            handed, server = server, None  # run_monitor stops it
            try:
                summary = await run_monitor(monitor, handed)
            finally:
                copier.stop()  # one last copy, of the final checkpoint
                await copying
                await producer.stop()
        finally:
            await lease.stop()
            if server is not None:
                await server.stop()
        print(format_summary(summary), file=sys.stderr)
        return role.lost_line(lease)
    finally:
        lock.release()


def _is_position(position: str, cfg: ScaleOutConfig) -> bool:
    try:
        parse_position(position, cfg.enriched_topic, cfg.fired_topic)
    except ValueError:
        log.warning("a checkpoint copy on the broker names no position on the enriched topic")
        return False
    return True


async def _active_detect(
    settings: Settings, cfg: ScaleOutConfig, store: CheckpointStore, metrics: Metrics
) -> Monitor:
    """The monitor of an active detect stage, from the newer of the state directory's
    checkpoint and the copy the last active detect stage left on the broker."""
    streams_name = f"kafka:{cfg.enriched_topic}"
    if cfg.windows == "partitioned":  # another checkpoint: no pattern windows, two topics
        streams_name += f"+{cfg.fired_topic}"
    copy = await latest_checkpoint(cfg)
    if (
        copy is not None
        and copy.streams == streams_name
        and _is_position(copy.position, cfg)
        and store.adopt_if_newer(copy.position, copy.streams, copy.event_time, copy.state)
    ):
        log.info(
            "resuming from the checkpoint the last active detect stage copied to the broker",
            extra={"fields": {"event_time": copy.event_time}},
        )
    # the checkpoint, else the one before it; an unreadable one is set aside and counted
    cp = load_checkpoint(store, metrics)
    offsets: dict[int, int] = {}
    marks: dict[int, int] = {}
    fired_offsets: dict[int, int] = {}
    if cp is not None:
        if cp.streams != streams_name:
            raise UsageError(
                f"the state directory {store.state_dir} belongs to {cp.streams!r}, not "
                f"{streams_name!r}: give the detect stage a state directory of its own"
            )
        try:
            fired = cfg.fired_topic
            offsets = parse_position(cp.last_event_id, cfg.enriched_topic, fired)
            marks = parse_marks(cp.last_event_id, cfg.enriched_topic, fired)
            fired_offsets = parse_position(cp.last_event_id, fired, cfg.enriched_topic)
        except ValueError as exc:
            raise UsageError(f"{store.path}: not a detect-stage position ({exc})") from None
    source = KafkaSource(
        cfg, cfg.enriched_topic, offsets, settings.pipeline.batch_max_events, metrics,
        marks=marks, fired_offsets=fired_offsets,
    )  # fmt: skip
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
    return monitor


async def _ingest(settings: Settings, cfg: ScaleOutConfig, *, reset: bool) -> int:
    """An ingest: active while it holds its stream's lease, standing by until then."""
    state = Path(settings.state_dir)
    lock = StateDirLock(state)  # a second ingest on this state directory is refused
    lock.acquire()
    try:
        names = stream_names(settings.stream.url)
        metrics = Metrics(version=__version__)
        role = _Standby("ingest")
        lease = Lease(
            cfg, cfg.ingest_group, cfg.ingest_positions_topic, role.lost, metrics.registry
        )
        async with _starting():
            await _topics(cfg)
            store = CheckpointStore(state)
            server = await _serve(settings, metrics, role.health)
        try:
            async with _starting():
                await lease.start()
            async with _signals(role.stop):
                if not await _lease_or_stop(lease, role):
                    return 0
                known = await last_position(cfg, names)
                if (
                    known is not None
                    and not reset
                    and store.adopt_if_newer(known.sse_id, names, known.event_time)
                ):
                    log.info(
                        "resuming from the position the last active ingest published",
                        extra={"fields": {"event_time": known.event_time}},
                    )
                _names, _m, _start, source = open_stream(
                    settings, store, reset=reset, metrics=metrics
                )
                ingest = Ingest(
                    source, cfg, store, names, metrics, publish_positions=True,
                    first_seq=known.next_seq if known is not None else 0,
                )  # fmt: skip
                role.activate(ingest.stop, source.health, ingest.fence)
                summary = await ingest.run()
        finally:
            await lease.stop()
            if server is not None:
                await server.stop()
        print(
            f"ingest: {summary.produced:,} events produced in {summary.batches:,} batches "
            f"({summary.retries} retried) to {cfg.events_topic}",
            file=sys.stderr,
        )
        return role.lost_line(lease)
    finally:
        lock.release()


async def _lease_or_stop(lease: Lease, role: _Standby) -> bool:
    """Wait for the lease (True) or a stop (False, said in one line)."""
    if not lease.held.is_set():
        log.info(
            "standing by: another process of this role holds the lease",
            extra={"fields": {"group": lease.group}},
        )
        print(f"{role.role}: standing by (another {role.role} of this stream is active)",
              file=sys.stderr)  # fmt: skip
    held = asyncio.ensure_future(lease.held.wait())
    stopped = asyncio.ensure_future(role.stopping.wait())
    try:
        await asyncio.wait((held, stopped), return_when=asyncio.FIRST_COMPLETED)
    finally:
        held.cancel()
        stopped.cancel()
    if role.stopping.is_set():
        print(f"{role.role}: stopped while standing by", file=sys.stderr)
        return False
    log.info("holding the lease: active", extra={"fields": {"group": lease.group}})
    return True
