"""``rcwatch demo``: the whole path, offline.

Serves the bundled sample of recorded events (``streams/data/demo-events.ndjson.gz``) over
a local server that speaks the EventStreams protocol, and the text its synthetic edits
added (``demo-content.json.gz``) over a local stand-in for the wikis' MediaWiki API, and
runs the monitor against both exactly as ``rcwatch run`` would run against
stream.wikimedia.org and the wikis (recorded edits have no text there: counted as misses).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gzip
import secrets
import sys
import tempfile
from importlib import resources
from pathlib import Path

import orjson

from sinks.delivery import read_dead_letters, sink_state_dir
from sinks.factory import REMOTE_SINK_CONFIGS
from sinks.metrics import Metrics
from sinks.spool import Spool
from streams import __version__
from streams.app import UsageError, build_monitor, run_monitor, serve_metrics, serve_triage
from streams.commands.monitor import with_metrics_addr, with_triage_addr
from streams.commands.progress import format_summary
from streams.pipeline.runner import Monitor
from streams.pipeline.stages import BatchResult
from streams.settings import (
    JsonlSinkConfig,
    Settings,
    SinkConfig,
    StdoutSinkConfig,
)
from streams.source.checkpoint import CheckpointStore
from streams.source.eventstreams import EventStreamsSource
from streams.source.replay import parse_speed
from streams.source.start import resolve_start
from streams.standins.fake_mediawiki import FakeMediaWiki
from streams.standins.sse_server import EventStreamsServer
from streams.triage.server import TriageServer

__all__ = ["load_sample", "run_demo"]

SAMPLE = "demo-events.ndjson.gz"
CONTENT = "demo-content.json.gz"
# The local server ends each connection after this long, as EventStreams does (~15 min).
# After the sample (``--hold``) its stream is idle, as the live one never is, and like the
# real service it sends nothing then (no heartbeats): a stall timeout shorter than this
# would reconnect, and warn, every 30 s. The demo's is longer, so the hold is quiet: the
# routine close and a reconnect (logged at INFO) every 15 minutes, the event the resume
# delivers again recognised by the client, counts exact.
CONNECTION_SECONDS = 900.0
STALL_SECONDS = CONNECTION_SECONDS + 60.0


def load_sample() -> list[bytes]:
    data = resources.files("streams").joinpath("data", SAMPLE).read_bytes()
    return [line for line in gzip.decompress(data).split(b"\n") if line]


def load_content(api: FakeMediaWiki) -> int:
    """Register the synthetic edits' texts with the local API; returns how many."""
    raw = resources.files("streams").joinpath("data", CONTENT).read_bytes()
    entries = orjson.loads(gzip.decompress(raw))
    for key, e in entries.items():
        server_name, rev = key.split("|")
        api.add_edit(server_name, e["old_rev"], int(rev), e["old"], e["new"], title=e["title"])
    return len(entries)


def demo(settings: Settings, args: argparse.Namespace) -> int:
    if args.metrics_addr:
        settings = with_metrics_addr(settings, args.metrics_addr)
    return asyncio.run(run_demo(settings, args))


