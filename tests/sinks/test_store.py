"""The alert store: idempotent writes, queries, verdicts, precision, retention, metrics.
Every test runs against both backends: an SQLite file, and the machine's real PostgreSQL
(a fresh database per test, dropped afterwards)."""

from __future__ import annotations

import dataclasses
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from sinks.store import (
    AlertStore,
    StoreError,
    StoreSink,
    VerdictCollector,
    describe_store,
    is_postgres,
    postgres_url,
    precision,
)
from tests.sinks.test_jsonl import make_alert


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "a.db")
    dsn: str = request.getfixturevalue("postgres_db")
    return dsn


def _record(n: int, **changes: object) -> dict[str, object]:
    return dataclasses.replace(make_alert(n), **changes).to_dict()  # type: ignore[arg-type]


def test_an_update_replaces_an_older_count_never_a_newer_one(target: str) -> None:
    store = AlertStore(target)
    store.add([_record(1, count=1), _record(1, count=3)])
    store.add([_record(1, count=2)])  # a re-delivered older update
    [row] = store.query()
    assert row["count"] == 3
    store.add([_record(1, count=3)])  # the same again: nothing changes
    assert [r["count"] for r in store.query()] == [3]
    if "://" not in target:
        assert stat.S_IMODE(Path(target).stat().st_mode) == 0o600


def test_newest_first_goes_by_the_event_an_update_shows(target: str) -> None:
    """Issue 20, item 16: lists sorted by an alert's first event but showed its last, so
    an alert updated a minute ago sat below one from an hour ago."""
    store = AlertStore(target)
    early = _record(1, event_time="2026-05-05T10:00:00Z")
    middle = _record(2, event_time="2026-05-05T10:30:00Z")
    store.add([early, middle])
    store.add([_record(1, count=2, event_time="2026-05-05T11:00:00Z")])
    rows = store.query()
    assert [(r["id"], r["event_time"]) for r in rows] == [
        (early["id"], "2026-05-05T11:00:00Z"),
        (middle["id"], "2026-05-05T10:30:00Z"),
    ]
    assert [r["id"] for r in store.query(since="2026-05-05T10:45:00Z")] == [early["id"]]


def test_queries_filter_and_ids_resolve_by_unique_prefix(target: str) -> None:
    store = AlertStore(target)
    a = _record(1, rule="privacy.email", severity="high", wiki="enwiki")
    b = _record(2, rule="harassment.x", severity="low", wiki="dewiki", category="harassment")
    store.add([a, b])
    assert [r["id"] for r in store.query(rules=["privacy.email"])] == [a["id"]]
    assert [r["id"] for r in store.query(min_severity="medium")] == [a["id"]]
    assert [r["id"] for r in store.query(wikis=["dewiki"])] == [b["id"]]
    assert [r["id"] for r in store.query(categories=["harassment"])] == [b["id"]]
    assert store.get(str(a["id"])[:8])["id"] == a["id"]  # type: ignore[index]
    assert store.get("abc") is None  # too short to be a prefix
    assert store.get("'; DROP TABLE alerts; --") is None


def test_verdicts_give_precision_per_rule_newest_verdict_wins(target: str) -> None:
    store = AlertStore(target)
    records = [_record(n, rule="r.one") for n in range(1, 5)]
    store.add(records)
    ids = [str(r["id"]) for r in records]
    store.verdict(ids[0], "true", "right", "oncall")
    store.verdict(ids[1], "true", None, "oncall")
    store.verdict(ids[2], "true", None, "oncall")
    store.verdict(ids[2], "false", "on second look", "lead")  # the newest counts
    store.verdict(ids[3], "unsure", None, "oncall")
    stats = store.rule_stats()["r.one"]
    assert stats == {"alerts": 4, "true": 2, "false": 1, "unsure": 1}
    assert precision(stats) == 2 / 3
    assert [v["verdict"] for v in store.get(ids[2])["verdicts"]] == ["false", "true"]  # type: ignore[index]
    registry = CollectorRegistry()
    registry.register(VerdictCollector(target))
    text = generate_latest(registry).decode()
    assert 'rcwatch_alert_verdicts_total{rule="r.one",verdict="false"} 1.0' in text


