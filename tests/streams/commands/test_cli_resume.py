"""The first five minutes, from outside: ``rcwatch run`` killed with -9 again and again in
its first seconds, against a server that drops, closes, throttles and sends junk.

The server publishes 20,000 events at 1,000 events/s (copies of the bundled sample with
fresh ids, malformed lines and canaries among them), with scripted faults: clean closes,
abrupt drops, a 429 and a 503. ``rcwatch run`` is started, killed with -9 five times at
different moments of its start-up (state written but not connected, just connected,
before and after its first checkpoint), and finally stopped with SIGTERM once it has
caught up. Every event the server published must be archived exactly once, and the alert
file must hold exactly the deliveries (alert id and count) that one uninterrupted pass
over the same events gives: nothing lost, nothing paged twice. The second variant puts the
events in two topics, the second idle for the first 3,000 events.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from detectors.event import RawEvent
from sinks.metrics import Metrics
from streams.app import build_detection
from streams.pipeline.stages import Pipeline
from streams.settings import Settings
from streams.source.checkpoint import CheckpointStore
from streams.standins.sse_server import EventStreamsServer, Fault
from tests.conftest import Processes, wait_for
from tests.harness import TEST_UA, archived_ids

TOTAL = 20_000
RATE = 1_000  # events per second
IDLE_SECOND_TOPIC_FOR = 3_000


def _copies(sample: list[bytes], total: int) -> list[bytes]:
    """``total`` events: the sample repeated with fresh event, revision and log ids (so each
    copy raises its own alerts), a malformed line every 997 and a canary every 1,499."""
    decoded = [orjson.loads(e) for e in sample]
    out: list[bytes] = []
    copy = 0
    while len(out) < total:
        for d in decoded:
            e = orjson.loads(orjson.dumps(d))
            e["meta"]["id"] = f"{e['meta']['id']}-{copy}"
            if isinstance(e.get("revision"), dict):
                e["revision"] = {k: v + copy * 10_000_000 for k, v in e["revision"].items()}
            for key in ("id", "log_id"):
                if isinstance(e.get(key), int):
                    e[key] += copy * 10_000_000
            n = len(out)
            if n % 997 == 996:
                out.append(b'{"meta": "not an object"}' if n % 2 else b"{torn json")
            elif n % 1499 == 1498:
                e["meta"]["domain"] = "canary"
                out.append(orjson.dumps(e))
            else:
                out.append(orjson.dumps(e))
            if len(out) == total:
                break
        copy += 1
    return out


def _event_id(data: bytes) -> str | None:
    try:
        d = orjson.loads(data)
        return d["meta"]["id"] if isinstance(d.get("meta"), dict) else None
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return None


def _deliveries(path: Path) -> list[str]:
    return [
        f"{a['id']}~{a['count']}"
        for a in (orjson.loads(x) for x in path.read_bytes().splitlines() if x)
    ]


def _uninterrupted(events: list[bytes]) -> list[str]:
    """The deliveries one pass over the events gives (throttle included)."""
    settings = Settings()
    metrics = Metrics()
    pipeline = Pipeline(settings.scope.build(), build_detection(settings, metrics), metrics)
    result = pipeline.process([RawEvent(None, e, 0) for e in events])
    return [f"{a.id}~{a.count}" for a in result.alerts]


@pytest.mark.parametrize("topics", [1, 2], ids=["one-topic", "second-topic-idle-at-first"])
async def test_kill_9_five_times_in_the_first_seconds_loses_nothing_pages_nothing_twice(
    topics: int, sample_events: list[bytes], tmp_path: Path, processes: Processes
) -> None:
    events = _copies(sample_events, TOTAL)
    server = EventStreamsServer()
    server.faults = [
        Fault("close", after_events=700),
        Fault("drop", after_events=400),
        Fault("http", status=429, headers={"Retry-After": "1"}),
        Fault("close", after_events=1500),
        Fault("drop", after_events=900),
        Fault("http", status=503),
        Fault("drop", after_events=2500),
    ]
    await server.start()
    state = tmp_path / "state"
    config = tmp_path / "rcwatch.yaml"
    config.write_text(
        "content: {enabled: false}\n"
        "stream: {backoff_initial_seconds: 0.05, backoff_max_seconds: 0.5}\n"
    )
    args = (
        "run", "--stream-url", server.url, "--state-dir", str(state), "--user-agent", TEST_UA,
        "--metrics-addr", "127.0.0.1:0", "--log-level", "warning", "--config", str(config),
    )  # fmt: skip
    store = CheckpointStore(state)

    async def publish() -> None:
        started = time.monotonic()
        for i in range(0, TOTAL, RATE // 50):
            chunk = events[i : i + RATE // 50]
            if topics == 1 or i < IDLE_SECOND_TOPIC_FOR:
                server.publish(chunk, topic=0)
            else:
                server.publish(chunk[0::2], topic=0)
                server.publish(chunk[1::2], topic=1)
            # pacing the load generator: 20 events every 20 ms
            await asyncio.sleep(max(0.0, started + (i + RATE // 50) / RATE - time.monotonic()))

    def served_since(count: int, more: int) -> Callable[[], bool]:
        return lambda: server.served >= count + more

    publisher: asyncio.Task[None] | None = None
    try:
        kills: list[Callable[[], bool]] = [
            store.origin_path.exists,  # state written, not yet connected
            lambda: server.connections >= 1,  # just connected
        ]
        for n in range(5):
            proc = await processes.rcwatch(*args)
            if publisher is None:
                publisher = asyncio.create_task(publish())
            condition = (
                kills[n]
                if n < len(kills)
                else served_since(server.served, 300 * n)  # mid-stream, around checkpoints
            )
            await wait_for(condition, 60, f"kill moment {n + 1}")
            proc.kill()
            await proc.wait()
        final = await processes.rcwatch(*args)
        assert publisher is not None
        await publisher
        await wait_for(
            lambda: (cp := store.load()) is not None and server.caught_up(cp.last_event_id),
            120,
            "the last run to catch up",
        )
        final.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(final.wait(), 60) == 0, processes.stderr(final)
    finally:
        if publisher is not None:
            publisher.cancel()
        await server.stop()

    assert server.connections >= 8, "every run connected, and faults forced reconnects"
    published = [_event_id(e) for t in range(topics) for e in server.topic_events(t)]
    archived = archived_ids(state / "archive")
    assert sorted(i for i in archived if i) == sorted(i for i in published if i)
    assert max(n for i, n in archived.items() if i) == 1, "an event was archived twice"
    deliveries = _deliveries(state / "alerts.jsonl")
    assert len(deliveries) == len(set(deliveries)), "an alert was delivered twice"
    assert sorted(deliveries) == sorted(_uninterrupted(server.published_in_order()))
