"""Scenario events for pattern rules, injected into the real recorded stream.

Each scenario is a list of partial events (wiki, title, user, summary, added/removed text)
that become full recentchange events carrying their content, the way an enriched archive
line does, placed between recorded events and stamped with their neighbours' time.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import orjson

from detectors.event import RawEvent
from tests.conftest import shared_data

_ids = itertools.count(1)

NS = {"User talk": 3, "User": 2, "Talk": 1}


def event(
    *,
    title: str,
    user: str,
    wiki: str = "enwiki",
    summary: str = "",
    added: str | None = None,
    removed: str | None = None,
    dt: str = "2026-05-05T11:17:45.000Z",
) -> tuple[bytes, dict[str, Any] | None]:
    n = next(_ids)
    prefix = title.split(":", 1)[0] if ":" in title else ""
    host = {
        "enwiki": "en.wikipedia.org",
        "dewiki": "de.wikipedia.org",
        "frwiki": "fr.wikipedia.org",
    }.get(wiki, "en.wikipedia.org")
    data = {
        "$schema": "/mediawiki/recentchange/1.0.0",
        "meta": {
            "id": f"5ce0a000-0000-4000-8000-{n:012d}",
            "dt": dt,
            "domain": host,
            "stream": "mediawiki.recentchange",
        },
        "type": "edit",
        "namespace": NS.get(prefix, 0),
        "title": title,
        "comment": summary,
        "user": user,
        "bot": False,
        "wiki": wiki,
        "server_url": f"https://{host}",
        "server_name": host,
        "server_script_path": "/w",
        "revision": {"old": 900_000_000 + 2 * n, "new": 900_000_001 + 2 * n},
        "length": {"old": 100, "new": 120},
        "rcwatch_scenario": True,
    }
    content = None
    if added is not None or removed is not None:
        content = {"status": "ok", "added": added, "removed": removed, "reason": None}
    return orjson.dumps(data), content


def recorded() -> list[bytes]:
    path = shared_data("recentchange", "rts-recentchange-60s-2026-05-05.ndjson")
    return [orjson.loads(line)["data"].encode() for line in path.read_bytes().splitlines()]


def inject(
    base: list[bytes], scenario: list[tuple[bytes, dict[str, Any] | None]], every: int = 150
) -> list[RawEvent]:
    """The recorded events with the scenario's events spread among them, each taking
    the event time of the recorded event it follows."""
    out: list[RawEvent] = []
    pending = iter(scenario)
    nxt = next(pending, None)
    for i, data in enumerate(base):
        out.append(RawEvent(None, data, 0))
        if nxt is not None and i % every == every - 1:
            dt = orjson.loads(data)["meta"]["dt"]
            body = orjson.loads(nxt[0])
            body["meta"]["dt"] = dt
            out.append(RawEvent(None, orjson.dumps(body), 0, nxt[1]))
            nxt = next(pending, None)
    while nxt is not None:  # more scenario events than slots: append the rest
        out.append(RawEvent(None, nxt[0], 0, nxt[1]))
        nxt = next(pending, None)
    return out


def scenarios() -> Iterator[tuple[str, list[tuple[bytes, dict[str, Any] | None]]]]:
    yield (
        "pattern.brigading",
        [
            event(title="User talk:Victim", user="203.0.113.5", added="you are an idiot"),
            event(title="User talk:Victim", user="~2026-11111-22", added="what a moron you are"),
            event(title="User talk:Victim", user="198.51.100.9", added="stupid asshole, you"),
        ],
    )
    hounding = []
    for page in "ABCDE":
        hounding.append(event(title=f"Example article {page}", user="Target", summary="copyedit"))
        hounding.append(event(title=f"Example article {page}", user="Follower", summary="rv"))
    yield "pattern.hounding", hounding
    yield (
        "pattern.pii-reinserted",
        [
            event(
                title="User talk:Someone", user="Attacker", added="her mobile is +44 7700 900123"
            ),
            event(
                title="User talk:Someone",
                user="Oversighter",
                removed="her mobile is +44 7700 900123",
            ),
            event(title="User talk:Someone", user="Attacker", added="call her: +44 7700 900 123"),
        ],
    )
    yield (
        "pattern.cross-wiki",
        [
            event(wiki="enwiki", title="Page", user="Roamer", summary="rv idiot"),
            event(wiki="dewiki", title="Seite", user="Roamer", summary="du Vollidiot"),
            event(wiki="frwiki", title="Page", user="Roamer", summary="connard"),
        ],
    )
    yield (
        "pattern.harassment-spree",
        [
            event(title=f"Talk:Topic {i}", user="Angry", added=f"you {word}")
            for i, word in enumerate(["idiot", "moron", "cretin", "imbecile", "dumbass"])
        ],
    )