def test_retention_removes_old_alerts_and_their_verdicts(target: str) -> None:
    store = AlertStore(target, retention_days=1)
    old, new = _record(1), _record(2)
    store.add([old], now=1_000_000.0)
    store.verdict(str(old["id"]), "true", None, None)
    store.add([new], now=1_000_000.0 + 2 * 86_400)  # prunes on the way
    assert [r["id"] for r in store.query()] == [new["id"]]
    assert store.rule_stats().get(str(old["rule"]), {}).get("true", 0) == 0


async def test_the_sink_indexes_redacted_alerts(target: str) -> None:
    sink = StoreSink("alert-store", target, 90)
    await sink.start()
    alert = make_alert(7)
    await sink.send([alert])
    await sink.send([alert])  # a retry after a failure elsewhere: still one alert
    await sink.close()
    store = AlertStore(target)
    [row] = store.query()
    assert row["id"] == alert.id and row["evidence"] == alert.to_dict()["evidence"]
    assert "value" not in str(row["evidence"])  # redacted only, as every non-private sink


def test_every_read_leaves_later_writes_visible_to_other_connections(target: str) -> None:
    """Whatever the page and the commands read first, a verdict written afterwards on the
    same connection is committed: another connection sees it."""
    store = AlertStore(target)
    store.add([_record(1, event_time="2026-05-05T10:00:00Z")])
    alert = str(store.query()[0]["id"])
    # every read the store offers, then a write, on one connection
    store.hits_by_day(7)
    store.rule_stats()
    store.judged()
    store.query(verdict="none")
    store.get(alert)
    store.verdict(alert, "false", "no", "me")
    other = AlertStore(target)
    assert other.rule_stats()[str(_record(1)["rule"])]["false"] == 1


def test_filters_by_newest_verdict_and_hits_per_day(target: str) -> None:
    store = AlertStore(target)
    a = _record(1, event_time="2026-05-05T10:00:00Z")
    b = _record(2, event_time="2026-05-03T10:00:00Z")
    c = _record(3, event_time="2026-04-01T10:00:00Z")  # outside a 7-day chart
    store.add([a, b, c])
    store.verdict(str(a["id"]), "true", None, "me")
    store.verdict(str(b["id"]), "true", None, "me")
    store.verdict(str(b["id"]), "unsure", None, "me")  # the newest counts
    assert [r["id"] for r in store.query(verdict="true")] == [a["id"]]
    assert [r["id"] for r in store.query(verdict="unsure")] == [b["id"]]
    assert [r["id"] for r in store.query(verdict="none")] == [c["id"]]
    with pytest.raises(ValueError, match="a verdict is one of"):
        store.query(verdict="maybe")
    dates, hits = store.hits_by_day(7)
    assert dates[0] == "2026-04-29" and dates[-1] == "2026-05-05"
    assert hits[str(a["rule"])] == [0, 0, 0, 0, 1, 0, 1]
    judged = store.judged()
    assert [(r["id"], v) for r, v in judged] == [(a["id"], "true")]


def test_hits_per_day_of_an_empty_store_is_empty(target: str) -> None:
    assert AlertStore(target).hits_by_day(14) == ([], {})


def test_a_second_store_in_one_process_keeps_the_first_ones_writes_visible(
    tmp_path: Path,
) -> None:
    """Opening a second store on the file (the triage page, a metrics scrape) closed a
    descriptor on it, which dropped the first connection's locks: another process then
    deleted the WAL on its way out, and the first connection's later writes were lost to
    every reader. Seen as verdicts the triage page took that no one else ever saw."""
    path = tmp_path / "a.db"
    writer = AlertStore(path)
    writer.add([_record(1)])
    AlertStore(path).close()  # a second store in this process, opened and closed
    peek = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
        "print(c.execute('select count(*) from verdicts').fetchone()[0]); c.close()"
    )

    def others_see() -> int:
        out = subprocess.run(
            [sys.executable, "-c", peek, str(path)], capture_output=True, check=True
        )
        return int(out.stdout)

    assert others_see() == 0  # another process opens and closes the database
    writer.verdict(str(_record(1)["id"]), "true", None, "me")
    assert others_see() == 1


