"""Cost per event of 10 vs 100 vs 1,000 rules.

    python -m bench.rules_cost [--repeats 3]

Synthetic but realistic rule sets: keyword rules (5 words each from the long tail of the
Jigsaw vocabulary, so they fire now and then), regex rules (alternations of such words
with word boundaries), and recognizer rules, over summary, title and added text, with a
handful of different scopes. Events: the 2,476 recorded recentchange events, each given a
Jigsaw comment as added text so the added-text path is exercised. Every set is timed in
the same process (best of ``--repeats``); the ratio to 10 rules is the figure of merit
(target: 1,000 rules <= 1.5x the cost of 10).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import random
import re
import time
from collections import Counter

import orjson

from bench.common import RECORDED, SHARED_DATA, require
from detectors.base import DetectionContext
from detectors.event import RecentChange, decode_event
from detectors.rules.engine import RuleEngine
from detectors.rules.loader import load_rules

JIGSAW = SHARED_DATA / "labeled" / "jigsaw_toxic_subset" / "jigsaw_subset_merged_dedup.csv.gz"

SCOPES = [
    "{}",
    "{namespaces: [1, 3, 5]}",
    "{types: [edit, new]}",
    "{wikis: ['en*', 'de*'], types: [edit]}",
    "{performers: [ip, temporary]}",
]
FIELDS = ["summary", "title", "added_text"]


def comments() -> list[str]:
    with gzip.open(require(JIGSAW), "rt", encoding="utf-8") as f:
        return [r["comment_text"] for r in csv.DictReader(io.StringIO(f.read()))]


def tail_words(texts: list[str]) -> list[str]:
    counts = Counter(w for t in texts for w in re.findall(r"[a-z]{4,}", t.lower()))
    ranked = [w for w, _ in counts.most_common()]
    return ranked[1500:12000]


def rule_file(n: int, words: list[str], rng: random.Random) -> str:
    out = ["rules:"]
    for i in range(n):
        kind = ("keywords", "regex", "recognizer")[i % 3]
        field = FIELDS[i % len(FIELDS)]
        picked = rng.sample(words, 5)
        if kind == "keywords":
            match = f"{{field: {field}, keywords: [{', '.join(picked)}]}}"
        elif kind == "regex":
            match = f"{{field: {field}, regex: '(?i)\\b({'|'.join(picked)})\\b'}}"
        else:
            rec = ("email", "phone", "ip_address", "credit_card")[i % 4]
            match = (
                f"{{all: [{{field: {field}, recognizer: {rec}}}, "
                f"{{field: {field}, keywords: [{picked[0]}, {picked[1]}]}}]}}"
            )
        out.append(
            f"  - id: synthetic.{i}\n    title: synthetic {i}\n    category: harassment\n"
            f"    severity: low\n    enabled: false\n    scope: {SCOPES[i % len(SCOPES)]}\n"
            f"    match: {match}"
        )
    return "\n".join(out) + "\n"


def load(n: int, words: list[str], workdir: str) -> RuleEngine:
    path = f"{workdir}/rules-{n}.yaml"
    with open(path, "w") as f:
        f.write(rule_file(n, words, random.Random(n)))
    rules, issues = load_rules([path])
    assert not issues, issues[:3]
    return RuleEngine(rules, include_disabled=True)


def main() -> None:
    import tempfile

    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    texts = comments()
    words = tail_words(texts)
    recorded = [orjson.loads(x)["data"] for x in require(RECORDED).read_bytes().splitlines()]
    events: list[tuple[RecentChange, DetectionContext]] = [
        (decode_event(d), DetectionContext(added_text=texts[i % len(texts)]))
        for i, d in enumerate(recorded)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        engines = {n: load(n, words, tmp) for n in (10, 100, 1000)}
        results = {}
        for n, engine in engines.items():
            findings = 0
            best = float("inf")
            for _ in range(args.repeats):
                engine.clear_memo()  # every text is new to it, as on a live stream
                t0 = time.perf_counter()
                findings = sum(len(engine.evaluate(c, ctx)) for c, ctx in events)
                best = min(best, time.perf_counter() - t0)
            results[n] = (best / len(events) * 1e6, findings)
    base = results[10][0]
    print(f"events: {len(events)} recorded changes, each with a Jigsaw comment as added text")
    print(f"{'rules':>6} {'us/event':>9} {'x of 10':>8} {'findings':>9}")
    for n, (us, findings) in results.items():
        print(f"{n:>6} {us:9.1f} {us / base:8.2f} {findings:9,}")
    print("target: 1,000 rules <= 1.5x the cost of 10")


if __name__ == "__main__":
    main()
