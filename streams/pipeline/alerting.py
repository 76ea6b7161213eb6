"""Alert builder: findings on one change become alerts that never repeat the private data.

One alert per rule per change (several spans of one rule are one alert's evidence). The id
is deterministic (rule + wiki + revision, log id, rc id or event id), so a reprocessed event
gives the same id and sinks drop it.

Redaction: evidence carries only the redacted forms detectors produced. When the matched
text sits in the page title or the user name, every copy of it is scrubbed from the alert
(title, performer, and URLs, which then point at a revision or log permalink instead).

Links: built from the event's vetted ``server_name`` and fixed paths
(``streams.fetch.wikihosts``), never from ``server_url``, ``server_script_path`` or
``title_url``; an event whose host is not a trusted wiki gets no links.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from urllib.parse import quote

from detectors.base import DetectionContext, Finding, Severity, Span, field_text
from detectors.event import RecentChange
from detectors.facts import page_owner, same_user
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


def _replacements(
    change: RecentChange, ctx: DetectionContext, findings: Iterable[Finding]
) -> list[tuple[str, str]]:
    """(raw text, redacted form) for every span, longest first, plus URL-encoded forms."""
    found: dict[str, str] = {}
    for f in findings:
        for span in f.spans:
            if not span.sensitive:
                continue
            text = field_text(change, ctx, span.field)
            if text:
                secret = text[span.start : span.end]
                if len(secret) >= 3:
                    found.setdefault(secret, span.redacted)
    out: list[tuple[str, str]] = []
    for secret, redacted in sorted(found.items(), key=lambda kv: len(kv[0]), reverse=True):
        underscored = secret.replace(" ", "_")
        variants = dict.fromkeys((secret, underscored, quote(underscored, safe=":/@")))
        variants[quote(underscored, safe="")] = None
        out.extend((v, redacted) for v in variants)
    return out


def _scrub(value: str | None, secrets: Sequence[tuple[str, str]]) -> tuple[str | None, bool]:
    if value is None:
        return None, False
    hit = False
    for secret, replacement in secrets:
        if secret in value:
            value = value.replace(secret, replacement)
            hit = True
    return value, hit


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

    replacements = _replacements(change, ctx, findings)
    title, title_hit = _scrub(change.title, replacements)
    owner = page_owner(change)
    performer, _ = _scrub(change.user, replacements)
    page_url, url_hit = _scrub(hosts.page_url(change.server_name, change.title), replacements)
    if title_hit or url_hit:
        page_url = hosts.permalink(change.server_name, change.rev_new, change.log_id)
    diff_url = hosts.diff_url(change.server_name, change.rev_new, change.rev_old)
    key = change_key(change)

    alerts = []
    for rule, group in by_rule.items():
        top = max(group, key=lambda f: Severity(f.severity).rank)
        pattern_target = next((f.target for f in group if f.target), None)
        if pattern_target is not None:
            target, _ = _scrub(pattern_target, replacements)
        elif owner is not None and not same_user(owner, change.user):
            target = f"User:{owner}"
        else:
            target = title
        reasons = list(dict.fromkeys(f.reason for f in group))
        spans = [s for f in group for s in f.spans]
        evidence = tuple(Evidence(s.field, s.kind, s.redacted, s.confidence) for s in spans)
        raw_values = tuple(_raw(change, ctx, s) for s in spans)
        alerts.append(
            Alert(
                id=alert_id(rule, change.wiki, key),
                rule=rule,
                category=str(top.category),
                severity=str(top.severity),
                wiki=change.wiki,
                title=title,
                page_url=page_url,
                diff_url=diff_url,
                performer=performer,
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
                raw_values=raw_values,
            )
        )
    return alerts


def _raw(change: RecentChange, ctx: DetectionContext, span: Span) -> str | None:
    """The unredacted text of a sensitive span (for private sinks that opt in)."""
    if not span.sensitive:
        return None
    text = field_text(change, ctx, span.field)
    return text[span.start : span.end] if text else None
