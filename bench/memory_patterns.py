"""Memory after 1M events with the pattern rules active.

    python -m bench.memory_patterns [--events 1000000]
    python -m bench.memory_patterns --one-page [--events 600]


The recorded slice is cycled with every event made unique (new page title, performer and
ids per copy), so the page memory, the windows and the throttle see a million different
keys and must stay within their caps. Every 20th event is turned into an edit of a user
talk page carrying an insult as its added text (content, as an enriched archive line
carries it), so the harassment rules and the brigading, spree and cross-wiki windows
fill up too. The whole pipeline runs (decode, dedup, scope, detection, patterns, alert
building, throttle), without sinks. Printed: RSS before and after, peak RSS, and the
state sizes; target: under 150 MB RSS.

``--one-page``: the page memory's worst case instead: one talk page edited ``--events``
times, each edit removing 1,000 different addresses. Printed: RSS before and after, the
page memory's size and the checkpoint snapshot's bytes (issue 20: 90 MiB and 8.4 MB before
the page memory was bounded per page and in total).
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


def one_page(total: int):  # type: ignore[no-untyped-def]
    for n in range(total):
        removed = " ".join(f"member{n}x{i}@example.org" for i in range(1000))
        e = {
            "meta": {"id": f"one-page-{n}", "dt": "2026-05-05T11:17:40Z", "domain": "x"},
            "wiki": "enwiki",
            "server_name": "en.wikipedia.org",
            "type": "edit",
            "namespace": 1,
            "title": "Talk:Mailing list",
            "user": f"Editor {n % 9}",
            "timestamp": 1778000000 + n,
            "revision": {"old": n, "new": n + 1},
        }
        content = {"status": "ok", "added": "", "removed": removed, "reason": None}
        yield RawEvent(None, orjson.dumps(e), 0, content)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--one-page", action="store_true")
    args = parser.parse_args()
    total = args.events or (600 if args.one_page else 1_000_000)
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
    for raw in (one_page if args.one_page else events)(total):
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
        f"{pipeline.windows.evictions:,}), throttled groups {pipeline.throttle.size:,}; "
        f"snapshot {len(orjson.dumps(pipeline.windows.snapshot())):,} bytes"
    )


if __name__ == "__main__":
    main()
