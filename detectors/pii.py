"""Fingerprints of personal data: the same datum written twice gives the same hash.

Used to notice personal data re-inserted after it was removed, without keeping the data
itself anywhere (the runner's state holds only these hashes).
"""

from __future__ import annotations

import hashlib
import re

from detectors.recognizers import RECOGNIZERS
from detectors.recognizers.base import TextContext

__all__ = ["FINGERPRINT_KINDS", "MAX_FINGERPRINT_CHARS", "pii_fingerprints", "redact_pii"]

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


def redact_pii(text: str, ctx: TextContext | None = None, min_confidence: float = 0.5) -> str:
    """``text`` with every piece of personal data the recognizers find replaced by its
    redacted form (for the few names the runner's state keeps)."""
    if not text:
        return text
    ctx = ctx or TextContext()
    found = [
        m
        for kind in FINGERPRINT_KINDS
        for m in RECOGNIZERS[kind].find(text, ctx)
        if m.confidence >= min_confidence
    ]
    for m in sorted(found, key=lambda m: m.start, reverse=True):
        text = text[: m.start] + m.redacted + text[m.end :]
    return text
