"""Content from a (local) wiki API on a live-like stream: caught, archived, replayable,
and never a reason to stall or to lose an event."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import orjson

from detectors.event import RawEvent
from sinks.archive import iter_lines
from sinks.metrics import Metrics
from streams.fetch.content import ContentConfig
from streams.pipeline.detection import StormGuardConfig
from streams.pipeline.runner import Monitor
from streams.pipeline.stages import BatchWork, Pipeline
from streams.settings import Settings
from streams.source.replay import ReplaySource
from streams.standins.fake_mediawiki import ApiFault, FakeMediaWiki
from streams.standins.sse_server import EventStreamsServer
from tests import scenarios as sc
from tests.harness import fast_stream_config, make_monitor, metric_total, run_until, settings_for

ATTACKS = [
    ("203.0.113.5", "you are an idiot"),
    ("~2026-11111-22", "what a moron you are"),
    ("198.51.100.9", "stupid asshole, you"),
]


def _attack_events(api: FakeMediaWiki | None) -> list[bytes]:
    out = []
    for user, text in ATTACKS:
        data, _content = sc.event(title="User talk:Victim", user=user)
        e = orjson.loads(data)
        if api is not None:
            api.add_edit(
                "en.wikipedia.org",
                e["revision"]["old"],
                e["revision"]["new"],
                "Hello.\n",
                f"Hello.\n{text}\n",
                title="User talk:Victim",
            )
        out.append(data)
    data, _ = sc.event(
        title="Talk:Example page", user="Mailer", summary="mail jane.roe@example.org"
    )
    out.append(data)
    return out


def _stream(attacks: list[bytes], sample: list[bytes]) -> list[bytes]:
    return sample[:200] + attacks[:2] + sample[200:300] + attacks[2:] + sample[300:]


def _settings(tmp: Path, url: str, api: FakeMediaWiki, **content: float) -> Settings:
    s = settings_for(tmp, fast_stream_config(url))
    fast = ContentConfig(
        api_url=api.api_url_template, backoff_initial_seconds=0.01, backoff_max_seconds=0.05
    )
    return dataclasses.replace(s, content=dataclasses.replace(fast, **content))  # type: ignore[arg-type]


async def _run_to_end(monitor: Monitor, server: EventStreamsServer, api: FakeMediaWiki) -> None:
    """Run until the last served event is fully processed, then stop both servers."""
    try:
        await run_until(monitor, lambda: server.caught_up(monitor.tracker.watermark_id))
    finally:
        await server.stop()
        await api.stop()


async def test_caught_from_the_stream_archived_and_replayed_offline(
    sample_events: list[bytes], tmp_path: Path
) -> None:
    api = FakeMediaWiki()
    await api.start()
    events = _stream(_attack_events(api), sample_events)
    server = EventStreamsServer(events)
    await server.start()
    settings = _settings(tmp_path, server.url, api)
    metrics = Metrics()
    monitor, _src, _m = make_monitor(settings, metrics=metrics, fetch_content=True)
    await _run_to_end(monitor, server, api)
    lines = [orjson.loads(x) for x in (tmp_path / "alerts.jsonl").read_bytes().splitlines()]
    live = {a["rule"] for a in lines}
    assert {"harassment.personal-attack", "pattern.brigading", "privacy.email-in-summary"} <= live
    assert metric_total(metrics, "rcwatch_content_events", outcome="fetched") == 3
    assert all(r.headers.get("User-Agent") for r in api.requests)

    # the archive carries the fetched text: a replay needs no API and finds the same
    archived = [
        orjson.loads(x) for f in sorted((tmp_path / "archive").glob("*.gz")) for x in iter_lines(f)
    ]
    with_text = [a for a in archived if a.get("content", {}).get("added")]
    assert len(with_text) == 3
    p = Pipeline(Settings().scope.build(), monitor.pipeline.detection, Metrics())
    replayed: set[str] = set()
    async for batch in ReplaySource(sorted((tmp_path / "archive").glob("*.gz"))).batches():
        replayed |= {a.rule for a in p.process(batch).alerts}
    assert replayed == live


async def test_a_failing_api_costs_content_rules_only(
    sample_events: list[bytes], tmp_path: Path
) -> None:
    api = FakeMediaWiki()
    await api.start()
    for _ in range(200):
        api.faults.append(ApiFault("http_503"))
    events = _stream(_attack_events(api), sample_events)
    server = EventStreamsServer(events)
    await server.start()
    settings = _settings(tmp_path, server.url, api, max_attempts=2, max_wait_seconds=1.0)
    metrics = Metrics()
    monitor, _source, _ = make_monitor(settings, metrics=metrics, fetch_content=True)
    await _run_to_end(monitor, server, api)
    rules = {orjson.loads(x)["rule"] for x in (tmp_path / "alerts.jsonl").read_bytes().splitlines()}
    assert "privacy.email-in-summary" in rules, "metadata rules still run"
    assert "harassment.personal-attack" not in rules
    seen = monitor.pipeline.events - monitor.pipeline.dropped["duplicate"]
    assert seen == len(events), "no event lost (re-deliveries of a resume aside)"
    # the attacks and the recorded talk-page edits: none fetched, every miss counted
    missed = metric_total(metrics, "rcwatch_content_events", outcome="missed")
    assert missed >= 3 and metric_total(metrics, "rcwatch_content_events", outcome="fetched") == 0
    assert metric_total(metrics, "rcwatch_content_misses") == missed


async def test_detection_runs_ahead_of_a_slow_fetch(
    sample_events: list[bytes], tmp_path: Path
) -> None:
    api = FakeMediaWiki()
    await api.start()
    api.faults.append(ApiFault("hang", hang_seconds=1.5))
    attacks = _attack_events(api)
    events = sample_events[:50] + attacks[:1] + sample_events[50:400]
    server = EventStreamsServer(events)
    await server.start()
    settings = _settings(tmp_path, server.url, api, timeout_seconds=3.0)
    metrics = Metrics()
    monitor, _source, _ = make_monitor(settings, metrics=metrics, fetch_content=True)
    prepared_when_released: list[tuple[int, int]] = []
    complete = monitor.pipeline.complete

    slow_id = orjson.loads(attacks[0])["meta"]["id"]

    def spy(work: BatchWork):  # type: ignore[no-untyped-def]
        if any(w.change is not None and w.change.meta_id == slow_id for w in work.events):
            prepared_when_released.append((work.seq, monitor.pipeline.events))
        return complete(work)

    monitor.pipeline.complete = spy  # type: ignore[method-assign]
    await _run_to_end(monitor, server, api)
    [(_seq, prepared)] = prepared_when_released
    assert prepared > 300, "later events were decoded and checked while the fetch hung"
    rules = {orjson.loads(x)["rule"] for x in (tmp_path / "alerts.jsonl").read_bytes().splitlines()}
    assert "harassment.personal-attack" in rules, "and the slow event was still caught"


async def test_a_backlog_gets_the_same_alerts_as_steady_state(
    sample_events: list[bytes], tmp_path: Path
) -> None:
    """Issue 20, item 13: a catch-up against a slow API timed fetches out while they
    waited behind ``per_host_concurrency`` (168 of 517 alerts). Hundreds of attacks served
    at once to a slow wiki, with a short deadline: every fetch waits its turn, the reader
    waits for the held-event budget, and the alerts are those of a replay carrying the
    text (steady state)."""
    insults = ["you are an idiot", "what a moron you are", "stupid asshole, you"]
    api = FakeMediaWiki()
    api.latency_seconds = 0.01
    await api.start()
    attacks: list[tuple[bytes, dict[str, object] | None]] = []
    for i in range(240):
        text = insults[i % len(insults)]
        data, content = sc.event(title=f"User talk:Victim {i}", user=f"Attacker {i}", added=text)
        e = orjson.loads(data)
        api.add_edit(
            "en.wikipedia.org",
            e["revision"]["old"],
            e["revision"]["new"],
            "Hello.\n",
            f"Hello.\n{text}\n",
            title=f"User talk:Victim {i}",
        )
        attacks.append((data, content))
    stream: list[tuple[bytes, dict[str, object] | None]] = []
    for i, data in enumerate(sample_events[:480]):
        stream.append((data, None))
        if i % 2 == 0:
            stream.append(attacks[i // 2])
    server = EventStreamsServer([data for data, _ in stream])
    await server.start()
    settings = _settings(tmp_path, server.url, api, per_host_concurrency=1, max_wait_seconds=0.5)
    settings = dataclasses.replace(
        settings,
        pipeline=dataclasses.replace(settings.pipeline, reorder_max_events=100),
        # a third of the events are attacks: not the runaway rule the guard is for
        detectors=dataclasses.replace(
            settings.detectors, storm_guard=StormGuardConfig(enabled=False)
        ),
    )
    metrics = Metrics()
    monitor, _src, _ = make_monitor(settings, metrics=metrics, fetch_content=True)
    await _run_to_end(monitor, server, api)
    live = {
        (a["rule"], a["event_id"])
        for a in map(orjson.loads, (tmp_path / "alerts.jsonl").read_bytes().splitlines())
    }
    assert metric_total(metrics, "rcwatch_content_misses", reason="timeout") == 0

    steady = Pipeline(Settings().scope.build(), monitor.pipeline.detection, Metrics())
    batch = [RawEvent(None, data, 0, content) for data, content in stream]
    replayed = {(a.rule, a.event_id) for a in steady.process(batch).alerts}
    attacked = {r for r, _ in replayed if r.startswith("harassment.")}
    assert attacked and sum(1 for r, _ in replayed if r in attacked) >= 240
    assert live == replayed
