"""Fetch workers against a real broker: a rebalance in the middle of a batch, and an event
whose text cannot fit in a record, must not stop a worker."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import orjson
import pytest

from detectors.event import RecentChange
from sinks.metrics import Metrics
from streams.fetch.content import Content
from streams.scaleout.config import ScaleOutConfig
from streams.scaleout.fetcher import FetchWorker
from streams.scaleout.topics import ensure_topics, topic_specs
from tests.streams.scaleout.conftest import TopicReader

pytestmark = pytest.mark.scaleout


def _cfg(broker: str, name: str, batch: int = 10) -> ScaleOutConfig:
    return ScaleOutConfig(
        bootstrap_servers=broker, events_topic=f"ev-{name}", enriched_topic=f"en-{name}",
        events_partitions=4, worker_group=f"g-{name}",
        worker_batch_events=batch, producer_max_batch_bytes=1, session_timeout_seconds=6.0,
        heartbeat_interval_seconds=1.0,
    )  # fmt: skip


async def _produce(cfg: ScaleOutConfig, n: int) -> list[str]:
    from aiokafka import AIOKafkaProducer

    await ensure_topics(cfg.bootstrap_servers, topic_specs(cfg))
    p = AIOKafkaProducer(bootstrap_servers=cfg.bootstrap_servers, max_batch_size=1)
    await p.start()
    ids = [f"id-{i}" for i in range(n)]
    for i, meta_id in enumerate(ids):
        event = {"meta": {"id": meta_id, "domain": "en.wikipedia.org"}, "wiki": "enwiki",
                 "type": "edit", "title": f"Page {i}", "namespace": 1}  # fmt: skip
        await p.send_and_wait(cfg.events_topic, orjson.dumps(event), key=f"k{i}".encode())
    await p.stop()
    return ids


@contextlib.asynccontextmanager
async def _running(worker: FetchWorker) -> AsyncIterator[asyncio.Task[object]]:
    task = asyncio.create_task(worker.run())
    try:
        yield task
    finally:
        worker.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 60)


async def _until(check: object, within: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():  # type: ignore[operator]
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_a_rebalance_in_the_middle_of_a_batch_does_not_stop_a_worker(broker: str) -> None:
    """Defect: a worker that was fetching when another joined the group committed offsets
    for partitions it no longer held: IllegalStateError, exit 1 (4 runs in 4)."""
    cfg = _cfg(broker, "rebalance", batch=500)  # one batch spans every partition: 4 x 3 s
    ids = await _produce(cfg, 200)

    async def slow(change: RecentChange) -> Content:
        await asyncio.sleep(3)  # the wiki's API, slow: the join lands meanwhile
        return Content("ok", added="text", removed="")

    first = FetchWorker(cfg, lambda c: True, slow, Metrics())
    second = FetchWorker(cfg, lambda c: True, slow, Metrics())
    reader = TopicReader(broker, cfg.enriched_topic)
    await reader.start()
    try:
        async with _running(first) as a:
            await _until(lambda: first.summary.records > 0, 60, "the first worker at work")
            async with _running(second) as b:  # joins while the first is mid-batch
                await _until(lambda: bool(second.assigned), 60, "the second worker's share")

                async def all_passed() -> bool:
                    await reader.poll()
                    return set(ids) <= set(reader.ids())

                for _ in range(600):
                    if await all_passed():
                        break
                else:
                    pytest.fail("not every event was passed on")
                assert not a.done(), a.exception() if a.done() else None
                assert not b.done()
    finally:
        await reader.stop()


async def test_a_text_too_large_for_a_record_passes_the_event_on_without_it(broker: str) -> None:
    """Defect: 700 KB of quotes (JSON doubles each) made a record over the size limit; the
    worker retried it forever, committing nothing, deaf to stop."""
    cfg = _cfg(broker, "toolarge")
    ids = await _produce(cfg, 3)

    async def huge(change: RecentChange) -> Content:
        return Content("ok", added='"' * 700_000, removed="")

    metrics = Metrics()
    worker = FetchWorker(cfg, lambda c: True, huge, metrics)
    reader = TopicReader(broker, cfg.enriched_topic)
    await reader.start()
    try:
        async with _running(worker):
            for _ in range(600):
                await reader.poll()
                if set(ids) <= set(reader.ids()):
                    break
            else:
                pytest.fail("the events did not get through")
        for _, _, headers in reader.records:
            assert orjson.loads(headers["content"])["reason"] == "too_large"
        sample = metrics.registry.get_sample_value("rcwatch_worker_text_too_large_total")
        assert sample == 3
    finally:
        await reader.stop()


async def test_events_and_ticks_keep_their_partition_and_their_place(broker: str) -> None:
    """The detect stage merges partition p of the enriched topic as the ingest's partition
    p: a worker must keep every event's number, its partition and its place among the
    ingest's ticks (a tick ahead of an event it vouches for would let the merge pass
    later events first)."""
    from aiokafka import AIOKafkaProducer

    cfg = _cfg(broker, "ticks")
    await ensure_topics(cfg.bootstrap_servers, topic_specs(cfg))
    p = AIOKafkaProducer(bootstrap_servers=cfg.bootstrap_servers, max_batch_size=1)
    await p.start()
    sent: dict[int, list[tuple[str, int]]] = {}
    try:
        for seq in range(40):
            partition = seq % 4
            event = {"meta": {"id": f"t-{seq}", "domain": "en.wikipedia.org"}, "wiki": "enwiki",
                     "type": "edit", "title": f"Page {seq}", "namespace": 1}  # fmt: skip
            headers = [("seq", str(seq).encode()), ("recv_ns", b"1")]
            await p.send_and_wait(
                cfg.events_topic, orjson.dumps(event), headers=headers, partition=partition
            )
            sent.setdefault(partition, []).append(("seq", seq))
            if seq % 10 == 9:
                for q in range(4):
                    await p.send_and_wait(
                        cfg.events_topic, b"", headers=[("tick", str(seq).encode())], partition=q
                    )
                    sent[q].append(("tick", seq))
    finally:
        await p.stop()
    worker = FetchWorker(cfg, lambda c: c.title == "Page 7", _text, Metrics())
    reader = TopicReader(broker, cfg.enriched_topic)
    await reader.start()
    try:
        async with _running(worker):
            for _ in range(600):
                await reader.poll()
                if len(reader.records) >= 40 and len(reader.ticks) >= 16:
                    break
            else:
                pytest.fail("the events and ticks did not get through")
        got = {
            q: [("tick", int(h["tick"])) if "tick" in h else ("seq", int(h["seq"])) for h in hs]
            for q, hs in reader.by_partition.items()
        }
        assert got == sent
        fetched = [h for _, _, h in reader.records if "content" in h]
        assert len(fetched) == 1 and int(fetched[0]["seq"]) == 7
    finally:
        await reader.stop()


async def _text(change: RecentChange) -> Content:
    return Content("ok", added="text", removed="")
