"""/metrics and /healthz over HTTP, and label values that never carry private data."""

from __future__ import annotations

import re

import aiohttp
import orjson

from detectors.event import RawEvent
from sinks.metrics import Metrics, MetricsServer
from streams.app import build_detection
from streams.pipeline.stages import Pipeline
from streams.settings import Settings


async def test_endpoints() -> None:
    metrics = Metrics(version="9.9")
    metrics.received("mediawiki.recentchange", "edit", 3)
    state = {"ok": True}
    server = MetricsServer(metrics, "127.0.0.1", 0, lambda: (state["ok"], {"connected": True}))
    await server.start()
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(server.url + "/metrics") as r:
                body = await r.text()
                assert r.status == 200
                assert (
                    'rcwatch_events_received_total{stream="mediawiki.recentchange",type="edit"} 3.0'
                    in body
                )
                assert 'rcwatch_build_info{version="9.9"} 1.0' in body
            async with s.get(server.url + "/healthz") as r:
                assert r.status == 200
                assert (await r.json()) == {"status": "ok", "connected": True}
            state["ok"] = False
            async with s.get(server.url + "/healthz") as r:
                assert r.status == 503 and (await r.json())["status"] == "unhealthy"
    finally:
        await server.stop()


def test_label_values_never_hold_event_content(sample_events: list[bytes]) -> None:
    metrics = Metrics()
    pipeline = Pipeline(Settings().scope.build(), build_detection(Settings(), metrics), metrics)
    result = pipeline.process([RawEvent(None, e, 0) for e in sample_events])
    assert result.alerts
    users = {str(orjson.loads(raw).get("user")) for raw in sample_events}
    seen = set()
    for family in metrics.registry.collect():
        for sample in family.samples:
            for name, value in sample.labels.items():
                if name == "le":  # histogram buckets
                    continue
                seen.add(value)
                # bounded vocabularies only: lower-case identifiers, never free text
                assert re.fullmatch(r"[a-z0-9_.\-]{0,64}", value), (family.name, name, value)
                assert value not in users and "@" not in value
    assert {"privacy.email-in-summary", "privacy", "medium", "canary"} <= seen
