"""The detector contract: what a detector sees, and what it returns."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from detectors.event import RecentChange

__all__ = [
    "FIELDS",
    "Category",
    "DetectionContext",
    "Detector",
    "Finding",
    "Severity",
    "Span",
    "field_text",
]


class Category(StrEnum):
    PRIVACY = "privacy"
    DOXXING = "doxxing"
    HARASSMENT = "harassment"


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.LOW: 0, Severity.MEDIUM: 1, Severity.HIGH: 2, Severity.CRITICAL: 3}


@dataclass(frozen=True, slots=True)
class Span:
    """Where a detector found something. Offsets index ``field_text(change, ctx, field)``.

    The matched text itself is deliberately not stored: only ``redacted`` may leave the
    process. The alert builder uses the offsets to scrub the raw text from every field.
    """

    field: str
    start: int
    end: int
    kind: str  # "email", "phone", "term", "pattern", ...
    redacted: str
    confidence: float = 1.0
    sensitive: bool = True  # private data: scrubbed from every field of the alert


@dataclass(frozen=True, slots=True)
class Finding:
    rule: str
    category: Category
    severity: Severity
    reason: str  # why, in words that never contain the private data
    spans: tuple[Span, ...] = ()
    target: str | None = None  # who or what it is about, when a pattern rule knows it
    score: float | None = None  # a classifier condition's score, when the rule has one


@dataclass(frozen=True, slots=True)
class DetectionContext:
    """What a detector may need that is not in the event; supplied by the runner.

    ``added_text``/``removed_text`` come from the wiki's API (or an enriched archive).
    The rest is for pattern rules, which run after the others on the same event:
    ``findings`` of the other rules, the page's ``previous_editor`` (the last other user
    who edited it, kept by the runner) and fingerprints of personal data ``removed_pii``
    from the page earlier (hashes, never the data). ``added_pii``, when the runner has
    them, are the fingerprints of ``added_text`` worked out beforehand (off the event loop
    for a long text); None means "compute them when needed".
    """

    added_text: str | None = None
    removed_text: str | None = None
    findings: tuple[Finding, ...] = ()
    previous_editor: str | None = None
    removed_pii: frozenset[str] = frozenset()
    added_pii: frozenset[str] | None = None


EMPTY_CONTEXT = DetectionContext()

# Field names rules and spans use, and where each comes from.
FIELDS = ("title", "summary", "user", "added_text", "removed_text")


def field_text(change: RecentChange, ctx: DetectionContext, field: str) -> str | None:
    if field == "summary":
        return change.comment
    if field == "title":
        return change.title
    if field == "user":
        return change.user
    if field == "added_text":
        return ctx.added_text
    if field == "removed_text":
        return ctx.removed_text
    raise KeyError(field)


class Detector(Protocol):
    """A pure function of the change and its context."""

    @property
    def name(self) -> str: ...

    def detect(self, change: RecentChange, ctx: DetectionContext) -> list[Finding]: ...
