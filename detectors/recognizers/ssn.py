"""US Social Security numbers: AAA-GG-SSSS in the ranges the SSA assigns.

Area 001-899 except 666, group 01-99, serial 0001-9999 (numbers the SSA voided after
they were published, such as 078-05-1120, are still written as SSNs and still count). The
dashed
form is the usual way an SSN is written, so it is likely one on its own; the spaced form
needs less doubt, and a bare nine-digit number counts only next to an SSN word.

The redacted form keeps the last four digits only: ``***-**-6789``.
"""

from __future__ import annotations

import re

from detectors.recognizers._text import has_after, has_before
from detectors.recognizers.base import Budget, PiiMatch, TextContext, capped

__all__ = ["SsnRecognizer", "find_ssns", "redact_ssn", "ssn_ok"]

_CANDIDATE = re.compile(
    r"(?<![\w\-+/=#.,])([0-9]{3})([\- ]?)([0-9]{2})\2([0-9]{4})(?![\w]|[.,\-/:][0-9])"
)
_CONTEXT_BEFORE = re.compile(
    r"(?i)\b(?:ssn|ssns|ss#|ss ?no|ss number|soc\.? ?sec\.?|social security|social-security"
    r"|social sec|sozialversicherungsnummer|taxpayer|tin)\b[^0-9\n]{0,24}\Z"
)
_CONTEXT_AFTER = re.compile(r"(?i)\W{0,3}\b(?:ssn|social security)\b")
_NOT_SSN_BEFORE = re.compile(
    r"(?i)\b(?:isbn(?:-?1[03])?|issn|doi|oclc|pmid|phone|tel|fax|call|mobile|zip|order|id"
    r"|oldid|diff|revision|rev|licen[cs]e|passport)\b[^0-9\n]{0,20}\Z"
)


def ssn_ok(area: str, group: str, serial: str) -> bool:
    return not (area in ("000", "666") or area >= "900" or group == "00" or serial == "0000")


def redact_ssn(serial: str) -> str:
    return f"***-**-{serial}"


def find_ssns(text: str, budget: Budget | None = None) -> list[PiiMatch]:
    out: list[PiiMatch] = []
    for m in capped(_CANDIDATE.finditer(text), "us_ssn", budget):
        area, sep, group, serial = m.groups()
        if not ssn_ok(area, group, serial):
            continue
        start, end = m.start(), m.end()
        if has_before(_NOT_SSN_BEFORE, text, start, 40):
            continue
        context = has_before(_CONTEXT_BEFORE, text, start, 48) or has_after(
            _CONTEXT_AFTER, text, end, 24
        )
        if sep == "-":
            confidence = 0.95 if context else 0.65
        elif sep == " ":
            confidence = 0.85 if context else 0.35
        else:
            confidence = 0.75 if context else 0.0
        if confidence > 0.0:
            out.append(PiiMatch(start, end, "us_ssn", confidence, redact_ssn(serial)))
    return out


class SsnRecognizer:
    kind = "us_ssn"
    prefilter = r"[0-9]{3}[ \-]?[0-9]{2}[ \-]?[0-9]{4}"

    def find(self, text: str, ctx: TextContext) -> list[PiiMatch]:
        return find_ssns(text, ctx.budget)
