"""Private data injected into test events: the alerts the real detectors raise on them must
never carry it anywhere (payloads, spools, logs, metrics) unless a private sink opts in."""

from __future__ import annotations

import orjson

from detectors.base import DetectionContext
from detectors.event import decode_event
from sinks.alert import Alert
from sinks.metrics import Metrics
from streams.app import build_detection
from streams.fetch.content import WIKIMEDIA_HOSTS
from streams.fetch.wikihosts import WikiHosts
from streams.pipeline.alerting import build_alerts
from streams.settings import Settings

HOSTS = WikiHosts(WIKIMEDIA_HOSTS)

__all__ = ["SECRETS", "pii_event", "private_alerts"]

# -- the private data injected into the test events -------------------------------------------

SECRETS = (
    "jane.roe.private@example.org",
    "+44 20 7946 0321",
    "4111 1111 1111 1111",
)


def pii_event(n: int, summary: str, title: str | None = None) -> bytes:
    return orjson.dumps(
        {
            "$schema": "/mediawiki/recentchange/1.0.0",
            "meta": {
                "id": f"private-{n}",
                "dt": f"2026-05-05T11:{17 + n // 60:02d}:{n % 60:02d}Z",
                "domain": "en.wikipedia.org",
                "stream": "mediawiki.recentchange",
            },
            "id": 1000 + n,
            "type": "edit",
            "namespace": 3,
            "title": title or f"User talk:Example{n}",
            "comment": summary,
            "timestamp": 1778000000 + n,
            "user": "203.0.113.7" if n % 2 else f"Editor{n}",
            "bot": False,
            "minor": False,
            "length": {"old": 100, "new": 180},
            "revision": {"old": 50_000 + n, "new": 60_000 + n},
            "server_url": "https://en.wikipedia.org",
            "server_name": "en.wikipedia.org",
            "server_script_path": "/w",
            "wiki": "enwiki",
        }
    )


def private_alerts() -> list[Alert]:
    """Alerts the real detectors and alert builder raise on events carrying ``SECRETS``."""
    settings = Settings()
    detection = build_detection(settings, Metrics())
    summaries = [
        f"contact me at {SECRETS[0]} please",
        f"his phone is {SECRETS[1]}, call him",
        f"card number {SECRETS[2]} exp 12/29",
        f"you can write to {SECRETS[0]} or ring {SECRETS[1]}",
    ]
    # a user talk page named after its owner's address: the alert's target names the owner
    titles = [None] * len(summaries) + [f"User talk:{SECRETS[0]}"]
    summaries.append("a note")
    out: list[Alert] = []
    for n, (summary, title) in enumerate(zip(summaries, titles, strict=True)):
        change = decode_event(pii_event(n, summary, title))
        findings = detection.detect(change, DetectionContext())
        out += build_alerts(change, DetectionContext(), findings, "2026-05-05T11:18:00Z", HOSTS)
    assert len(out) >= 4, [a.rule for a in out]
    assert any(v for a in out for v in a.raw_values), "the alerts must carry the raw values"
    return out
