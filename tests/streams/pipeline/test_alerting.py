"""Alerts: deterministic ids, one per rule per change, and no private data in any field."""

from __future__ import annotations

import orjson

from detectors.base import (
    EMPTY_CONTEXT,
    Category,
    DetectionContext,
    Finding,
    Severity,
    Span,
    field_text,
)
from detectors.event import RecentChange, decode_event
from detectors.recognizers.email import find_emails
from sinks.alert import Alert
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


# -- every field of every alert passes the scrub -----------------------------------------------

SECRET = "jane.roe@example.org"


def _shipped_alerts(change: RecentChange, ctx: DetectionContext = EMPTY_CONTEXT) -> list[Alert]:
    from sinks.metrics import Metrics
    from streams.app import build_detection
    from streams.settings import Settings

    detection = build_detection(Settings(), Metrics())
    findings = detection.detect(change, ctx)
    return build_alerts(change, ctx, findings, "2026-05-05T11:17:41Z", HOSTS)


def _leaks(alerts: list[Alert], secret: str) -> list[str]:
    """Every form of ``secret`` found in the serialized alerts (any case, spaces or
    underscores, URL-encoded)."""
    from urllib.parse import quote

    blob = b"\n".join(a.to_json() for a in alerts).decode().casefold()
    forms = {secret, secret.replace(" ", "_"), quote(secret.replace(" ", "_"), safe="")}
    return [f for f in forms if f.casefold() in blob]


def test_the_owner_named_in_a_user_talk_title_is_scrubbed_from_the_target() -> None:
    """Issue 20, item 1: the page owner became the alert's target, built from the raw title
    and canonicalised (first letter upper case), and so reached every sink unscrubbed."""
    change = _change(
        type="edit",
        namespace=3,
        title=f"User talk:Jane Roe {SECRET}",
        user="Someone Else",
        comment="note",
        revision={"old": 1360000001, "new": 1360000002},
    )
    alerts = _shipped_alerts(change)
    assert alerts, "the address in the title is found"
    assert _leaks(alerts, SECRET) == []
    assert {a.target for a in alerts} == {"User:Jane Roe j***@e***.org"}


def test_a_canonicalised_copy_is_scrubbed_too() -> None:
    """The owner's name is canonicalised: a title starting with the address puts it in the
    target with a capital first letter and spaces for underscores."""
    change = _change(type="edit", namespace=3, title=f"User talk:{SECRET}/old_notes")
    alerts = _shipped_alerts(change)
    assert alerts
    assert _leaks(alerts, SECRET) == []
    assert all(a.target and a.target.startswith("User:j***@") for a in alerts)


def test_private_data_in_every_event_field_reaches_no_alert_field() -> None:
    """Every text an event carries holds the address, in a different form each; whatever
    rules fire, nothing an alert serializes holds any form of it."""
    change = _change(
        type="edit",
        namespace=3,
        title=f"User talk:Jane_Roe_{SECRET}/Archive_1",
        user=f"{SECRET.upper()} fan",
        comment=f"contact {SECRET} or [[User:{SECRET}]]",
        parsedcomment=f"contact <a href='mailto:{SECRET}'>{SECRET}</a>",
        log_action_comment=f"moved {SECRET}",
        revision={"old": 1, "new": 2},
    )
    ctx = DetectionContext(added_text=f"you idiot, {SECRET} is where you live, I know")
    alerts = _shipped_alerts(change, ctx)
    assert {a.category for a in alerts} >= {"privacy"}
    assert _leaks(alerts, SECRET) == []
    assert all(SECRET.casefold() not in a.one_line().casefold() for a in alerts)


def test_an_alert_tells_the_language_of_the_text_it_is_about() -> None:
    """Issue 21, item 1: the language is shown in alerts: the evidence's text's language,
    which on dewiki may well be English."""
    from detectors.base import DetectionContext

    change = _change(
        type="edit", namespace=3, title="Benutzer Diskussion:Jemand", wiki="dewiki",
        server_name="de.wikipedia.org", revision={"old": 1, "new": 2},
    )  # fmt: skip
    german = DetectionContext(added_text="Du bist so ein Idiot, verschwinde endlich von hier")
    english = DetectionContext(added_text="you are such an idiot, get lost and never come back")
    for ctx, language in ((german, "de"), (english, "en")):
        findings = [
            Finding(
                "h.x", Category.HARASSMENT, Severity.MEDIUM, "insult",
                (Span("added_text", 0, 5, "term", "x***x", 1.0, False),),
            )
        ]  # fmt: skip
        [alert] = build_alerts(change, ctx, findings, "2026-05-05T11:17:41Z", HOSTS)
        assert alert.language == language
        assert alert.to_dict()["language"] == language
