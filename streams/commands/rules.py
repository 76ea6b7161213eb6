"""``rcwatch rules``: tooling for rule maintainers (validate, test, backtest, scan)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections import Counter, defaultdict, deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import orjson

from detectors.base import DetectionContext
from detectors.event import MalformedEvent
from detectors.language import MAJOR_LANGUAGES
from detectors.rules.engine import RuleEngine
from detectors.rules.examples import example_change, run_examples
from detectors.rules.loader import load_rules, rule_files
from detectors.rules.model import Example, LanguageCond, Rule, leaf_conditions
from sinks.alert import printable
from sinks.metrics import Metrics
from sinks.secrets import SecretError
from sinks.store import VERDICTS, AlertStore, StoreError, is_postgres, precision
from streams.app import load_classifiers
from streams.fetch.content import Content
from streams.pipeline.detection import Detection, StormGuardConfig
from streams.pipeline.parallel import DetectionPool, default_workers
from streams.pipeline.stages import BatchWork, Pipeline
from streams.pipeline.throttle import Throttle, ThrottleConfig
from streams.settings import Settings
from streams.source.replay import ReplaySource

__all__ = ["run_rules_command"]


def _paths(settings: Settings, args: argparse.Namespace) -> list[Path]:
    return [Path(p) for p in args.rules] if args.rules else settings.rules_paths


def _load(settings: Settings, args: argparse.Namespace, out: TextIO) -> list[Rule] | None:
    rules, issues = load_rules(_paths(settings, args), load_classifiers(settings).keys())
    for issue in issues:
        print(str(issue), file=out)
    return None if issues else rules


def run_rules_command(settings: Settings, args: argparse.Namespace) -> int:
    cmd = args.rules_command
    if cmd == "validate":
        return _validate(settings, args)
    if cmd == "test":
        return _test(settings, args)
    if cmd == "backtest":
        return asyncio.run(_backtest(settings, args))
    if cmd == "list":
        return _list(settings, args)
    return _scan(settings, args)


def _validate(settings: Settings, args: argparse.Namespace) -> int:
    paths = _paths(settings, args)
    rules, issues = load_rules(paths, load_classifiers(settings).keys())
    for issue in issues:
        print(str(issue))
    files = rule_files(paths)
    if issues:
        print(f"{len(issues)} problem(s) in {len(files)} file(s)", file=sys.stderr)
        return 1
    enabled = sum(r.enabled for r in rules)
    print(f"ok: {len(rules)} rules ({enabled} enabled) in {len(files)} file(s)")
    return 0


def _test(settings: Settings, args: argparse.Namespace) -> int:
    rules = _load(settings, args, sys.stdout)
    if rules is None:
        return 1
    selected = rules
    if args.rule:
        unknown = set(args.rule) - {r.id for r in rules}
        if unknown:
            print(f"unknown rule id(s): {', '.join(sorted(unknown))}")
            return 1
        selected = [r for r in rules if r.id in args.rule]
    count, failures = run_examples(selected, context=rules, classifiers=load_classifiers(settings))
    print(_ran(selected), file=sys.stderr)
    for f in failures:
        print(str(f))
    if failures:
        print(f"{len(failures)} of {count} examples failed ({len(selected)} rules)")
        return 1
    print(f"ok: {count} examples of {len(selected)} rules passed")
    return 0


async def _backtest(settings: Settings, args: argparse.Namespace) -> int:
    rules = _load(settings, args, sys.stderr)
    if rules is None:
        return 1
    missing = [f for f in args.files if not Path(f).is_file()]  # noqa: ASYNC240
    if missing:
        print(f"no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    models = load_classifiers(settings)
    engine = RuleEngine(rules, include_disabled=not args.only_enabled, classifiers=models)
    singles = {
        r.id: RuleEngine([r], include_disabled=True, classifiers=models) for r in engine.rules
    }
    metrics = Metrics()
    # the production path without its production guards: every hit counts, none is
    # folded (throttle) or muted (storm guard); archived content is used, never fetched
    detection = Detection(
        engine, metrics, storm=StormGuardConfig(enabled=False), profile_every_events=0
    )
    pipeline = Pipeline(
        settings.scope.build(), detection, metrics, throttle=Throttle(ThrottleConfig(enabled=False))
    )
    workers = args.workers or default_workers()
    if workers > 1:  # the rules in worker processes; windows, counts and samples here
        pipeline.pool = DetectionPool(pipeline, workers)
    hits: Counter[str] = Counter()
    cost: dict[str, float] = defaultdict(float)
    samples: dict[str, list[dict[str, Any]]] = defaultdict(list)
    timed = seen = 0
    started = time.perf_counter()

    async def settle(work: BatchWork) -> None:
        nonlocal seen, timed
        if work.pooled is not None:
            pipeline.apply_pooled(work, await asyncio.wrap_future(work.pooled))
        for item in work.events:
            if not (item.in_scope and item.change is not None):
                continue
            seen += 1
            if args.cost_every and seen % args.cost_every == 0:
                timed += 1
                ctx = _ctx(item.content)
                for rule_id, single in singles.items():
                    t0 = time.perf_counter()
                    single.evaluate(item.change, ctx)
                    cost[rule_id] += time.perf_counter() - t0
        result = pipeline.complete(work)
        for alert in result.alerts:
            hits[alert.rule] += 1
            if len(samples[alert.rule]) < args.samples:
                samples[alert.rule].append(
                    {
                        "wiki": alert.wiki,
                        "title": alert.title,
                        "event_time": alert.event_time,
                        "link": alert.diff_url or alert.page_url,
                        "target": alert.target,
                        "evidence": [f"{e.kind} {e.redacted} in {e.field}" for e in alert.evidence],
                    }
                )

    # batches handed to the workers and not taken back yet, oldest first: they evaluate
    # the next ones while this process completes the oldest
    ahead: deque[BatchWork] = deque()
    try:
        async for batch in ReplaySource(args.files).batches():
            ahead.append(pipeline.prepare(batch))
            if len(ahead) > workers:
                await settle(ahead.popleft())
        while ahead:
            await settle(ahead.popleft())
    finally:
        if pipeline.pool is not None:
            pipeline.pool.close()
    seconds = time.perf_counter() - started
    evaluated = pipeline.processed
    verdicts = _store_stats(settings)
    value = metrics.registry.get_sample_value
    report = {
        "rules_ran": len(engine.rules),
        "rules_disabled": sum(not r.enabled for r in engine.rules),
        "events": pipeline.events,
        "evaluated": evaluated,
        "malformed": pipeline.dropped["malformed"],
        "with_content": int(value("rcwatch_content_events_total", {"outcome": "archived"}) or 0),
        "seconds": round(seconds, 3),
        "rules": [
            {
                "id": r.id,
                "enabled": r.enabled,
                "category": str(r.category),
                "severity": str(r.severity),
                "pattern": r.window is not None,
                "hits": hits[r.id],
                "hits_per_10k": round(hits[r.id] * 10_000 / evaluated, 2) if evaluated else 0.0,
                "cost_us_per_event": round(cost[r.id] / timed * 1e6, 2) if timed else None,
                "samples": samples[r.id],
                # measured in production: the alert store's verdicts on this rule
                "verdicts": {v: verdicts.get(r.id, {}).get(v, 0) for v in VERDICTS},
                "precision": precision(verdicts[r.id]) if r.id in verdicts else None,
            }
            for r in engine.rules
        ],
    }
    if args.json:
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    _print_backtest(report)
    return 0


def _ran(rules: Sequence[Rule]) -> str:
    """Which rules ran: said by every command that runs them."""
    disabled = sum(not r.enabled for r in rules)
    return f"rules: {len(rules)} ran ({disabled} of them disabled)"


def _ctx(content: Content | None) -> DetectionContext:
    if content is None or content.status != "ok":
        return DetectionContext()
    return DetectionContext(added_text=content.added, removed_text=content.removed)


def _print_backtest(report: dict[str, Any]) -> None:
    print(f"rules: {report['rules_ran']} ran ({report['rules_disabled']} of them disabled)")
    print(
        f"{report['events']:,} events ({report['evaluated']:,} in scope, "
        f"{report['with_content']:,} with archived content, "
        f"{report['malformed']:,} malformed) in {report['seconds']:.2f} s"
    )
    print(
        f"{'rule':<40} {'on':>3} {'sev':>8} {'hits':>7} {'/10k':>8} {'us/event':>9} "
        f"{'precision':>10}"
    )
    for r in report["rules"]:
        us = "-" if r["cost_us_per_event"] is None else f"{r['cost_us_per_event']:.1f}"
        on = "yes" if r["enabled"] else "no"
        prec = _measured(r["verdicts"])
        print(
            f"{r['id']:<40} {on:>3} {r['severity']:>8} {r['hits']:>7,} "
            f"{r['hits_per_10k']:>8.2f} {us:>9} {prec:>10}"
        )
    print(
        "precision: measured in production, true / (true + false) over the alert store's "
        "verdicts (how many in brackets); see docs/triage.md"
    )
    for r in report["rules"]:
        for s in r["samples"]:
            ev = "; ".join(s["evidence"])
            print(printable(f"  {r['id']}: {s['wiki']} {s['title']} {s['link']} ({ev})"))


def _scan_example(line: str, field: str) -> Example | None:
    line = line.rstrip("\n")
    if not line.strip():
        return None
    context: dict[str, Any] = {}
    text = line
    if line.lstrip().startswith("{"):
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            obj = None
        if isinstance(obj, dict) and isinstance(obj.get("text"), str):
            text = obj.pop("text")
            known = {f.name for f in Example.__dataclass_fields__.values()}
            context = {k: v for k, v in obj.items() if k in known}
    defaults: dict[str, Any] = {"title": "Talk:Example page"} if field == "added_text" else {}
    if field == "title":
        defaults["type"] = "new"
    return Example(**{**defaults, **context, field: text})


def _scan(settings: Settings, args: argparse.Namespace) -> int:
    rules = _load(settings, args, sys.stderr)
    if rules is None:
        return 1
    engine = RuleEngine(
        rules, include_disabled=not args.only_enabled, classifiers=load_classifiers(settings)
    )
    enabled = {r.id: r.enabled for r in engine.rules}
    print(_ran(engine.rules), file=sys.stderr)
    stream: TextIO = sys.stdin if args.input == "-" else open(args.input, encoding="utf-8")  # noqa: SIM115
    out = sys.stdout
    try:
        for n, line in enumerate(stream, 1):
            example = _scan_example(line, args.field)
            if example is None:
                continue
            try:
                change, ctx = example_change(example)
            except MalformedEvent as exc:
                out.write(orjson.dumps({"line": n, "error": exc.reason}).decode() + "\n")
                continue
            findings = engine.evaluate(change, ctx, ignore_scope=True)
            out.write(
                orjson.dumps(
                    {
                        "line": n,
                        "findings": [
                            {
                                "rule": f.rule,
                                "enabled": enabled.get(f.rule, True),
                                "category": str(f.category),
                                "severity": str(f.severity),
                                "title": f.reason,
                                "spans": [
                                    {
                                        "field": s.field,
                                        "start": s.start,
                                        "end": s.end,
                                        "kind": s.kind,
                                        "redacted": s.redacted,
                                    }
                                    for s in f.spans
                                ],
                            }
                            for f in findings
                        ],
                    }
                ).decode()
                + "\n"
            )
    finally:
        if stream is not sys.stdin:
            stream.close()
    return 0


def _store_stats(settings: Settings) -> dict[str, dict[str, int]]:
    """Alerts and verdicts per rule from the alert store; nothing when there is no store
    yet or it cannot be opened (the rule tools work without one)."""
    with contextlib.suppress(SecretError, StoreError):
        target = settings.store_target()
        if target is not None and (is_postgres(target) or Path(target).exists()):
            store = AlertStore(target)
            try:
                return store.rule_stats()
            finally:
                store.close()
    return {}


def _measured(stats: dict[str, int] | None) -> str:
    """Measured precision with how many verdicts it rests on: ``0.83 (12)``, or ``-``."""
    p = precision(stats) if stats else None
    if p is None or stats is None:
        return "-"
    return f"{p:.2f} ({stats['true'] + stats['false']})"


def rule_languages(rule: Rule) -> set[str]:
    """The languages a rule's language conditions name (none: it reads any language)."""
    return {
        code
        for c in leaf_conditions(rule.match)
        if isinstance(c, LanguageCond)
        for code in c.languages
    }


