"""Delivery throughput of every sink, against the in-memory transport in the same run.

    python -m bench.sink_delivery [--alerts 5000] [--batch 50]

Alerts are real ones (the detectors on events carrying private data, ids varied), sent in
batches of ``--batch`` as the runner does. For each sink: alerts/s delivered directly (the
target up), alerts/s spooled (the target down: what a failing target costs the stream), and
alerts/s drained from the spool once the target is back. Targets are the real local ones the
tests use: the machine's Redis, a Tansu Kafka broker, a local aiohttp receiver for the HTTP
sinks. Printed as alerts/s and as a ratio to the memory transport's direct rate.

The live stream raises a handful of alerts per minute; these figures matter for backtests
replayed into queues and for how fast a backlog drains after an outage.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import redis.asyncio as aioredis

from sinks.alert import Alert
from sinks.delivery import DeliveryConfig, SpooledSink, Transport
from sinks.kafka import KafkaTransport
from sinks.memory import MemoryTransport
from sinks.redis_streams import RedisStreamsTransport
from sinks.secrets import Secret
from sinks.webhooks import AlertmanagerTransport, PagerDutyTransport, WebhookTransport
from tests.privatedata import private_alerts
from tests.sinks.endpoints import HttpReceiver, TcpProxy, free_port, start_tansu

UA = "rcwatch-bench/0.1 (https://example.org/rcwatch; bench@example.org)"
CFG = DeliveryConfig(max_attempts=1_000_000, backoff_initial_seconds=0.01, backoff_max_seconds=0.05)


def make_alerts(n: int) -> list[Alert]:
    base = private_alerts()
    return [
        dataclasses.replace(base[i % len(base)], id=f"{uuid.uuid4().hex[:24]}") for i in range(n)
    ]


async def measure(
    name: str,
    transport: Transport,
    down: Callable[[], None],
    up: Callable[[], None],
    *,
    alerts: list[Alert],
    batch: int,
    workdir: Path,
) -> tuple[float, float, float]:
    half = len(alerts) // 2
    sink = SpooledSink(name, transport, state_dir=workdir / name, config=CFG)
    await sink.start()
    t0 = time.perf_counter()
    for i in range(0, half, batch):
        await sink.send(alerts[i : i + batch])
    await sink.flush()
    direct = half / (time.perf_counter() - t0)
    down()
    t0 = time.perf_counter()
    for i in range(half, len(alerts), batch):
        await sink.send(alerts[i : i + batch])
    await sink.flush()
    spooled = (len(alerts) - half) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    up()
    assert await sink.wait_drained(600)
    drained = (len(alerts) - half) / (time.perf_counter() - t0)
    await sink.close()
    return direct, spooled, drained


def _noop() -> None:
    pass


async def run(n: int, batch: int) -> None:
    alerts = make_alerts(n)
    rows: list[tuple[str, tuple[float, float, float]]] = []
    with tempfile.TemporaryDirectory(prefix="rcwatch-bench-") as tmp:
        work = Path(tmp)
        m = functools.partial(measure, alerts=alerts, batch=batch, workdir=work)

        mem = MemoryTransport()

        def mem_down() -> None:
            mem.down = True

        def mem_up() -> None:
            mem.down = False

        rows.append(
            (
                "memory",
                await m("memory", mem, mem_down, mem_up),
            )
        )

        proxy = TcpProxy(6379)
        await proxy.start()
        stream = f"rcwatch-bench:{uuid.uuid4().hex}"
        redis_t = RedisStreamsTransport(f"redis://127.0.0.1:{proxy.port}/0", stream)
        rows.append(
            (
                "redis",
                await m("redis", redis_t, proxy.down, proxy.up),
            )
        )
        await proxy.stop()
        client = aioredis.from_url("redis://127.0.0.1:6379/0")
        keys = [k async for k in client.scan_iter(match=f"{stream}*", count=10_000)]
        for i in range(0, len(keys), 1000):
            await client.delete(*keys[i : i + 1000])
        await client.aclose()

        advertised = free_port()
        proc, port = start_tansu(advertised)
        kproxy = TcpProxy(port, advertised)
        await kproxy.start()
        try:
            kafka_t = KafkaTransport(f"127.0.0.1:{advertised}", "bench-alerts")
            rows.append(
                (
                    "kafka",
                    await m("kafka", kafka_t, kproxy.down, kproxy.up),
                )
            )
        finally:
            await kproxy.stop()
            proc.kill()

        receiver = HttpReceiver()
        base = await receiver.start()

        def http_down() -> None:
            receiver.down = True

        def http_up() -> None:
            receiver.down = False

        http: list[tuple[str, Callable[[], Transport]]] = [
            ("alertmanager", lambda: AlertmanagerTransport(base, user_agent=UA)),
            (
                "pagerduty",
                lambda: PagerDutyTransport(
                    base + "/v2/enqueue", routing_key=Secret("k"), user_agent=UA
                ),
            ),
            (
                "webhook",
                lambda: WebhookTransport(Secret(base + "/h"), hmac_key=Secret("k"), user_agent=UA),
            ),
        ]
        for name, build in http:
            rows.append((name, await m(name, build(), http_down, http_up)))
        await receiver.stop()

    base_rate = rows[0][1][0]
    print(f"alerts: {n:,} per sink (half direct, half through the spool), batches of {batch}")
    print(
        f"{'sink':<13} {'direct/s':>10} {'spooled/s':>10} {'drained/s':>10} {'direct/memory':>14}"
    )
    for name, (direct, spooled, drained) in rows:
        print(
            f"{name:<13} {direct:>10,.0f} {spooled:>10,.0f} {drained:>10,.0f} "
            f"{direct / base_rate:>14.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--alerts", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(run(args.alerts, args.batch))


if __name__ == "__main__":
    main()