# -- DSNs: one decision of the backend, printed without secrets (issue 20, item 4) ----------

SECRET = "hunter2-s3cret"


def test_both_libpq_forms_open_the_same_database_and_no_file(
    postgres_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key=value DSN was taken for a SQLite path: a file named after it appeared in the
    working directory and the team's database went unused."""
    monkeypatch.chdir(tmp_path)
    name = postgres_db.rsplit("/", 1)[1]
    pairs = f"host=127.0.0.1 port = 5432 user=postgres dbname='{name}' password={SECRET}"
    assert is_postgres(pairs) and is_postgres(postgres_db) and is_postgres(" postgres://h")
    assert not is_postgres(str(tmp_path / "a.db")) and not is_postgres("x=1.db")
    url = postgres_url(pairs)
    assert url.startswith("postgresql://") and "://" in url  # what every reader goes by
    AlertStore(postgres_db).add([_record(1)])
    for target in (pairs, url):
        store = AlertStore(target)
        assert [r["id"] for r in store.query()] == [_record(1)["id"]]
        assert SECRET not in store.where() and "password=***" in store.where()
        store.close()
    assert list(tmp_path.iterdir()) == []


def test_a_dsn_is_printed_without_its_secrets() -> None:
    shown = describe_store(
        f"postgresql://rcwatch:{SECRET}@db.example.org:5432/rcwatch?sslpassword={SECRET}"
    )
    assert shown == "postgresql://rcwatch:***@db.example.org:5432/rcwatch?sslpassword=***"
    pairs = f"host=db.example.org dbname=rcwatch password='{SECRET} x' sslmode=require"
    assert describe_store(pairs) == (
        "postgresql://?host=db.example.org&dbname=rcwatch&password=***&sslmode=require"
    )
    assert describe_store(f"postgresql://u:{SECRET}@h:5x/db") == (
        "PostgreSQL (a DSN that does not parse)"
    )
    assert describe_store(f"mysql://u:{SECRET}@h/db") == "an unsupported mysql:// URL"
    assert describe_store("/var/lib/rcwatch/alerts.db") == "/var/lib/rcwatch/alerts.db"
    sink = StoreSink("alert-store", pairs, 90)
    assert SECRET not in sink.path


@pytest.mark.parametrize(
    "dsn",
    [
        f"postgresql://rcwatch:{SECRET}@db.example.org:54x2/rcwatch",
        f"postgresql://rcwatch:{SECRET}%zz@db.example.org/rcwatch",
        f"postgresql://rcwatch:{SECRET}@[::1/rcwatch",
        f"postgresql://rcwatch:{SECRET}@db/rcwatch?password",
        f"postgresql://rcwatch:{SECRET}@db/rcwatch?{SECRET}=1",
        f"host=db password={SECRET} {SECRET}",
        f"host=db password='{SECRET}",
        f"host=db {SECRET}=1",
        f"mysql://rcwatch:{SECRET}@db/rcwatch",
        f"{SECRET}.db",
    ],
)
def test_a_dsn_libpq_would_refuse_is_refused_naming_no_secret(dsn: str) -> None:
    with pytest.raises(StoreError) as raised:
        postgres_url(dsn)
    assert str(raised.value).startswith("not a PostgreSQL DSN")
    assert SECRET not in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.parametrize(
    "target",
    [
        f"postgresql://rcwatch:{SECRET}@127.0.0.1:1/rcwatch",
        f"host=127.0.0.1 port=1 user=rcwatch password={SECRET}",
        f"postgresql://rcwatch:{SECRET}@127.0.0.1:1:2/rcwatch",
        f"redis://rcwatch:{SECRET}@127.0.0.1/0",
    ],
)
def test_a_store_that_cannot_be_opened_says_so_in_one_line(target: str) -> None:
    with pytest.raises(StoreError) as raised:
        AlertStore(target)
    assert SECRET not in str(raised.value) and "\n" not in str(raised.value)


def test_a_sqlite_file_that_cannot_be_opened_says_so_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match=r"^cannot open the alert store .*: "):
        AlertStore(tmp_path / "file" / "alerts.db")
