"""Alert builder: findings on one change become alerts that never repeat the private data.

One alert per rule per change (several spans of one rule are one alert's evidence). The id
is deterministic (rule + wiki + revision, log id, rc id or event id), so a reprocessed event
gives the same id and sinks drop it.

Redaction: evidence carries only the redacted forms detectors produced. Every text field
of an alert passes one scrub (``Scrub.apply``) that replaces every copy of the private data
any finding on the change pointed at, in whatever form a field derived it (a page owner's
canonical name, a URL-encoded title); a page URL that held it points at a revision or log
permalink instead.

Links: built from the event's vetted ``server_name`` and fixed paths
(``streams.fetch.wikihosts``), never from ``server_url``, ``server_script_path`` or
``title_url``; an event whose host is not a trusted wiki gets no links.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence
from dataclasses import fields
from typing import Any
from urllib.parse import quote

from detectors.base import DetectionContext, Finding, Severity, Span, field_text
from detectors.event import RecentChange
from detectors.facts import page_owner, same_user
from detectors.language import event_language
from sinks.alert import Alert, Evidence, alert_id
from streams.fetch.wikihosts import WikiHosts

__all__ = ["build_alerts", "change_key"]


def change_key(change: RecentChange) -> str:
    """What makes a change unique for alert ids, most specific first."""
    if change.rev_new:
        return f"rev:{change.rev_new}"
    if change.log_id:
        return f"log:{change.log_id}"
    if change.rc_id:
        return f"rc:{change.rc_id}"
    if change.meta_id:
        return f"evt:{change.meta_id}"
    return f"t:{change.dt}|{change.title}|{change.user}"


class Scrub:
    """Every copy of the private data the findings on one change point at, replaced by its
    redacted form: the one pass every text field of an alert goes through (``apply``).

    A copy is matched in any case, with spaces or underscores, and URL-encoded, because
    the fields an alert shows are derived from the event's in other forms: a page owner's
    name is canonicalised (first letter upper case, underscores as spaces), a URL encodes
    the title."""

    __slots__ = ("_pattern", "_redacted")

    def __init__(
        self, change: RecentChange, ctx: DetectionContext, findings: Iterable[Finding]
    ) -> None:
        found: dict[str, str] = {}
        for f in findings:
            for span in f.spans:
                if not span.sensitive:
                    continue
                text = field_text(change, ctx, span.field)
                if text:
                    secret = text[span.start : span.end]
                    if len(secret.strip()) >= 3:
                        found.setdefault(secret.casefold(), span.redacted)
        self._redacted: dict[str, str] = {}
        alternatives: list[str] = []
        # longest first, so a secret containing another is replaced whole
        for secret, redacted in sorted(found.items(), key=lambda kv: len(kv[0]), reverse=True):
            underscored = secret.replace(" ", "_")
            for variant in (secret, quote(underscored, safe=":/@"), quote(underscored, safe="")):
                key = _key(variant)
                if key not in self._redacted:
                    self._redacted[key] = redacted
                    alternatives.append(
                        r"[ _]".join(re.escape(part) for part in re.split(r"[ _]", variant))
                    )
        self._pattern = re.compile("|".join(alternatives), re.IGNORECASE) if alternatives else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def text(self, value: str | None) -> str | None:
        if value is None or self._pattern is None:
            return value
        return self._pattern.sub(lambda m: self._redacted[_key(m.group())], value)

    def hit(self, value: str | None) -> bool:
        return value is not None and self._pattern is not None and bool(self._pattern.search(value))

    def apply(self, alert: Alert) -> Alert:
        """The alert with every text field scrubbed (``raw_values`` excepted: they are
        never serialized, and exist for private sinks that opted in)."""
        if self._pattern is None:
            return alert
        changes: dict[str, Any] = {}
        for f in fields(alert):
            value = getattr(alert, f.name)
            if isinstance(value, str):
                scrubbed = self.text(value)
                if scrubbed != value:
                    changes[f.name] = scrubbed
        evidence = tuple(
            dataclasses.replace(e, redacted=self.text(e.redacted) or "") for e in alert.evidence
        )
        if evidence != alert.evidence:
            changes["evidence"] = evidence
        return dataclasses.replace(alert, **changes) if changes else alert


_TEXT_FIELDS = ("added_text", "summary", "title")  # what language is told for


def _key(text: str) -> str:
    return text.casefold().replace("_", " ")


def build_alerts(
    change: RecentChange,
    ctx: DetectionContext,
    findings: Sequence[Finding],
    detected_at: str,
    hosts: WikiHosts,
) -> list[Alert]:
    by_rule: dict[str, list[Finding]] = {}
    for f in findings:
        by_rule.setdefault(f.rule, []).append(f)

    scrub = Scrub(change, ctx, findings)
    page_url = hosts.page_url(change.server_name, change.title)
    if scrub.hit(change.title) or scrub.hit(page_url):
        page_url = hosts.permalink(change.server_name, change.rev_new, change.log_id)
    diff_url = hosts.diff_url(change.server_name, change.rev_new, change.rev_old)
    owner = page_owner(change)
    key = change_key(change)

    alerts = []
    for rule, group in by_rule.items():
        top = max(group, key=lambda f: Severity(f.severity).rank)
        pattern_target = next((f.target for f in group if f.target), None)
        target: str | None
        if pattern_target is not None:
            target = pattern_target
        elif owner is not None and not same_user(owner, change.user):
            target = f"User:{owner}"
        else:
            target = change.title
        reasons = list(dict.fromkeys(f.reason for f in group))
        spans = [s for f in group for s in f.spans]
        # the language of the text the evidence is in (of what the event says, without any)
        text_field = next((s.field for s in spans if s.field in _TEXT_FIELDS), None)
        evidence = tuple(Evidence(s.field, s.kind, s.redacted, s.confidence) for s in spans)
        raw_values = tuple(_raw(change, ctx, s) for s in spans)
        alert = Alert(
            id=alert_id(rule, change.wiki, key),
            rule=rule,
            category=str(top.category),
            severity=str(top.severity),
            wiki=change.wiki,
            title=change.title,
            page_url=page_url,
            diff_url=diff_url,
            performer=change.user,
            performer_kind=str(change.performer_kind),
            event_id=change.meta_id,
            event_time=change.dt,
            detected_at=detected_at,
            reason="; ".join(reasons),
            evidence=evidence,
            change_type=change.type,
            namespace=change.namespace,
            rev_id=change.rev_new,
            log_id=change.log_id,
            target=target,
            language=event_language(change, ctx, text_field),
            raw_values=raw_values,
        )
        # every text field, whatever it was built from, passes the one scrub
        alerts.append(scrub.apply(alert))
    return alerts


def _raw(change: RecentChange, ctx: DetectionContext, span: Span) -> str | None:
    """The unredacted text of a sensitive span (for private sinks that opt in)."""
    if not span.sensitive:
        return None
    text = field_text(change, ctx, span.field)
    return text[span.start : span.end] if text else None
