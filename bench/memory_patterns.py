"""Memory after 1M events with the pattern rules active.

    python -m bench.memory_patterns [--events 1000000]

The recorded slice is cycled with every event made unique (new page title, performer and
ids per copy), so the page memory, the windows and the throttle see a million different
keys and must stay within their caps. Every 20th event is turned into an edit of a user
talk page carrying an insult as its added text (content, as an enriched archive line
carries it), so the harassment rules and the brigading, spree and cross-wiki windows
fill up too. The whole pipeline runs (decode, dedup, scope, detection, patterns, alert
building, throttle), without sinks. Printed: RSS before and after, peak RSS, and the
state sizes; target: under 150 MB RSS.
"""

from __future__ import annotations

import argparse
import gc
import resource
import time

import orjson

from bench.common import RECORDED, require
from detectors.event import RawEvent
from sinks.metrics import Metrics
from streams.app import build_detection
from streams.pipeline.stages import Pipeline
from streams.pipeline.tuning import tune_gc
from streams.settings import Settings

INSULTS = ["you idiot", "you moron", "what a cretin you are", "you dumbass", "stupid asshole you"]


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def events(total: int):  # type: ignore[no-untyped-def]
    recorded = [
        orjson.loads(orjson.loads(x)["data"]) for x in require(RECORDED).read_bytes().splitlines()
    ]
    n = 0
    copy = 0
    while n < total:
        for base in recorded:
            if n >= total:
                return
            e = dict(base)
            e["meta"] = dict(base["meta"], id=f"{base['meta']['id']}-{copy}")
            e["title"] = f"{base.get('title', '')} {copy}"
            e["user"] = f"{base.get('user', 'x')} {copy % 5000}"
            content = None
            if n % 20 == 0:
                e.update(
                    type="edit",
                    namespace=3,
                    title=f"User talk:Victim {n % 3000}",
                    bot=False,
                    revision={"old": 1, "new": 2},
                )
                content = {
                    "status": "ok",
                    "added": INSULTS[n % len(INSULTS)],
                    "removed": None,
                    "reason": None,
                }
            yield RawEvent(None, orjson.dumps(e), 0, content)
            n += 1
        copy += 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    tune_gc()  # the collector settings `rcwatch run` uses
    settings = Settings()
    metrics = Metrics()
    pipeline = Pipeline(
        settings.scope.build(),
        build_detection(settings, metrics),
        metrics,
        dedup_capacity=settings.pipeline.dedup_event_ids,
    )
    gc.collect()
    before = rss_mb()
    t0 = time.perf_counter()
    batch: list[RawEvent] = []
    alerts = 0
    for raw in events(args.events):
        batch.append(raw)
        if len(batch) == 1000:
            alerts += len(pipeline.process(batch).alerts)
            batch = []
    if batch:
        alerts += len(pipeline.process(batch).alerts)
    seconds = time.perf_counter() - t0
    gc.collect()
    after = rss_mb()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"events: {pipeline.events:,} in {seconds:.0f} s ({pipeline.events / seconds:,.0f}/s); "
        f"alerts and updates: {alerts:,}"
    )
    print(
        f"RSS: before {before:.0f} MB, after {after:.0f} MB, peak {peak:.0f} MB "
        f"(target: under 150 MB)"
    )
    print(
        f"state: window/page keys {pipeline.windows.size:,} (evicted "
        f"{pipeline.windows.evictions:,}), throttled groups {pipeline.throttle.size:,}"
    )


if __name__ == "__main__":
    main()
