"""Alerts: deterministic ids, one per rule per change, and no private data in any field."""

from __future__ import annotations

import orjson

from detectors.base import EMPTY_CONTEXT, Category, Finding, Severity, Span, field_text
from detectors.event import decode_event
from detectors.recognizers.email import find_emails
from streams.fetch.content import WIKIMEDIA_HOSTS
from streams.fetch.wikihosts import WikiHosts
from streams.pipeline.alerting import build_alerts, change_key

HOSTS = WikiHosts(WIKIMEDIA_HOSTS)

BASE = {
    "meta": {"id": "e1", "dt": "2026-05-05T11:17:40Z", "domain": "en.wikipedia.org"},
    "wiki": "enwiki",
    "server_url": "https://en.wikipedia.org",
    "server_name": "en.wikipedia.org",
    "server_script_path": "/w",
    "namespace": 2,
    "type": "new",
    "user": "Someone",
    "revision": {"new": 42},
}


def _change(**fields: object):  # type: ignore[no-untyped-def]
    return decode_event(orjson.dumps({**BASE, **fields}))


def _email_findings(change) -> list[Finding]:  # type: ignore[no-untyped-def]
    spans = [
        Span(field, m.start, m.end, "email", m.redacted, m.confidence)
        for field in ("summary", "title")
        for m in find_emails(field_text(change, EMPTY_CONTEXT, field) or "")
    ]
    return [Finding("privacy.email", Category.PRIVACY, Severity.MEDIUM, "email", tuple(spans))]


def test_email_in_title_is_scrubbed_everywhere() -> None:
    title = "User:Someone/mail john.smith@example.net"
    change = _change(
        title=title,
        title_url="https://en.wikipedia.org/wiki/User:Someone/mail_john.smith@example.net",
        comment="mirror of john.smith@example.net",
    )
    findings = _email_findings(change)
    [alert] = build_alerts(change, EMPTY_CONTEXT, findings, "2026-05-05T11:17:41Z", HOSTS)
    blob = alert.to_json().decode()
    assert "john.smith" not in blob and "example.net/" not in blob
    assert alert.title == "User:Someone/mail j***@e***.net"
    assert alert.page_url == "https://en.wikipedia.org/w/index.php?oldid=42"
    assert {e.field for e in alert.evidence} == {"title", "summary"}
    assert alert.reason == "email"


def test_harassment_terms_are_not_scrubbed_from_the_alert() -> None:
    change = _change(title="User talk:Target", user="Attacker")
    finding = Finding(
        "harassment.x",
        Category.HARASSMENT,
        Severity.MEDIUM,
        "insult",
        (Span("title", 10, 16, "term", "T****t", 1.0, sensitive=False),),
    )
    [alert] = build_alerts(change, EMPTY_CONTEXT, [finding], "t", HOSTS)
    assert alert.title == "User talk:Target" and alert.performer == "Attacker"


def test_email_in_user_name_is_scrubbed() -> None:
    change = _change(title="Sandbox", user="mail.me@example.org")
    finding = Finding(
        "r",
        Category.PRIVACY,
        Severity.LOW,
        "email in user name",
        (Span("user", 0, 19, "email", "m***@e***.org"),),
    )
    [alert] = build_alerts(change, EMPTY_CONTEXT, [finding], "t", HOSTS)
    assert alert.performer == "m***@e***.org"
    assert "mail.me" not in alert.to_json().decode()


def test_ids_are_deterministic_and_per_rule() -> None:
    change = _change(title="T", comment="a@example.org b@example.org")
    f1 = Finding("r1", Category.PRIVACY, Severity.LOW, "x", ())
    f2 = Finding("r1", Category.PRIVACY, Severity.HIGH, "y", ())
    f3 = Finding("r2", Category.HARASSMENT, Severity.MEDIUM, "z", ())
    first = build_alerts(change, EMPTY_CONTEXT, [f1, f2, f3], "t1", HOSTS)
    again = build_alerts(change, EMPTY_CONTEXT, [f1, f2, f3], "t2", HOSTS)
    assert [a.id for a in first] == [a.id for a in again]
    assert len(first) == 2 and first[0].id != first[1].id
    assert first[0].severity == "high" and first[0].reason == "x; y"


def test_change_key_prefers_the_most_specific_id() -> None:
    assert change_key(_change()) == "rev:42"
    assert change_key(_change(revision=None, log_id=7, id=9)) == "log:7"
    assert change_key(_change(revision=None, id=9)) == "rc:9"
    assert change_key(_change(revision=None)) == "evt:e1"