async def run_demo(settings: Settings, args: argparse.Namespace) -> int:
    try:
        speed = parse_speed(args.speed)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    events = load_sample()
    # event-time Kafka timestamps: a state directory kept from an earlier demo run resumes
    # where it stopped, although the server is a new one
    server = EventStreamsServer(
        events, speed=speed, clock="event", max_connection_seconds=CONNECTION_SECONDS
    )
    await server.start()
    api = FakeMediaWiki(latency_seconds=0.05)
    await api.start()
    load_content(api)
    state_dir = Path(args.state_dir or tempfile.mkdtemp(prefix="rcwatch-demo-"))
    settings = dataclasses.replace(
        settings,
        stream=dataclasses.replace(
            settings.stream,
            url=server.url,
            user_agent=f"rcwatch/{__version__} (offline demo)",
            since=None,
            stall_timeout_seconds=STALL_SECONDS,
        ),
        state_dir=str(state_dir),
        sinks=_demo_sinks(settings, keep=args.keep_sinks),
        archive=dataclasses.replace(settings.archive, enabled=True, dir=None),
        content=dataclasses.replace(
            settings.content, enabled=True, api_url=api.api_url_template, max_wait_seconds=5.0
        ),
    )
    metrics = Metrics(version=__version__)
    store = CheckpointStore(state_dir)
    start = resolve_start(
        store,
        streams="recentchange",
        since="0",  # the whole sample (sent as 1 ms after the epoch: 0 means the live end)
        margin_seconds=settings.stream.position_margin_seconds,
        metrics=metrics,
    )
    source = EventStreamsSource(
        settings.stream, metrics, last_event_id=start.last_event_id, since=start.since
    )
    holder: list[Monitor] = []

    def on_batch(_: BatchResult) -> None:
        if not args.hold and server.caught_up(holder[0].tracker.watermark_id):
            holder[0].request_stop()

    monitor = build_monitor(
        settings,
        source,
        metrics=metrics,
        checkpoint=store,
        streams_name="recentchange",
        on_batch=on_batch,
        reloader=True,
        fetch_content=True,
    )
    if start.checkpoint is not None:
        monitor.restore_state(store.load_state(start.checkpoint))
    holder.append(monitor)
    triage, triage_login = await _serve_triage(settings, args, metrics)
    metrics_server = await serve_metrics(settings, metrics, monitor.health, fallback=True)
    pace = "as fast as possible" if speed is None else f"{speed:g}x real time"
    print(
        f"rcwatch demo: {len(events)} recorded events served at {server.url} ({pace})",
        file=sys.stderr,
    )
    if metrics_server is not None:
        print(
            f"metrics: {metrics_server.url}/metrics   health: {metrics_server.url}/healthz",
            file=sys.stderr,
        )
    if triage is not None:
        print(f"triage page: {triage_login}", file=sys.stderr)
        print(
            f"labels from verdicts: rcwatch alerts export-labels --state-dir {state_dir} "
            f"--api-url '{api.api_url_template}' --out labels.csv",
            file=sys.stderr,
        )
    print("alerts follow; Ctrl-C stops\n", file=sys.stderr)
    if server.caught_up(start.last_event_id) and not args.hold:
        print(f"{state_dir} has already seen the whole sample; nothing to do", file=sys.stderr)
        monitor.request_stop()
    try:
        summary = await run_monitor(monitor, metrics_server)
    finally:
        if triage is not None:
            await triage.stop()
        await server.stop()
        await api.stop()
    print("\n" + format_summary(summary), file=sys.stderr)
    jsonl = settings.jsonl_path(JsonlSinkConfig())
    print(f"alerts (JSONL): {jsonl}\nraw-event archive: {settings.archive_dir}", file=sys.stderr)
    if settings.store.enabled:  # the state directory is the demo's own: name it
        print(f"browse them: rcwatch alerts list --state-dir {state_dir}", file=sys.stderr)
    for sink in settings.sinks:
        if isinstance(sink, REMOTE_SINK_CONFIGS):
            print(_remote_report(sink.name, sink_state_dir(state_dir, sink.name)), file=sys.stderr)
    return 0


async def _serve_triage(
    settings: Settings, args: argparse.Namespace, metrics: Metrics
) -> tuple[TriageServer | None, str]:
    """The triage page with ``--triage`` (or triage.enabled), and what to print about it:
    when the settings name no token, one is made for this run, and printed with a sign-in
    link that works once, within ten minutes (the token never goes in an address)."""
    cfg = settings.triage
    if not (args.triage or cfg.enabled):
        return None, ""
    token = None
    if cfg.token is None and cfg.trusted_proxy_header is None:
        token = secrets.token_urlsafe(24)
    settings = with_triage_addr(settings, "--triage-addr", args.triage_addr)
    server = await serve_triage(settings, metrics, token=token)
    if server is None or token is None:
        return server, server.url if server is not None else ""
    return server, (
        f"{server.sign_in_link()} (signs you in once, within ten minutes; after that, "
        f"the sign-in form takes the token {token})"
    )


def _remote_report(name: str, directory: Path) -> str:
    spooled, _ = Spool.inspect(directory)
    dead = len(read_dead_letters(directory / "dead-letter.ndjson"))
    if not spooled and not dead:
        return f"sink {name}: every routed alert delivered"
    return (
        f"sink {name}: {spooled} alerts still spooled, {dead} dead-lettered, in {directory} "
        "(run again with the same --state-dir to deliver the spool)"
    )


def _demo_sinks(settings: Settings, *, keep: bool) -> tuple[SinkConfig, ...]:
    """The terminal and a JSONL file; with ``keep``, also the settings' remote sinks (Redis,
    Kafka, Alertmanager, ...), so a stack can be tried end to end offline."""
    local: tuple[SinkConfig, ...] = (StdoutSinkConfig(), JsonlSinkConfig())
    if not keep:
        return local
    return local + tuple(s for s in settings.sinks if isinstance(s, REMOTE_SINK_CONFIGS))
