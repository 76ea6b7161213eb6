"""``rcwatch triage``: the triage page over the alert store, without monitoring.

For a team that shares one store (PostgreSQL) while ``rcwatch run`` writes it from
another host, or to read an old state directory. ``rcwatch run`` and ``rcwatch demo
--triage`` serve the same page themselves.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from sinks.metrics import Metrics
from sinks.secrets import SecretError
from sinks.store import VerdictCollector
from streams import __version__
from streams.app import UsageError, serve_metrics, serve_triage
from streams.commands.monitor import with_metrics_addr, with_triage_addr
from streams.settings import Settings

__all__ = ["run_triage_command"]


def run_triage_command(settings: Settings, args: argparse.Namespace) -> int:
    settings = with_triage_addr(settings, "--addr", args.addr)
    if args.metrics_addr:
        settings = with_metrics_addr(settings, args.metrics_addr)
    return asyncio.run(_serve(settings))


async def _serve(settings: Settings) -> int:
    metrics = Metrics(version=__version__)
    try:
        target = settings.store_target()
    except SecretError as exc:
        raise UsageError(f"store.postgres_dsn: {exc}") from exc
    if target is not None:
        metrics.registry.register(VerdictCollector(target))
    page = await serve_triage(settings, metrics)
    assert page is not None  # enabled above
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = None
    try:
        server = await serve_metrics(settings, metrics, lambda: (True, {"triage": page.url}))
        print(f"triage page: {page.url} (Ctrl-C stops)", file=sys.stderr, flush=True)
        if server is not None:
            print(f"metrics: {server.url}/metrics", file=sys.stderr, flush=True)
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if server is not None:
            await server.stop()
        await page.stop()
    return 0
