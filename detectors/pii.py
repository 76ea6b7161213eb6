"""Fingerprints of personal data, and redaction.

Fingerprints: the same datum written twice gives the same hash. Used to notice personal
data re-inserted after it was removed, without keeping the data itself anywhere (the
runner's state holds only these hashes).

Redaction (``redact``) runs every recognizer, and says which of them ran out of their
candidate budget (``Redaction.cut_short``): past the point where one stopped, the text
was not looked at, so a caller that writes the text out (``alerts export-labels``) must
leave it out. ``redact_pii`` is for short texts kept in state (user names): when a budget
runs out there, the whole text is withheld (a hash stands for it), never half redacted.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from detectors.recognizers import RECOGNIZERS
from detectors.recognizers.base import Budget, TextContext

__all__ = [
    "FINGERPRINT_KINDS",
    "MAX_FINGERPRINT_CHARS",
    "Redaction",
    "pii_fingerprints",
    "redact",
    "redact_pii",
]

FINGERPRINT_KINDS = (
    "email", "phone", "credit_card", "iban", "us_ssn", "uk_nino", "aadhaar", "street_address",
)  # fmt: skip
_NUMERIC = frozenset({"phone", "credit_card", "us_ssn", "aadhaar"})
_NOISE = re.compile(r"[\s.\-/()]+")


def _canonical(kind: str, value: str) -> str:
    if kind in _NUMERIC:
        return "".join(c for c in value if c.isdigit())[-12:]  # ignore country prefixes
    return _NOISE.sub(" ", value.casefold()).strip()


# the most of one text fingerprinted (as much as any rule looks at)
MAX_FINGERPRINT_CHARS = 1 << 20


def pii_fingerprints(
    text: str | None, ctx: TextContext | None = None, min_confidence: float = 0.5
) -> frozenset[str]:
    """Hashes of the personal data in ``text`` (its first ``MAX_FINGERPRINT_CHARS``; each
    recognizer within its candidate budget, recorded in ``ctx.budget`` when it runs out)."""
    if not text:
        return frozenset()
    ctx = ctx or TextContext()
    text = text[:MAX_FINGERPRINT_CHARS]
    out = set()
    for kind in FINGERPRINT_KINDS:
        for m in RECOGNIZERS[kind].find(text, ctx):
            if m.confidence >= min_confidence:
                value = _canonical(kind, text[m.start : m.end])
                digest = hashlib.sha256(f"{kind}\x1f{value}".encode()).hexdigest()[:20]
                out.add(f"{kind}:{digest}")
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class Redaction:
    text: str  # every match of every recognizer replaced by its redacted form
    cut_short: frozenset[str]  # recognizers that ran out of budget: the rest was not read

    @property
    def complete(self) -> bool:
        return not self.cut_short


def redact(text: str, ctx: TextContext | None = None, min_confidence: float = 0.5) -> Redaction:
    """``text`` with every piece of personal data any recognizer finds (at least
    ``min_confidence``) replaced by its redacted form, and the recognizers that stopped
    early. Running out is also recorded in ``ctx.budget`` when there is one."""
    if not text:
        return Redaction(text, frozenset())
    ctx = ctx or TextContext()
    budget = Budget()
    mine = TextContext(ctx.regions, ctx.field, ctx.namespace, ctx.performer, budget)
    found = [
        m
        for recognizer in RECOGNIZERS.values()
        for m in recognizer.find(text, mine)
        if m.confidence >= min_confidence
    ]
    if ctx.budget is not None:
        ctx.budget.exhausted |= budget.exhausted
    # overlapping matches (a date of birth inside an address) are one span: all of it is
    # replaced, by the redacted form of its longest match
    spans: list[tuple[int, int, str, int]] = []  # start, end, redacted, longest match
    for m in sorted(found, key=lambda m: (m.start, -m.end)):
        if spans and m.start < spans[-1][1]:
            start, end, redacted, longest = spans[-1]
            if m.end - m.start > longest:
                redacted, longest = m.redacted, m.end - m.start
            spans[-1] = (start, max(end, m.end), redacted, longest)
        else:
            spans.append((m.start, m.end, m.redacted, m.end - m.start))
    parts, at = [], 0
    for start, end, redacted, _ in spans:
        parts += [text[at:start], redacted]
        at = end
    parts.append(text[at:])
    return Redaction("".join(parts), frozenset(budget.exhausted))


def redact_pii(text: str, ctx: TextContext | None = None, min_confidence: float = 0.5) -> str:
    """``text`` with every piece of personal data the recognizers find replaced by its
    redacted form (for the few names the runner's state keeps). When a recognizer runs
    out of budget, the whole text is withheld: ``[withheld <hash>]``, distinct per text."""
    done = redact(text, ctx, min_confidence)
    if done.complete:
        return done.text
    return f"[withheld {hashlib.sha256(text.encode()).hexdigest()[:16]}]"
