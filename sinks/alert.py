"""The alert record on-call staff receive: actionable, deterministic id, redacted evidence."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, fields
from typing import Any

import orjson

__all__ = [
    "Alert",
    "Evidence",
    "alert_id",
    "payload_delivery_id",
    "payload_problem",
    "printable",
]

# What a terminal or a line-oriented log reader would act on instead of showing: C0 and C1
# controls, DEL, the Unicode line and paragraph separators, and the bidirectional controls
# (marks, embeddings, overrides, isolates: an override in a title would reorder the rest
# of the line in a bidi-aware viewer, showing another rule, severity or link). And what
# shows nothing at all, so that "Jane\u200b" would pass for "Jane" (a look-alike name, a
# verdict's judge, a title): the invisible format characters (soft hyphen, zero-width
# space, non-joiner and joiner, word joiner and invisible operators, the deprecated format
# controls, the byte-order mark, interlinear annotation, shorthand and musical format
# controls, tags), the combining grapheme joiner, Hangul and Khmer fillers and the
# Mongolian variation selectors. Visible format signs (Arabic number signs, the end of
# ayah) are shown as they are; so are emoji variation selectors.
_CONTROL = re.compile(
    "[\x00-\x1f\x7f-\x9f\xad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f"
    "\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text: str, limit: int | None = None) -> str:
    """``text`` safe for one line of a terminal or log: control and invisible characters
    escaped (``\\x1b``, ``\\x0a``, bidi controls as ``\\u202e``, a zero-width space as
    ``\\u200b``), cut to ``limit`` characters
    with an ellipsis. Everything in an event is written by someone who may be hostile: a
    title with an escape sequence must not clear a screen, a user name with a newline must
    not forge a line, an override must not reorder it."""
    if limit is not None and len(text) > limit:
        text = text[:limit] + "…"
    return _CONTROL.sub(_escape, text)


@dataclass(frozen=True, slots=True)
class Evidence:
    field: str  # where it was found: "summary", "title", "user", "added_text", ...
    kind: str  # what: "email", "phone", ...
    redacted: str  # the only form of the finding that ever leaves the process
    confidence: float


@dataclass(frozen=True, slots=True)
class Alert:
    id: str
    rule: str
    category: str
    severity: str
    wiki: str | None
    title: str | None
    page_url: str | None
    diff_url: str | None
    performer: str | None
    performer_kind: str
    event_id: str | None
    event_time: str | None
    detected_at: str
    reason: str
    evidence: tuple[Evidence, ...]
    change_type: str | None = None
    namespace: int | None = None
    rev_id: int | None = None
    log_id: int | None = None
    target: str | None = None  # who or what it is about: a user, a page, a group key
    language: str | None = None  # of the text it is about (the wikis' codes); None: unknown
    count: int = 1  # repeats folded into this alert within its cooldown
    first_event_time: str | None = None  # of the first repeat, when count > 1
    # the unredacted text of each evidence item (None where it is not private), kept in
    # memory for sinks a deployment marked private and opted in to full evidence; never
    # serialized otherwise, never in repr
    raw_values: tuple[str | None, ...] = field(default=(), repr=False, compare=False)

    @property
    def delivery_id(self) -> str:
        """What a sink must not deliver twice: the alert, or one update of it."""
        return self.id if self.count == 1 else f"{self.id}~{self.count}"

    def to_dict(self, *, full_evidence: bool = False) -> dict[str, Any]:
        """The alert record. Evidence is redacted; ``full_evidence`` (private sinks only)
        adds each item's unredacted ``value``."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "raw_values":
                continue
            out[f.name] = getattr(self, f.name)
        evidence = []
        for i, e in enumerate(self.evidence):
            item = {
                "field": e.field,
                "kind": e.kind,
                "redacted": e.redacted,
                "confidence": e.confidence,
            }
            if full_evidence:
                item["value"] = self.raw_values[i] if i < len(self.raw_values) else None
            evidence.append(item)
        out["evidence"] = evidence
        return out

    def to_json(self, *, full_evidence: bool = False) -> bytes:
        return orjson.dumps(self.to_dict(full_evidence=full_evidence))

    def one_line(self) -> str:
        """The readable form printed to a terminal: one line, whatever the event held."""
        where = f"{self.wiki or '?'} {self.title or '?'}"
        link = self.diff_url or self.page_url or "-"
        found = ", ".join(f"{e.kind} {e.redacted} in {e.field}" for e in self.evidence)
        who = f"{self.performer or '?'} ({self.performer_kind})"
        repeat = f" (x{self.count} since {self.first_event_time})" if self.count > 1 else ""
        return printable(
            f"[{self.severity.upper()}] {self.rule}{repeat} {where} by {who}: {self.reason}"
            f"{'; ' + found if found else ''} {link}"
        )


def alert_id(rule: str, wiki: str | None, key: str) -> str:
    """Deterministic: the same rule on the same change always gives the same id."""
    raw = f"{rule}\x1f{wiki or ''}\x1f{key}".encode()
    return hashlib.blake2b(raw, digest_size=12).hexdigest()


_SEVERITIES = frozenset({"low", "medium", "high", "critical"})


def payload_delivery_id(p: dict[str, Any]) -> str:
    """``Alert.delivery_id`` of an alert record (``to_dict``): what sinks key repeats by."""
    count = p.get("count", 1)
    return str(p["id"]) if count in (1, None) else f"{p['id']}~{count}"


def payload_problem(p: Any) -> str | None:
    """Why an alert record (from a spool or a dead-letter file) cannot be delivered, or
    None. Transports read these fields; one bad record must be set aside on its own, never
    fail the batch around it."""
    if not isinstance(p, dict):
        return "not an object"
    for key in ("id", "rule", "category", "severity"):
        value = p.get(key)
        if not isinstance(value, str) or not value or len(value) > 256:
            return f"{key} missing or not a string"
    if p["severity"] not in _SEVERITIES:
        return "unknown severity"
    count = p.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        return "count not a positive integer"
    evidence = p.get("evidence", [])
    if not isinstance(evidence, list) or not all(isinstance(e, dict) for e in evidence):
        return "evidence not a list of objects"
    return None
