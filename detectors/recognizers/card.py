"""Payment card numbers: 12-19 digits, a known issuer prefix (IIN), a valid Luhn checksum.

Digits may be grouped by single spaces or dashes in the layouts cards are printed with
(4-4-4-4, 4-6-5, 4-6-4, 4-4-4-4-3, ...); other groupings are not card numbers. A card
written in its print layout is very likely a card; a bare digit run less so (it may be an
identifier that happens to pass Luhn, one in ten does), and a 12-digit Maestro number only
counts next to a card word. Numbers right after an identifier keyword (ISBN, DOI, oldid,
...) or inside citation templates are not cards.

The redacted form keeps the last four digits only: ``**** **** **** 1111``.
"""

from __future__ import annotations

import re

from detectors.recognizers._text import (
    digits_of,
    enclosing_template,
    group_from_left,
    has_before,
    luhn_ok,
)
from detectors.recognizers.base import Budget, PiiMatch, TextContext, capped

__all__ = ["CardRecognizer", "card_brand", "find_cards", "redact_card"]

_CANDIDATE = re.compile(
    r"(?<![\w+/=#@%&\-.,])"
    r"[0-9](?:[ \-]?[0-9]){11,40}"
    r"(?![\w]|[.,\-/:][0-9])"
)
_CARD_WORDS = re.compile(
    r"(?i)\b(?:card|cards|credit|debit|cc|visa|mastercard|master card|maestro|amex"
    r"|american express|discover|diners|jcb|unionpay|kreditkarte|karte|kartennummer"
    r"|carte|carte bancaire|cb|tarjeta|carta|cartão|kaart|karta|kort|pan|payment|pay"
    r"|charge|billing|billed)\b[^\n]{0,40}\Z"
)
_NOT_CARD_BEFORE = re.compile(
    r"(?i)\b(?:isbn(?:-?1[03])?|issn|doi|oclc|pmid|lccn|arxiv|bibcode|jstor|s2cid|asin|ean"
    r"|upc|gtin|imei|iccid|revision|rev|oldid|diff|curid|id|tweet|status|order|tracking"
    r"|invoice|serial)\b[^0-9\n]{0,12}\Z"
)
# Lengths printed in groups: 4-4-4-4, 4-4-4-4-3 (19), 4-6-5 (Amex), 4-6-4 (Diners), 4-4-4-1..4
_LAYOUTS = frozenset(
    {(4, 4, 4, 4), (4, 4, 4, 4, 3), (4, 6, 5), (4, 6, 4), (4, 4, 4, 1), (4, 4, 4, 2),
     (4, 4, 4, 3), (4, 4, 4, 4, 1), (4, 4, 4, 4, 2), (4, 4, 5), (4, 4, 4), (6, 13), (4, 4, 4, 7)}
)  # fmt: skip


def card_brand(digits: str) -> str | None:
    """The scheme a card number belongs to by its IIN and length, or None."""
    n = len(digits)
    p2 = int(digits[:2])
    p3 = int(digits[:3])
    p4 = int(digits[:4])
    p6 = int(digits[:6])
    if digits[0] == "4" and n in (13, 16, 19):
        return "visa"
    if (51 <= p2 <= 55 or 2221 <= p4 <= 2720) and n == 16:
        return "mastercard"
    if p2 in (34, 37) and n == 15:
        return "amex"
    if (p4 == 6011 or 644 <= p3 <= 649 or p2 == 65 or 622126 <= p6 <= 622925) and 16 <= n <= 19:
        return "discover"
    if (300 <= p3 <= 305 or p2 == 36 or p4 == 3095) and n == 14:
        return "diners"
    if p2 in (38, 39) and 14 <= n <= 16:
        return "diners"
    if 3528 <= p4 <= 3589 and 16 <= n <= 19:
        return "jcb"
    if p4 in (1800, 2131) and n == 15:
        return "jcb"
    if p2 == 62 and 16 <= n <= 19:
        return "unionpay"
    if 2200 <= p4 <= 2204 and n == 16:
        return "mir"
    if (p2 == 50 or 56 <= p2 <= 58 or p3 == 639 or p2 == 67 or p4 == 6304) and 12 <= n <= 19:
        return "maestro"
    if p4 == 9792 and n == 16:
        return "troy"
    return None


def redact_card(digits: str) -> str:
    """``**** **** **** 1111``: the last four digits, everything else masked."""
    return f"{group_from_left('*' * (len(digits) - 4))} {digits[-4:]}"


def _in_citation(text: str, start: int) -> bool:
    where = enclosing_template(text, start)
    return where is not None and where[0].startswith(("cite", "citation", "cita", "literatur"))


def _card_in(raw: str) -> tuple[int, str] | None:
    """The card number a digit run starts with, as (length in ``raw``, digits), or None.

    A bare run must be the card exactly; a grouped run may carry a short group after the
    card (a CVC, an expiry month): the longest leading groups in a card layout win.
    """
    groups = re.split(r"[ \-]", raw)
    if len(groups) == 1:
        candidates = [raw] if 12 <= len(raw) <= 19 else []
    else:
        candidates = []
        for k in range(len(groups), 1, -1):
            if k < len(groups) and len(groups[k]) >= 4:
                continue  # the grid of digits goes on: a longer number, not a card
            if tuple(len(g) for g in groups[:k]) in _LAYOUTS:
                candidates.append(raw[: sum(len(g) for g in groups[:k]) + k - 1])
    for cand in candidates:
        digits = digits_of(cand)
        if luhn_ok(digits) and card_brand(digits) is not None:
            return len(cand), digits
    return None


def find_cards(text: str, budget: Budget | None = None) -> list[PiiMatch]:
    out: list[PiiMatch] = []
    for m in capped(_CANDIDATE.finditer(text), "credit_card", budget):
        found = _card_in(m.group())
        if found is None:
            continue
        length, digits = found
        start = m.start()
        if has_before(_NOT_CARD_BEFORE, text, start, 40) or _in_citation(text, start):
            continue
        grouped = length != len(digits)
        context = has_before(_CARD_WORDS, text, start, 48)
        if len(digits) == 12:
            confidence = 0.7 if context else 0.2
        elif grouped:
            confidence = 0.95 if context else 0.85
        elif len(digits) in (15, 16):
            confidence = 0.9 if context else 0.6
        else:
            confidence = 0.85 if context else 0.5
        out.append(PiiMatch(start, start + length, "credit_card", confidence, redact_card(digits)))
    return out


class CardRecognizer:
    kind = "credit_card"
    # Twelve digits with at most single spaces or dashes between them.
    prefilter = r"[0-9](?:[ \-]?[0-9]){11}"

    def find(self, text: str, ctx: TextContext) -> list[PiiMatch]:
        return find_cards(text, ctx.budget)
