"""UK National Insurance numbers: two prefix letters, six digits, a suffix A-D.

HMRC rules: the first letter is not D, F, I, Q, U or V; the second is not D, F, I, O, Q,
U or V; the prefixes BG, GB, KN, NK, NT, TN and ZZ are never issued. Written bare
(``QQ123456C``) or in pairs (``QQ 12 34 56 C``). Next to an NI word it is very likely one.

The redacted form keeps the last two digits only: ``** ** ** *6 *``.
"""

from __future__ import annotations

import re

from detectors.recognizers._text import has_before
from detectors.recognizers.base import Budget, PiiMatch, TextContext, capped

__all__ = ["NinoRecognizer", "find_ninos", "redact_nino"]

_CANDIDATE = re.compile(
    r"(?<![A-Za-z0-9])"
    r"([A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z])( ?)([0-9]{2})\2([0-9]{2})\2([0-9]{2})\2([A-D])"
    r"(?![A-Za-z0-9])"
)
_EXCLUDED_PREFIXES = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})
_CONTEXT = re.compile(
    r"(?i)\b(?:national insurance|ni|nino|nin|ni number|ni no|insurance number|hmrc|nic)\b"
    r"[^\n]{0,32}\Z"
)


def redact_nino(digits: str) -> str:
    return f"** ** ** *{digits[-1]} *"


def find_ninos(text: str, budget: Budget | None = None) -> list[PiiMatch]:
    out: list[PiiMatch] = []
    for m in capped(_CANDIDATE.finditer(text), "uk_nino", budget):
        prefix, sep, d1, d2, d3, _suffix = m.groups()
        if prefix in _EXCLUDED_PREFIXES:
            continue
        start = m.start()
        context = has_before(_CONTEXT, text, start, 48)
        confidence = 0.95 if context else 0.7 if sep else 0.6
        out.append(PiiMatch(start, m.end(), "uk_nino", confidence, redact_nino(d1 + d2 + d3)))
    return out


class NinoRecognizer:
    kind = "uk_nino"
    prefilter = r"[A-Z]{2} ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D]"

    def find(self, text: str, ctx: TextContext) -> list[PiiMatch]:
        return find_ninos(text, ctx.budget)
