"""``rcwatch alerts list|follow|show|verdict|export-labels``: the alert store, for on-call staff.

Reads the store the monitor writes (``store:`` in the settings, ``<state_dir>/alerts.db``
by default). Output is one readable line per alert, or JSON (``--json``); every text from
an event goes through ``printable`` (no control character reaches the terminal).
"""

from __future__ import annotations

import argparse
import os
import pwd
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from sinks.alert import printable
from sinks.secrets import SecretError
from sinks.store import AlertStore, StoreError, describe_store, is_postgres
from streams.app import UsageError
from streams.settings import Settings
from streams.source.eventstreams import parse_since

__all__ = ["run_alerts_command"]


def _store(settings: Settings) -> AlertStore:
    try:
        target = settings.store_target()
    except SecretError as exc:
        raise UsageError(f"store.postgres_dsn: {exc}") from None
    if target is None:
        raise UsageError("the alert store is off (store.enabled: false)")
    if not is_postgres(target) and not Path(target).exists():
        where = describe_store(target)
        raise UsageError(
            f"no alert store at {where} yet: it is written by rcwatch run (and rcwatch demo, "
            "in the --state-dir it prints at the end)"
        )
    try:
        return AlertStore(target, settings.store.retention_days)
    except StoreError as exc:  # one line, no secret: exit 2
        raise UsageError(str(exc)) from None


def _judge() -> str:
    """Who a verdict given here says gave it: ``cli:`` and the operating-system account the
    command runs as, from its user id (``$USER`` and ``$LOGNAME`` are not read: anyone sets
    them). It shows which local account wrote the verdict, no more: whoever can write the
    store can write any verdict under any name (docs/triage.md, who a verdict names)."""
    uid = os.getuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:  # a container's user without a passwd entry
        name = f"uid {uid}"
    return "cli:" + printable(name, 64)


def _line(a: dict[str, Any]) -> str:
    verdict = f" [{a['verdict']}]" if a.get("verdict") else ""
    repeat = f" x{a['count']}" if (a.get("count") or 1) > 1 else ""
    return printable(
        f"{a['id'][:12]} {a.get('event_time') or '?'} {str(a['severity']).upper():<8} "
        f"{a['rule']}{repeat}{verdict} {a.get('wiki') or '?'} {a.get('title') or '?'}: "
        f"{a.get('reason') or ''} {a.get('diff_url') or ''}"
    )


def _since(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        ms = parse_since(value, retention_days=None)
    except ValueError as exc:
        raise UsageError(f"--since: {exc}") from None
    return (datetime.fromtimestamp(0, UTC) + timedelta(milliseconds=ms)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def _follow(store: AlertStore, args: argparse.Namespace) -> int:
    """New alerts (and updates of older ones) as the monitor stores them, until Ctrl-C."""
    seen = time.time() - args.backlog_seconds
    print(f"following {store.where()} (Ctrl-C stops)", file=sys.stderr, flush=True)
    while True:
        rows = store.query(
            rules=args.rule or (), categories=args.category or (),
            min_severity=args.min_severity, wikis=args.wiki or (), stored_after=seen,
            limit=1000,
        )  # fmt: skip
        for a in rows:
            seen = max(seen, float(a.pop("stored_at")))
            print(orjson.dumps(a).decode() if args.json else _line(a), flush=True)
        time.sleep(args.interval_seconds)


def run_alerts_command(settings: Settings, args: argparse.Namespace) -> int:
    store = _store(settings)
    try:
        if args.alerts_command == "list":
            rows = store.query(
                rules=args.rule or (), categories=args.category or (),
                min_severity=args.min_severity, wikis=args.wiki or (),
                since=_since(args.since), limit=args.limit,
            )  # fmt: skip
            for a in rows:
                print(orjson.dumps(a).decode() if args.json else _line(a))
            print(f"{len(rows)} alert(s)", file=sys.stderr)
            return 0
        if args.alerts_command == "follow":
            return _follow(store, args)
        if args.alerts_command == "show":
            found = store.get(args.id)
            if found is None:
                print(f"rcwatch: no single alert with id {printable(args.id, 40)}", file=sys.stderr)
                return 1
            if args.json:
                print(orjson.dumps(found, option=orjson.OPT_INDENT_2).decode())
                return 0
            print(_line({**found, "verdict": None}))
            for e in found.get("evidence", []):
                print(printable(f"  evidence: {e['kind']} {e['redacted']} in {e['field']}"))
            for v in found["verdicts"]:
                at = datetime.fromtimestamp(v["at"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                note = f": {v['note']}" if v.get("note") else ""
                print(printable(f"  verdict {v['verdict']} by {v.get('by') or '?'} at {at}{note}"))
            return 0
        if args.alerts_command == "export-labels":
            from streams.commands.labels import export_labels

            return export_labels(settings, store, args)
        try:
            alert_id = store.verdict(args.id, args.verdict, args.note, _judge())
        except KeyError:
            print(f"rcwatch: no single alert with id {printable(args.id, 40)}", file=sys.stderr)
            return 1
        print(f"{alert_id}: {args.verdict}")
        return 0
    except StoreError as exc:  # the store failed under a command (a server gone)
        raise UsageError(str(exc)) from None
    finally:
        store.close()