def _list(settings: Settings, args: argparse.Namespace) -> int:
    """Every rule, disabled ones too: id, category, severity, enabled, where it is."""
    rules = _load(settings, args, sys.stdout)
    if rules is None:
        return 1
    stats = _store_stats(settings)
    rows: list[dict[str, Any]] = [
        {"id": r.id, "category": str(r.category.value), "severity": str(r.severity.value),
         "enabled": r.enabled, "pattern": r.window is not None, "title": r.title,
         "file": r.file, "line": r.line, "alerts": stats.get(r.id, {}).get("alerts", 0),
         "verdicts": {v: stats.get(r.id, {}).get(v, 0) for v in VERDICTS},
         "precision": precision(stats[r.id]) if r.id in stats else None,
         "languages": sorted(rule_languages(r))}
        for r in sorted(rules, key=lambda r: (r.category.value, r.id))
    ]  # fmt: skip
    if args.json:
        for row in rows:
            print(orjson.dumps(row).decode())
        return 0
    width = max((len(r["id"]) for r in rows), default=2)
    print(
        f"{'rule':<{width}}  {'category':<10} {'severity':<8} {'enabled':<7} "
        f"{'alerts':>6} {'precision':>9}  {'language':<8}  title"
    )
    for row in rows:
        on = "yes" if row["enabled"] else "no"
        prec = _measured(stats.get(row["id"]))
        langs = ",".join(row["languages"]) or "any"
        print(f"{row['id']:<{width}}  {row['category']:<10} {row['severity']:<8} {on:<7} "
              f"{row['alerts']:>6} {prec:>9}  {langs:<8}  "
              f"{printable(str(row['title']), 50)}")  # fmt: skip
    print(f"{len(rows)} rules ({sum(bool(r['enabled']) for r in rows)} enabled)", file=sys.stderr)
    print(_coverage(settings, rules), file=sys.stderr)
    return 0


def _coverage(settings: Settings, rules: list[Rule]) -> str:
    """Which languages rcwatch judges abuse in, and which not: rules with a language
    condition (validated by their examples in that language), the classifier's validated
    languages (``rcwatch model info`` has its figures), English; the largest wikis'
    languages without either are "not covered"."""
    by_rules: dict[str, int] = {}
    for rule in rules:
        if rule.enabled:
            for code in rule_languages(rule):
                by_rules[code] = by_rules.get(code, 0) + 1
    models = load_classifiers(settings)
    by_model = {code for model in models.values() for code in model.covered_languages}
    covered = {"en", *by_rules, *by_model}
    parts = []
    for code in sorted(covered):
        what = []
        if code in by_rules:
            what.append(f"{by_rules[code]} rules")
        if code in by_model:
            what.append("model")
        parts.append(f"{code} ({', '.join(what) or 'rules'})")
    missing = sorted(MAJOR_LANGUAGES - covered)
    return (
        f"languages judged: {', '.join(parts)}\n"
        f"not covered (edits in these are counted as not judged, never as clean): "
        f"{', '.join(missing) or 'none'}"
    )
