"""Worst-case texts: what one hostile edit costs, against an ordinary text of the same size.

    python -m bench.worst_case [--kib 1024] [--repeats 3]

Each input is one edit's added text on a user talk page, ``--kib`` KiB long (1 MiB by
default: the most content rcwatch fetches), evaluated by the rule engine with every
shipped rule, cold (the engine's memo cleared): long digit runs and spaced digits (phone
numbers), dotted quads (IP addresses), birth words with digits (dates of birth), streets
(addresses), many e-mail addresses, one long token, repeated insults, look-alike Unicode,
a mix of everything, and nested template openings. The baseline is ordinary talk-page
prose of the same size (Wikipedia talk comments from ../shared/data, or English filler if
absent), in the same run. Printed per input: seconds, µs per character, the ratio to the
baseline, and what the engine cut short (``rcwatch_detector_truncated_total``).

Then the event loop: the same hostile 1 MiB event goes through the runner's stage 2 once
evaluated inline and once in a worker thread (``pipeline.detect_in_thread_min_chars``), while a
ticker measures the longest stall of the loop: what ``/healthz`` would have waited.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gzip
import io
import random
import sys
import time
from collections.abc import Callable

from bench.common import SHARED_DATA, best_of
from detectors.event import RawEvent
from detectors.recognizers.base import Budget
from detectors.rules.engine import RuleEngine
from detectors.rules.examples import example_change
from detectors.rules.loader import load_rules
from detectors.rules.model import Example
from sinks.metrics import Metrics
from streams.app import build_detection
from streams.pipeline.stages import Pipeline
from streams.settings import SHIPPED_RULES, Settings
from tests import scenarios as sc


def _prose(size: int) -> str:
    path = SHARED_DATA / "labeled" / "jigsaw_toxic_subset" / "jigsaw_subset_merged_dedup.csv.gz"
    comments: list[str] = []
    if path.exists():
        with gzip.open(path, "rt", encoding="utf-8") as f:
            reader = csv.DictReader(io.StringIO(f.read()))
            comments = [row["comment_text"] for row in reader if row.get("comment_text")]
    if not comments:  # one repeated sentence is far cheaper than real prose: say so
        print(
            f"warning: {path} not found; the baseline is one repeated sentence, so the "
            "ratios below are not comparable with real prose",
            file=sys.stderr,
        )
        comments = ["Thanks for the note; I have added a source for the date and fixed the table."]
    out: list[str] = []
    n = 0
    rng = random.Random(7)
    while n < size:
        c = rng.choice(comments)
        out.append(c)
        n += len(c) + 1
    return "\n".join(out)[:size]


def inputs(size: int) -> dict[str, str]:
    def fill(unit: str) -> str:
        return (unit * (size // len(unit) + 1))[:size]

    rng = random.Random(1)
    groups = " ".join(str(rng.randint(10, 9999)) for _ in range(size // 3))[:size]
    return {
        "baseline: talk-page prose": _prose(size),
        "spaced digits 1 1 1": fill("1 "),
        "random digit groups": groups,
        "one digit run": "7" * size,
        "dotted quads": fill("1.2.3.4 "),
        "birth words and digits": fill("born 1 2 3 "),
        "street after street": fill("12 Main Street "),
        "e-mail after e-mail": fill("a@b.co "),
        "one long token": "a" * size,
        "insult after insult": fill("you idiot "),
        # full-width "fuck you" and mathematical-script "idiot"
        "look-alike unicode": fill(
            "\uff46\uff55\uff43\uff4b \uff59\uff4f\uff55 "
            "\U0001d4f2\U0001d4ed\U0001d4f2\U0001d4f8\U0001d4fd "
        ),
        "a mix of everything": fill("you idiot 555-1234 jane@x.org born 1990-01-01 "),
        "template openings": fill("{{"),
        "template params {{a|": fill("{{a|"),
        "spelled 'oh oh oh'": fill("oh "),
        "digit words and digits": fill("one 2 three 4 five 6 seven "),
        "card groups": fill("4111 1111 1111 1111 "),
        "ipv6 addresses": fill("2001:db8::1 "),
        "bidi and zero-width": fill("a\u202eb\u200bc\u2066d "),
    }


def _evaluate(engine: RuleEngine, text: str) -> Callable[[], object]:
    change, ctx = example_change(Example(title="User talk:Victim", added_text=text))

    def run() -> object:
        engine.clear_memo()
        return engine.evaluate(change, ctx)

    return run


def engine_costs(size: int, repeats: int) -> None:
    engine = RuleEngine(load_rules([SHIPPED_RULES])[0])
    texts = inputs(size)
    baseline = None
    print(f"one edit of {size // 1024} KiB added to a user talk page, every shipped rule, cold")
    print(f"{'input':<28} {'seconds':>8} {'us/char':>8} {'x prose':>8}  cut short")
    for name, text in texts.items():
        seconds = best_of(repeats, _evaluate(engine, text))
        if baseline is None:
            baseline = seconds
        change, ctx = example_change(Example(title="User talk:Victim", added_text=text))
        budget = Budget()
        engine.evaluate(change, ctx, budget=budget)
        cut = ",".join(sorted(budget.exhausted)) or "-"
        print(
            f"{name:<28} {seconds:>8.3f} {seconds * 1e6 / len(text):>8.2f} "
            f"{seconds / baseline:>8.2f}  {cut}"
        )


async def _stall(pipeline: Pipeline, raw: RawEvent, off_loop: bool) -> float:
    """The longest gap a 5 ms ticker sees while stage 2 evaluates the event."""
    longest = 0.0
    done = False

    async def ticker() -> None:
        nonlocal longest
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            longest = max(longest, now - last)
            last = now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)
    work = pipeline.prepare([raw])
    [item] = work.events
    ctx = pipeline.awaiting_detection(item)
    assert ctx is not None
    if off_loop:  # as the runner does (Monitor._evaluate_off_loop)
        assert item.change is not None
        findings, budget, item.fingerprints = await asyncio.to_thread(
            pipeline.evaluate_off_loop, item.change, ctx
        )
        item.findings = pipeline.detection.account(item.change, ctx, findings, budget)
    pipeline.complete(work)
    done = True
    await task
    return longest


def loop_stalls(size: int) -> None:
    """The longest event-loop stall for one big edit, inline and with the worker thread:
    text added (every rule reads it) and a page blanked (the page memory fingerprints
    what was removed)."""
    settings = Settings()
    edits = {
        "added '1 1 1'": sc.event(
            title="User talk:Victim", user="Mallory", added="1 " * (size // 2)
        ),
        "removed prose": sc.event(
            title="User talk:Victim", user="Mallory", added="", removed=_prose(size)
        ),
    }
    print(f"\nlongest event-loop stall while one {size // 1024} KiB edit is evaluated")
    print(f"  {'edit':<18} {'inline':>10} {'thread':>10} {'ratio':>7}")
    for name, (data, content) in edits.items():
        stalls = []
        for off_loop in (False, True):
            metrics = Metrics()
            pipeline = Pipeline(
                settings.scope.build(),
                build_detection(settings, metrics),
                metrics,
                thread_min_chars=16_384,
            )
            raw = RawEvent(None, data, 0, content)
            stalls.append(asyncio.run(_stall(pipeline, raw, off_loop)))
        inline, thread = stalls
        print(
            f"  {name:<18} {inline * 1000:>7.1f} ms {thread * 1000:>7.1f} ms "
            f"{inline / max(thread, 1e-6):>7.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kib", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    size = args.kib * 1024
    engine_costs(size, args.repeats)
    loop_stalls(size)


if __name__ == "__main__":
    main()
