"""``rcwatch sinks``: what each configured sink holds, test a target, redrive dead letters.

- ``rcwatch sinks status``: per sink its type, route, target (never a secret), spooled
  alerts and bytes, dead letters, delivered ids remembered.
- ``rcwatch sinks test NAME``: one synthetic low-severity alert (rule ``rcwatch.test``,
  no private data) sent straight to the target, to check a URL, key or route end to end.
- ``rcwatch sinks redrive NAME``: queue the sink's dead letters for redelivery; the next
  start of ``rcwatch run`` puts them back in the spool (restart a running one).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sinks.alert import Alert, alert_id, printable
from sinks.delivery import TransportError, queue_redrive, read_dead_letters, sink_state_dir
from sinks.factory import REMOTE_SINK_CONFIGS, RemoteSinkConfig, build_transport
from sinks.routing import RouteConfig
from sinks.secrets import SecretError, SecretRef
from sinks.spool import Spool
from sinks.webhooks import safe_target
from streams.settings import JsonlSinkConfig, Settings, SinkConfig

__all__ = ["run_sinks_command"]


def run_sinks_command(settings: Settings, args: argparse.Namespace) -> int:
    if args.sinks_command == "status":
        return _status(settings, as_json=args.json)
    cfg = next((s for s in settings.sinks if s.name == args.name), None)
    if cfg is None:
        names = ", ".join(s.name for s in settings.sinks) or "none"
        print(f"rcwatch: no sink named {args.name!r} (configured: {names})")
        return 2
    if args.sinks_command == "test":
        return asyncio.run(_test(settings, cfg))
    if args.sinks_command == "redrive":
        if not isinstance(cfg, REMOTE_SINK_CONFIGS):
            print(f"rcwatch: sink {cfg.name!r} ({cfg.type}) has no dead letters")
            return 2
        n = queue_redrive(sink_state_dir(Path(settings.state_dir), cfg.name))
        if n:
            print(f"{n} dead-lettered alerts queued; sink {cfg.name!r} resends them when it starts")
        else:
            print(f"sink {cfg.name!r} has no dead letters")
        return 0
    return 2


def _route_text(route: RouteConfig) -> str:
    if route.routes_everything:
        return "everything"
    parts = []
    if route.categories is not None:
        parts.append("categories " + ",".join(route.categories))
    if route.min_severity != "low":
        parts.append(f"severity >= {route.min_severity}")
    if route.rules != ("*",):
        parts.append("rules " + ",".join(route.rules))
    if route.exclude_rules:
        parts.append("not " + ",".join(route.exclude_rules))
    return "; ".join(parts)


def _target_text(cfg: SinkConfig, settings: Settings) -> str:
    """Where a sink delivers, without secrets (a secret shows as env:NAME or file:PATH)."""
    value = next(
        (v for a in ("url", "webhook_url", "url_secret") if (v := getattr(cfg, a, None))), None
    )
    if isinstance(value, SecretRef):
        return f"secret {value.where}"
    if isinstance(value, str):
        return safe_target(value) if "://" in value else value
    if isinstance(cfg, JsonlSinkConfig):
        return str(settings.jsonl_path(cfg))
    servers = getattr(cfg, "bootstrap_servers", None)
    if servers:
        return f"kafka {servers} topic {getattr(cfg, 'topic', '')}"
    return "-"


def _status(settings: Settings, *, as_json: bool) -> int:
    rows = []
    for cfg in settings.sinks:
        row: dict[str, Any] = {
            "name": cfg.name,
            "type": cfg.type,
            "route": _route_text(cfg.route),
            "target": _target_text(cfg, settings),
        }
        if isinstance(cfg, REMOTE_SINK_CONFIGS):
            d = sink_state_dir(Path(settings.state_dir), cfg.name)
            # read-only: a running rcwatch may be appending to this spool right now
            row["spooled"], row["spool_bytes"] = Spool.inspect(d)
            row["dead_letters"] = len(read_dead_letters(d / "dead-letter.ndjson"))
            row["redrive_queued"] = sum(
                len(read_dead_letters(p)) for p in sorted(d.glob("redrive-*.ndjson"))
            )
        rows.append(row)
    if as_json:
        for row in rows:
            print(json.dumps(row))
        return 0
    for row in rows:
        extra = ""
        if "spooled" in row:
            extra = (
                f"  spooled {row['spooled']} ({row['spool_bytes']} B)"
                f"  dead letters {row['dead_letters']}"
                + (f"  queued for redrive {row['redrive_queued']}" if row["redrive_queued"] else "")
            )
        print(f"{row['name']:<16} {row['type']:<12} {row['target']:<40} route: {row['route']}")
        if extra:
            print(f"{'':<16}{extra}")
    return 0


def _test_alert() -> Alert:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    return Alert(
        id=alert_id("rcwatch.test", "testwiki", now),
        rule="rcwatch.test",
        category="privacy",
        severity="low",
        wiki="testwiki",
        title="rcwatch sink test",
        page_url=None,
        diff_url=None,
        performer=None,
        performer_kind="unknown",
        event_id=None,
        event_time=now,
        detected_at=now,
        reason="a test alert sent by `rcwatch sinks test`; no action needed",
        evidence=(),
    )


async def _test(settings: Settings, cfg: SinkConfig) -> int:
    if not isinstance(cfg, REMOTE_SINK_CONFIGS):
        print(f"sink {cfg.name!r} ({cfg.type}) is local; nothing to test")
        return 0
    remote: RemoteSinkConfig = cfg
    try:
        transport = build_transport(remote, user_agent=settings.stream.user_agent)
    except (SecretError, ValueError) as exc:
        print(printable(f"rcwatch: sink {cfg.name!r}: {exc}"))
        return 2
    await transport.start()
    try:
        async with asyncio.timeout(remote.delivery.timeout_seconds):
            await transport.send([_test_alert().to_dict()])
    except TimeoutError:
        print(f"FAIL {cfg.name}: {transport.describe()}: no answer in time")
        return 1
    except TransportError as exc:
        hint = "" if exc.retryable else " (refused: check the key, URL or permissions)"
        print(printable(f"FAIL {cfg.name}: {transport.describe()}: {exc}{hint}"))
        return 1
    finally:
        await transport.close()
    print(f"OK   {cfg.name}: {transport.describe()} accepted a test alert")
    return 0
