"""Decoding recorded events into the typed change, and what is derived from it."""

from __future__ import annotations

import gzip
from collections import Counter

import orjson
import pytest

from detectors.event import MalformedEvent, PerformerKind, decode_event, performer_kind
from tests.conftest import shared_data


def test_every_recorded_recentchange_event_decodes() -> None:
    path = shared_data("recentchange", "rts-recentchange-60s-2026-05-05.ndjson")
    types: Counter[str | None] = Counter()
    kinds: Counter[PerformerKind] = Counter()
    n = 0
    for line in path.read_bytes().splitlines():
        change = decode_event(orjson.loads(line)["data"])
        types[change.type] += 1
        kinds[change.performer_kind] += 1
        assert change.meta_id and change.wiki and change.event_time
        n += 1
    assert n == 2476
    assert types == {"categorize": 1266, "edit": 937, "log": 153, "new": 120}
    assert kinds[PerformerKind.TEMPORARY] == 53
    assert kinds[PerformerKind.BOT] > 1000


def test_the_2018_envelope_decodes() -> None:
    path = shared_data("recentchange", "editgroups-wikidata-2018.jsonl.gz")
    n = 0
    for line in gzip.decompress(path.read_bytes()).splitlines():
        change = decode_event(line)
        assert change.wiki == "wikidatawiki" and change.dt is not None
        n += 1
    assert n == 5705


def test_other_streams_map_onto_the_model() -> None:
    path = shared_data("recentchange", "other-streams-sse-examples.json")
    streams = orjson.loads(path.read_bytes())
    for name in ("page-create", "revision-create", "page-delete", "page-move"):
        for item in streams[name]:
            change = decode_event(orjson.dumps(item["data"]))
            assert change.wiki and change.title and change.type
    [rev, *_] = streams["revision-create"]
    change = decode_event(orjson.dumps(rev["data"]))
    assert change.type == "edit" and change.rev_new == 516364180 and change.user == "Kawaart"
    assert (change.server_name, change.rev_old) == ("commons.wikimedia.org", 352825217)


def _minimal(**fields: object) -> bytes:
    return orjson.dumps(
        {
            "$schema": "/mediawiki/recentchange/1.0.0",
            "meta": {"dt": "2026-05-05T11:17:40Z", "stream": "x"},
            **fields,
        }
    )


@pytest.mark.parametrize(
    "absent", ["user", "id", "revision", "length", "minor", "patrolled", "title", "comment"]
)
def test_optional_fields_may_be_absent(sample_events: list[bytes], absent: str) -> None:
    full = next(orjson.loads(e) for e in sample_events if b'"revision"' in e)
    full.pop(absent, None)
    change = decode_event(orjson.dumps(full))
    assert change.wiki == full["wiki"]
    if absent == "user":
        assert change.performer_kind is PerformerKind.UNKNOWN
    if absent == "revision":
        assert change.rev_new is None


def test_bare_minimum_event() -> None:
    change = decode_event(_minimal())
    assert change.title is None and change.comment == ""
    assert change.event_time == pytest.approx(1777979860.0)


def test_unknown_fields_are_kept() -> None:
    change = decode_event(_minimal(wiki="enwiki", brand_new_field={"x": 1}))
    assert change.extra == {"brand_new_field": {"x": 1}}
    assert change.raw["brand_new_field"] == {"x": 1}


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"wiki": "enwiki"}', "no meta object"),
        (_minimal(namespace="zero"), "'namespace' is not an integer"),
        (_minimal(revision=[1, 2]), "'revision' is not an object"),
        (_minimal(title=5), "'title' is not a string"),
    ],
)
def test_malformed_events_name_the_problem_not_the_content(data: bytes, reason: str) -> None:
    with pytest.raises(MalformedEvent) as err:
        decode_event(data)
    assert reason in err.value.reason
    assert "zero" not in str(err.value)


@pytest.mark.parametrize(
    ("user", "bot", "kind"),
    [
        ("203.0.113.7", False, PerformerKind.IP),
        ("2001:DB8:0:0:0:0:0:1", False, PerformerKind.IP),
        ("~2026-12345-67", False, PerformerKind.TEMPORARY),
        ("~2025-1234", False, PerformerKind.TEMPORARY),
        ("~Tilde fan", False, PerformerKind.REGISTERED),
        ("1234 Numbers Start", False, PerformerKind.REGISTERED),
        ("ExampleBot", True, PerformerKind.BOT),
        ("Example", False, PerformerKind.REGISTERED),
        (None, False, PerformerKind.UNKNOWN),
    ],
)
def test_performer_kind(user: str | None, bot: bool, kind: PerformerKind) -> None:
    assert performer_kind(user, bot) is kind


def test_size_delta_and_canary() -> None:
    change = decode_event(
        _minimal(length={"old": 10, "new": 4}, meta={"dt": "x", "domain": "canary"})
    )
    assert change.size_delta == -6
    assert change.is_canary
