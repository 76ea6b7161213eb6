"""``rcwatch alerts export-labels``: on-call verdicts as training rows for the classifier.

The alert store keeps redacted evidence only, never the text an edit added. So the text of
each judged alert is fetched again from its wiki, through the same fetcher (allowed hosts,
politeness, no redirects) the monitor uses, and every piece of personal data any
recognizer finds, whatever its confidence, is replaced by its redacted form before it is
written. A text a recognizer could not read to the end (its candidate budget ran out: a
thousand decoy digits before a phone number) is left out, never half redacted. A revision
hidden or deleted since (oversight, revision deletion) is not fetched, so it is not
exported.

A cell that a spreadsheet would take for a formula (it starts with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return) is written with a single quote before it.

Rows: ``text,label,alert_id`` (label 1 for ``true``, 0 for ``false``; ``unsure`` is left
out), the CSV ``rcwatch model train --csv`` reads. Only the alerts of text rules that read
what an edit added count: a pattern rule's verdict says nothing about one text, and a
finding in a summary or title is not the added text.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from detectors.confload import ConfigError
from detectors.event import MalformedEvent, RecentChange, decode_object
from detectors.pii import redact
from detectors.recognizers import TextContext, regions_for_wiki
from detectors.rules.loader import load_rules
from sinks.files import write_atomic
from sinks.metrics import Metrics
from sinks.store import AlertStore
from streams.app import UsageError, load_classifiers
from streams.fetch.content import ContentFetcher
from streams.settings import Settings

__all__ = ["csv_cell", "export_labels"]

_TEXT_FIELDS = frozenset({"added_text"})
# every candidate of every recognizer, however unlikely: a training file leaves the team
_MIN_CONFIDENCE = 0.0
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: str) -> str:
    """``value`` as a CSV cell no spreadsheet runs as a formula (OWASP's advice: a single
    quote before a leading ``=``, ``+``, ``-``, ``@``, tab or carriage return)."""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def change_of(record: dict[str, Any]) -> RecentChange | None:
    """The edit an alert was raised on, as far as fetching its text needs it (host and
    revisions from the alert's own diff link, which was built from a vetted host)."""
    url = record.get("diff_url")
    if not isinstance(url, str) or record.get("change_type") not in ("edit", "new"):
        return None
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    try:
        new = int(query["diff"][0])
        old = int(query["oldid"][0]) if "oldid" in query else None
    except (KeyError, ValueError):
        return None
    event = {
        "meta": {},
        "type": record.get("change_type"),
        "server_name": parts.hostname,
        "wiki": record.get("wiki"),
        "title": record.get("title"),
        "revision": {"old": old, "new": new},
    }
    try:
        return decode_object(event)
    except MalformedEvent:
        return None


def _pattern_rules(settings: Settings) -> set[str]:
    rules, issues = load_rules(settings.rules_paths, load_classifiers(settings).keys())
    if issues:
        raise ConfigError(issues)
    return {r.id for r in rules if r.window is not None}


async def _fetch_all(
    fetcher: ContentFetcher, changes: list[tuple[int, RecentChange]]
) -> dict[int, str | None]:
    try:
        results = await asyncio.gather(*(fetcher.fetch(c) for _, c in changes))
    finally:
        await fetcher.close()
    return {
        i: (r.added if r.status == "ok" else None)
        for (i, _), r in zip(changes, results, strict=True)
    }


def export_labels(settings: Settings, store: AlertStore, args: argparse.Namespace) -> int:
    if args.api_url:
        settings = replace(settings, content=replace(settings.content, api_url=args.api_url))
    try:  # the API address is checked before anything is read
        fetcher = ContentFetcher(settings.content, Metrics(), user_agent=settings.stream.user_agent)
    except ValueError as exc:
        raise UsageError(f"--api-url: {exc}") from None
    categories = args.category or ["harassment"]
    judged = store.judged(rules=args.rule or (), categories=categories)
    patterns = _pattern_rules(settings)
    skipped: Counter[str] = Counter()
    wanted: list[tuple[int, RecentChange]] = []
    for i, (record, _) in enumerate(judged):
        if record.get("rule") in patterns:
            skipped["pattern rule"] += 1
            continue
        fields = {e.get("field") for e in record.get("evidence") or [] if isinstance(e, dict)}
        if fields and not fields & _TEXT_FIELDS:
            skipped["found in a summary, title or name"] += 1
            continue
        change = change_of(record)
        if change is None:
            skipped["not an edit with revisions"] += 1
            continue
        wanted.append((i, change))
    texts = asyncio.run(_fetch_all(fetcher, wanted))
    rows: list[tuple[str, int, str]] = []
    for i, _ in wanted:
        text = texts.get(i)
        if not text or not text.strip():
            skipped["text not available (deleted, hidden or unreachable)"] += 1
            continue
        record, verdict = judged[i]
        ctx = TextContext(
            regions=regions_for_wiki(record.get("wiki")),
            namespace=record.get("namespace") if isinstance(record.get("namespace"), int) else None,
        )
        redaction = redact(text.strip(), ctx, _MIN_CONFIDENCE)
        if not redaction.complete:  # what a recognizer did not read may hold personal data
            skipped["too many candidates to check for personal data"] += 1
            continue
        rows.append((redaction.text, 1 if verdict == "true" else 0, str(record["id"])))
    out = Path(args.out)

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["text", "label", "alert_id"])
    w.writerows([csv_cell(text), str(label), csv_cell(alert_id)] for text, label, alert_id in rows)
    write_atomic(out, buf.getvalue().encode())  # 0600: it holds wiki text
    positives = sum(label for _, label, _ in rows)
    print(
        f"{out}: {len(rows)} row(s) ({positives} true, {len(rows) - positives} false) from "
        f"{len(judged)} judged alert(s) in {', '.join(categories)}",
        file=sys.stderr,
    )
    for why, n in sorted(skipped.items()):
        print(f"  left out: {n} ({why})", file=sys.stderr)
    if rows:
        print(f"train with: rcwatch model train --csv {out} --out DIR", file=sys.stderr)
    return 0
