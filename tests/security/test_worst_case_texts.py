"""Worst-case texts: no edit can freeze the monitor, whatever it adds.

Issue 9.2 reproduced: 1 MiB of ``"1 1 1 …"`` added to a user talk page made the phone
recognizer spend about 40 µs per byte; the event loop was blocked for about 45 s,
``/healthz`` timed out again and again, nothing was processed. Now every recognizer judges a
bounded number of candidates, the engine looks at a bounded amount of each text, what was
cut short is counted, and events with a lot of text are evaluated in a worker thread.
Timings are measured in ``bench/worst_case``; these tests check the behaviour.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import urllib.request
from pathlib import Path

import orjson
import pytest

from detectors.base import DetectionContext, Finding
from detectors.event import RecentChange
from detectors.recognizers import RECOGNIZERS, TextContext
from detectors.recognizers.base import MAX_CANDIDATES, Budget
from detectors.recognizers.phone import MAX_VALIDATIONS
from detectors.rules.engine import MAX_FIELD_CHARS, RuleEngine
from detectors.rules.examples import example_change
from detectors.rules.loader import load_rules
from detectors.rules.model import Example
from sinks.metrics import MetricsServer
from streams.app import build_detection
from streams.fetch.content import ContentConfig
from streams.settings import SHIPPED_RULES
from streams.standins.fake_mediawiki import FakeMediaWiki
from streams.standins.sse_server import EventStreamsServer
from tests import scenarios as sc
from tests.harness import fast_stream_config, make_monitor, metric_total, run_until, settings_for

N = 1 << 18  # 256 KiB per shape here; bench/worst_case runs them at 1 MiB

# the shapes that cost most per byte before the fix (phone, IP, dates of birth, addresses)
SHAPES = {
    "spaced digits": "1 " * (N // 2),
    "dotted quads": "1.2.3.4 " * (N // 8),
    "birth words and digits": "born 1 2 3 " * (N // 11),
    "street after street": "12 Main Street " * (N // 15),
    "ssn shapes": "123-45-6789 " * (N // 12),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_recognizers_stop_after_a_bounded_number_of_candidates(shape: str) -> None:
    text = SHAPES[shape]
    for kind, recognizer in RECOGNIZERS.items():
        budget = Budget()
        found = recognizer.find(text, TextContext(budget=budget))
        assert len(found) <= MAX_CANDIDATES, kind
        if len(found) == MAX_CANDIDATES:
            assert kind in budget.exhausted, f"{kind} stopped without saying so"


def test_the_phone_recognizer_validates_a_bounded_number_of_numbers() -> None:
    budget = Budget()
    found = RECOGNIZERS["phone"].find("+1 202 555 0143 " * 500, TextContext(budget=budget))
    assert len(found) <= MAX_VALIDATIONS and "phone" in budget.exhausted


def test_a_real_phone_number_before_the_junk_is_still_found() -> None:
    text = "call me on +44 7700 900123 today. " + "1 " * (N // 2)
    budget = Budget()
    found = RECOGNIZERS["phone"].find(text, TextContext(budget=budget))
    assert found and found[0].start == len("call me on ")
    assert "phone" in budget.exhausted, "what was not looked at is reported"


def test_spelled_digits_are_looked_for_within_a_budget_that_is_reported() -> None:
    """Defect: "oh oh oh ..." ran one regex search per word over the whole text, and the
    converted text was searched again in full, uncounted: the slowest 1 MiB shape. Now at
    most MAX_DIGIT_WORDS words are looked at, only around them, and running out is
    reported; a spelled number before the junk is still found."""
    from detectors.recognizers.phone import MAX_DIGIT_WORDS, find_spelled_phones

    text = "ring her on oh seven seven oh oh nine oh oh one two three. " + "oh " * (N // 3)
    budget = Budget()
    found = find_spelled_phones(text, (), budget)
    assert [m.start for m in found] == [len("ring her on ")]
    assert "phone" in budget.exhausted
    assert text.count("oh ") > MAX_DIGIT_WORDS


def test_the_engine_reports_a_field_longer_than_it_looks_at() -> None:
    engine = RuleEngine(load_rules([SHIPPED_RULES])[0])
    text = "x" * (MAX_FIELD_CHARS + 10) + " jane.roe@example.org"
    change, ctx = example_change(Example(title="User talk:X", added_text=text))
    budget = Budget()
    engine.evaluate(change, ctx, budget=budget)
    assert "text" in budget.exhausted


async def test_a_megabyte_of_digits_on_a_talk_page_does_not_freeze_the_monitor(
    sample_events: list[bytes], tmp_path: Path
) -> None:
    """The event loop keeps answering /healthz while the event is evaluated (in a worker
    thread), and the event is processed, its truncation counted."""
    api = FakeMediaWiki()
    await api.start()
    data, _ = sc.event(title="User talk:Victim", user="Mallory")
    e = orjson.loads(data)
    huge = "1 " * (1 << 19)  # 1 MiB
    api.add_edit("en.wikipedia.org", e["revision"]["old"], e["revision"]["new"], "Hi\n", huge,
                 title="User talk:Victim")  # fmt: skip
    server = EventStreamsServer([*sample_events[:20], data, *sample_events[20:40]])
    await server.start()
    settings = settings_for(tmp_path, fast_stream_config(server.url))
    settings = dataclasses.replace(
        settings,
        content=ContentConfig(api_url=api.api_url_template, max_text_bytes=1 << 20),
    )
    monitor, _, metrics = make_monitor(settings, fetch_content=True)
    http = MetricsServer(metrics, "127.0.0.1", 0, monitor.health)
    await http.start()
    # probed from another thread: a blocked event loop cannot time its own requests out
    stop = threading.Event()
    answers: list[int | str] = []

    def probe() -> None:
        while not stop.is_set():
            try:
                with urllib.request.urlopen(http.url + "/livez", timeout=5) as r:
                    answers.append(r.status)
            except OSError as exc:  # a timeout included
                answers.append(type(exc).__name__)
            stop.wait(0.05)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    try:
        await run_until(
            monitor, lambda: server.caught_up(monitor.tracker.watermark_id), timeout=120
        )
    finally:
        stop.set()
        await asyncio.to_thread(prober.join, 10)
        await http.stop()
        await server.stop()
        await api.stop()
    assert len(answers) >= 2 and set(answers) == {200}, f"/livez failed: {set(answers)}"
    assert metric_total(metrics, "rcwatch_content_events", outcome="fetched") == 1
    assert metric_total(metrics, "rcwatch_detector_truncated", what="phone") == 1


async def test_events_with_a_lot_of_text_are_evaluated_off_the_event_loop(
    sample_events: list[bytes], tmp_path: Path
) -> None:
    class WhereAmI:
        name = "where-am-i"

        def __init__(self) -> None:
            self.threads: dict[str | None, str] = {}

        def detect(self, change: RecentChange, ctx: DetectionContext) -> list[Finding]:
            self.threads[change.meta_id] = threading.current_thread().name
            return []

    big, _ = sc.event(title="Talk:X", user="Someone", summary="y" * 40_000)
    small, _ = sc.event(title="Talk:X", user="Someone", summary="short")
    server = EventStreamsServer([small, big])
    await server.start()
    settings = settings_for(tmp_path, fast_stream_config(server.url))
    detector = WhereAmI()
    monitor, _, metrics = make_monitor(settings)
    monitor.pipeline.detection = build_detection(settings, metrics, extra=[detector])
    try:
        await run_until(monitor, lambda: server.caught_up(monitor.tracker.watermark_id))
    finally:
        await server.stop()
    main = threading.main_thread().name
    assert detector.threads[orjson.loads(small)["meta"]["id"]] == main
    assert detector.threads[orjson.loads(big)["meta"]["id"]] != main


async def test_fingerprints_of_a_long_text_are_worked_out_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Defect: the page memory fingerprinted the whole removed text, and the pattern fact
    reinserted_pii the added text, on the event loop: blanking a 1 MiB page stalled it
    for seconds although the rules ran in the worker thread. Every recognizer pass over
    a long text now happens there; the pattern still fires."""
    import detectors.facts
    import detectors.pii
    import detectors.windows
    from detectors.event import RawEvent
    from sinks.metrics import Metrics
    from streams.app import build_monitor
    from streams.settings import Settings
    from tests.streams.pipeline.test_runner import FlakySink

    calls: list[tuple[int, str]] = []
    real = detectors.pii.pii_fingerprints

    def spy(text: str | None, *args: object, **kwargs: object) -> frozenset[str]:
        calls.append((len(text or ""), threading.current_thread().name))
        return real(text, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(detectors.windows, "pii_fingerprints", spy)
    monkeypatch.setattr(detectors.facts, "pii_fingerprints", spy)
    filler = "Some ordinary prose about the weather and the town. " * 800  # ~42 KB
    scenario = [
        sc.event(title="User talk:Someone", user="Attacker", added="her mobile is +44 7700 900123"),
        sc.event(title="User talk:Someone", user="Oversighter",
                 removed=filler + "her mobile is +44 7700 900123"),
        sc.event(title="User talk:Someone", user="Attacker",
                 added=filler + "call her: +44 7700 900 123"),
    ]  # fmt: skip

    class Source:
        async def batches(self):  # type: ignore[no-untyped-def]
            for i, (data, content) in enumerate(scenario):
                yield [RawEvent(f"[{i}]", data, 0, content)]

        def stop(self) -> None:
            pass

    sink = FlakySink()
    settings = Settings()
    monitor = build_monitor(
        settings, Source(), metrics=Metrics(), sinks=[sink], archive=False,
        streams_name="recentchange",
    )  # fmt: skip
    await monitor.run()
    assert any("pii-reinserted" in r for r in sink.rules), sink.rules
    main = threading.main_thread().name
    long_on_loop = [n for n, thread in calls if n > 10_000 and thread == main]
    assert long_on_loop == [], "a long text was fingerprinted on the event loop"
    assert any(n > 10_000 for n, _ in calls), "the long texts were fingerprinted"
