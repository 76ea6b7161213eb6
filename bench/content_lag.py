"""Stream lag with content fetching against a slow wiki API, and fetch throughput.

    python -m bench.content_lag [--copies 8] [--speed 20] [--latency 0.2]

1. Lag. The recorded slice is repeated ``--copies`` times (fresh ids, revision ids and
   event times per copy) and served by the local EventStreams server at ``--speed`` times
   real time (20x the live ~54 events/s); a local MediaWiki API answers every content
   request after ``--latency`` seconds (200 ms) and knows every revision. The monitor runs
   with content fetching on and its default politeness limits. Printed: the lag of every
   batch from receipt to the end of the ordered stage (max, p99, p50), events received
   and processed, fetches and misses. Target: lag under 2 s, no event skipped.
2. Throughput. The same fetcher fetches 300 revisions on 10 wikis, all at once (as the
   runner does), against a sequential fetcher (one request at a time) in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import datetime, timedelta

import orjson

from bench.common import RECORDED, require
from detectors.event import decode_event
from sinks.metrics import Metrics
from streams.app import build_monitor
from streams.fetch.content import ContentConfig, ContentFetcher
from streams.pipeline.runner import Monitor
from streams.pipeline.stages import BatchResult
from streams.settings import ArchiveConfig, Settings
from streams.source.eventstreams import EventStreamsConfig, EventStreamsSource
from streams.standins.fake_mediawiki import FakeMediaWiki
from streams.standins.sse_server import EventStreamsServer

UA = "rcwatch-bench/0.1 (https://example.org/rcwatch; bench@example.org)"


def stream(copies: int, api: FakeMediaWiki) -> list[bytes]:
    recorded = [
        orjson.loads(orjson.loads(x)["data"]) for x in require(RECORDED).read_bytes().splitlines()
    ]
    out = []
    span = timedelta(seconds=47)
    for copy in range(copies):
        for base in recorded:
            e = orjson.loads(orjson.dumps(base))
            e["meta"]["id"] = f"{e['meta']['id']}-{copy}"
            dt = datetime.fromisoformat(e["meta"]["dt"]) + span * copy
            e["meta"]["dt"] = dt.isoformat().replace("+00:00", "Z")
            rev = e.get("revision") or {}
            if rev.get("new"):
                new = rev["new"] + copy * 10**10
                old = rev["old"] + copy * 10**10 if rev.get("old") else None
                e["revision"] = {"old": old, "new": new}
                if old:
                    api.add_edit(
                        e["server_name"], old, new, "Some text.\n", "Some text.\nA reply.\n"
                    )
                else:
                    api.add_page(e["server_name"], new, "A new page.\n")
            out.append(orjson.dumps(e))
    return out


async def lag(copies: int, speed: float, latency: float) -> None:
    api = FakeMediaWiki(latency_seconds=latency)
    await api.start()
    events = stream(copies, api)
    server = EventStreamsServer(events, speed=speed)
    await server.start()
    settings = Settings(
        stream=EventStreamsConfig(url=server.url, user_agent=UA),
        archive=ArchiveConfig(enabled=False),
        sinks=(),
        content=ContentConfig(api_url=api.api_url_template),
    )
    metrics = Metrics()
    source = EventStreamsSource(settings.stream, metrics, since="0")
    lags: list[float] = []
    holder: list[Monitor] = []

    def on_batch(result: BatchResult) -> None:
        if result.received_ns is not None:
            lags.append(time.time() - result.received_ns / 1e9)
        if server.caught_up(holder[0].tracker.watermark_id):
            holder[0].request_stop()

    monitor = build_monitor(
        settings,
        source,
        metrics=metrics,
        archive=False,
        sinks=[],
        on_batch=on_batch,
        fetch_content=True,
        streams_name="recentchange",
    )
    holder.append(monitor)
    t0 = time.monotonic()
    summary = await monitor.run()
    wall = time.monotonic() - t0
    await server.stop()
    await api.stop()
    value = metrics.registry.get_sample_value
    fetched = value("rcwatch_content_events_total", {"outcome": "fetched"}) or 0
    missed = value("rcwatch_content_events_total", {"outcome": "missed"}) or 0
    needed = sum(1 for e in events if monitor.pipeline.detection.needs_content(decode_event(e)))
    lags.sort()

    def p(q: float) -> float:
        return lags[min(len(lags) - 1, int(q * len(lags)))]

    print(
        f"stream: {len(events):,} events over {wall:.1f} s ({len(events) / wall:,.0f}/s, "
        f"{speed:g}x real time); API latency {latency * 1000:.0f} ms"
    )
    print(
        f"received {summary.events:,}, processed {summary.processed:,}, dropped "
        f"{dict(summary.dropped) or 0}; needing content {needed:,}: fetched {fetched:.0f}, "
        f"missed {missed:.0f}"
    )
    print(
        f"lag receipt -> done over {len(lags):,} batches: max {max(lags):.3f} s, "
        f"p99 {p(0.99):.3f} s, p50 {statistics.median(lags):.3f} s (target: under 2 s)"
    )
    assert summary.events == len(events), "an event was skipped"


async def throughput(latency: float, n: int = 300, rate: float | None = None) -> None:
    api = FakeMediaWiki(latency_seconds=latency)
    await api.start()
    hosts = [f"wiki{i}.wikipedia.org" for i in range(10)]
    changes = []
    for i in range(n):
        host = hosts[i % len(hosts)]
        api.add_edit(host, 2 * i + 1, 2 * i + 2, "a\n", "a\nb\n")
        changes.append(
            decode_event(
                orjson.dumps(
                    {
                        "meta": {"id": f"t{i}", "dt": "2026-05-05T00:00:00Z"},
                        "type": "edit",
                        "wiki": host.split(".")[0] + "wiki",
                        "server_url": f"https://{host}",
                        "server_name": host,
                        "server_script_path": "/w",
                        "title": "T",
                        "revision": {"old": 2 * i + 1, "new": 2 * i + 2},
                    }
                )
            )
        )
    config = ContentConfig(api_url=api.api_url_template, cache_entries=0)
    if rate is not None:
        config = ContentConfig(
            api_url=api.api_url_template, cache_entries=0, max_requests_per_second=rate
        )
    ours = ContentFetcher(config, Metrics(), user_agent=UA)
    t0 = time.monotonic()
    got = await asyncio.gather(*(ours.fetch(c) for c in changes))
    concurrent_s = time.monotonic() - t0
    assert all(c.status == "ok" for c in got)
    await ours.close()
    sequential = ContentFetcher(config, Metrics(), user_agent=UA)
    t0 = time.monotonic()
    for c in changes:
        assert (await sequential.fetch(c)).status == "ok"
    sequential_s = time.monotonic() - t0
    await sequential.close()
    await api.stop()
    print(
        f"fetch {n} revisions on {len(hosts)} wikis, {latency * 1000:.0f} ms each: "
        f"concurrent {n / concurrent_s:,.1f}/s, sequential {n / sequential_s:,.1f}/s, "
        f"ratio {sequential_s / concurrent_s:.1f}x (limits: {config.per_host_concurrency} per "
        f"wiki, {config.max_requests_per_second:g}/s overall)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--speed", type=float, default=20.0)
    parser.add_argument("--latency", type=float, default=0.2)
    args = parser.parse_args()
    asyncio.run(lag(args.copies, args.speed, args.latency))
    asyncio.run(throughput(args.latency))
    asyncio.run(throughput(args.latency, rate=1000.0))  # the per-wiki bound alone


if __name__ == "__main__":
    main()
