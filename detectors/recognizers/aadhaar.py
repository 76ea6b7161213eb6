"""Aadhaar numbers (India): twelve digits, the first 2-9, a valid Verhoeff check digit.

Usually written ``XXXX XXXX XXXX``. One random twelve-digit number in ten passes the
checksum, so the grouped form is moderately likely on its own, a bare run unlikely, and
either is likely next to an Aadhaar word (Aadhaar, UIDAI, आधार, ...).

The redacted form is UIDAI's own masked Aadhaar: ``**** **** 1234``.
"""

from __future__ import annotations

import re

from detectors.recognizers._text import has_before
from detectors.recognizers.base import Budget, PiiMatch, TextContext, capped

__all__ = ["AadhaarRecognizer", "find_aadhaars", "redact_aadhaar", "verhoeff_ok"]

_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8),
    (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2),
    (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 6, 8, 7, 0),
    (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5),
    (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)

_CANDIDATE = re.compile(
    r"(?<![\w\-+/=#.,])([2-9][0-9]{3})([ \-]?)([0-9]{4})\2([0-9]{4})(?![\w]|[.,\-/: ][0-9])"
)
_CONTEXT = re.compile(
    r"(?i)(?:\b(?:aadhaar|aadhar|adhaar|adhar|uidai|uid|aadhaar card|enrolment|enrollment)\b"
    r"|आधार|ஆதார்|ఆధార్|আধার|ಆಧಾರ್|ആധാർ|આધાર|ਆਧਾਰ)[^\n]{0,32}\Z"
)
_NOT_AADHAAR_BEFORE = re.compile(
    r"(?i)\b(?:isbn(?:-?1[03])?|oclc|pmid|card|credit|visa|phone|tel|mobile|call|order|id"
    r"|oldid|diff|revision|rev|account|iban)\b[^0-9\n]{0,20}\Z"
)


def verhoeff_ok(digits: str) -> bool:
    c = 0
    for i, ch in enumerate(reversed(digits)):
        c = _D[c][_P[i % 8][ord(ch) - 48]]
    return c == 0


def redact_aadhaar(digits: str) -> str:
    return f"**** **** {digits[-4:]}"


def find_aadhaars(text: str, budget: Budget | None = None) -> list[PiiMatch]:
    out: list[PiiMatch] = []
    for m in capped(_CANDIDATE.finditer(text), "aadhaar", budget):
        a, sep, b, c = m.groups()
        digits = a + b + c
        if not verhoeff_ok(digits):
            continue
        start = m.start()
        if has_before(_NOT_AADHAAR_BEFORE, text, start, 40):
            continue
        context = has_before(_CONTEXT, text, start, 48)
        confidence = 0.9 if context else 0.5 if sep else 0.25
        out.append(PiiMatch(start, m.end(), "aadhaar", confidence, redact_aadhaar(digits)))
    return out


class AadhaarRecognizer:
    kind = "aadhaar"
    prefilter = r"[2-9][0-9]{3}[ \-]?[0-9]{4}[ \-]?[0-9]{4}"

    def find(self, text: str, ctx: TextContext) -> list[PiiMatch]:
        return find_aadhaars(text, ctx.budget)
