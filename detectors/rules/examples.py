"""Rules carry their own test cases; this runs them.

An example is a partial event. Unset fields take neutral defaults: an edit on enwiki to
"Example page" (namespace from the title's English prefix, else 0) by the registered user
"Example editor", with a small positive size change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from detectors.base import DetectionContext, Finding
from detectors.classifier import TextClassifier
from detectors.event import RecentChange, decode_object
from detectors.language import wiki_language
from detectors.rules.engine import RuleEngine
from detectors.rules.model import Example, Rule
from detectors.windows import WindowStore

__all__ = ["ExampleFailure", "example_change", "run_examples"]

_NAMESPACE_PREFIXES = {
    "Talk": 1, "User": 2, "User talk": 3, "Wikipedia": 4, "Wikipedia talk": 5, "File": 6,
    "File talk": 7, "MediaWiki": 8, "Template": 10, "Template talk": 11, "Help": 12,
    "Category": 14, "Module": 828,
}  # fmt: skip


def _namespace(title: str) -> int:
    prefix, sep, _rest = title.partition(":")
    return _NAMESPACE_PREFIXES.get(prefix, 0) if sep else 0


_EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z: examples happen then, plus their `at`


_HOSTS = {
    "commonswiki": "commons.wikimedia.org",
    "wikidatawiki": "www.wikidata.org",
    "metawiki": "meta.wikimedia.org",
    "specieswiki": "species.wikimedia.org",
    "mediawikiwiki": "www.mediawiki.org",
}


def _host(wiki: str) -> str:
    """The host of a Wikipedia or a multilingual wiki named by its database name."""
    if wiki in _HOSTS:
        return _HOSTS[wiki]
    lang = wiki_language(wiki)
    if lang is not None and wiki.endswith("wiki"):
        return f"{wiki[: -len('wiki')].replace('_', '-')}.wikipedia.org"
    return "en.wikipedia.org"


def example_change(ex: Example, seq: int = 0) -> tuple[RecentChange, DetectionContext]:
    title = ex.title if ex.title is not None else "Example page"
    wiki = ex.wiki or "enwiki"
    host = _host(wiki)
    change_type = ex.type or ("log" if ex.log_type else "edit")
    when = datetime.fromtimestamp(_EPOCH + ex.at, UTC).isoformat().replace("+00:00", "Z")
    event: dict[str, object] = {
        "$schema": "/mediawiki/recentchange/1.0.0",
        "meta": {
            "id": f"00000000-0000-4000-8000-{seq:012d}",
            "dt": when,
            "domain": host,
            "stream": "mediawiki.recentchange",
        },
        "type": change_type,
        "namespace": ex.namespace if ex.namespace is not None else _namespace(title),
        "title": title,
        "comment": ex.summary or "",
        "user": ex.user if ex.user is not None else "Example editor",
        "bot": bool(ex.bot),
        "wiki": wiki,
        "server_url": f"https://{host}",
        "server_name": host,
        "server_script_path": "/w",
    }
    if change_type in ("edit", "new"):
        rev = 2 + 2 * seq
        event["revision"] = {"old": None if change_type == "new" else rev - 1, "new": rev}
        event["length"] = {"old": 1000, "new": 1000 + (ex.size_delta if ex.size_delta else 42)}
    if ex.log_type:
        event["log_type"] = ex.log_type
        event["log_action"] = ex.log_action or ex.log_type
        event["log_id"] = 7
    change = decode_object(event)
    return change, DetectionContext(added_text=ex.added_text, removed_text=ex.removed_text)


def run_sequence(engine: RuleEngine, events: Sequence[Example]) -> list[list[Finding]]:
    """Findings on each event of a sequence, pattern rules included, as the runner does it."""
    store = WindowStore()
    out = []
    for i, ex in enumerate(events):
        change, ctx = example_change(ex, i)
        base = engine.evaluate(change, ctx)
        when = change.event_time or 0.0
        pctx = store.context_for(change, ctx, base)
        fired = store.observe(
            change, pctx, engine.evaluate_patterns(change, pctx), engine.pattern_rules, when
        )
        store.remember(change, ctx, when)
        out.append(base + fired)
    return out


@dataclass(frozen=True)
class ExampleFailure:
    rule: Rule
    events: tuple[Example, ...]
    line: int
    expected_match: bool

    def __str__(self) -> str:
        want = "should match but did not" if self.expected_match else "matched but should not"
        return f"{self.rule.file}:{self.line}: [rule {self.rule.id}] example {want}"


def run_examples(
    rules: Iterable[Rule],
    context: Iterable[Rule] = (),
    classifiers: Mapping[str, TextClassifier] | None = None,
) -> tuple[int, list[ExampleFailure]]:
    """(examples run, failures). Each rule runs alone, disabled ones included; a pattern
    rule runs with the enabled ordinary rules of ``context`` (whose findings it reads).
    A sequence matches when the rule fires on its last event, and fails a no_match
    example if it fires on any event."""
    count = 0
    failures: list[ExampleFailure] = []
    helpers = [r for r in context if r.enabled and r.window is None]
    for rule in rules:
        others = [r for r in helpers if r.id != rule.id] if rule.window is not None else []
        engine = RuleEngine([rule, *others], include_disabled=True, classifiers=classifiers)
        for expected, examples in ((True, rule.examples.match), (False, rule.examples.no_match)):
            for events, line in examples:
                count += 1
                per_event = run_sequence(engine, events)
                if expected:
                    hit = any(f.rule == rule.id for f in per_event[-1])
                else:
                    hit = any(f.rule == rule.id for fs in per_event for f in fs)
                if hit != expected:
                    failures.append(ExampleFailure(rule, events, line, expected))
    return count, failures
