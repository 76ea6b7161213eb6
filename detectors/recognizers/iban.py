"""IBANs: country code, check digits and BBAN, the country's length, mod-97 == 1.

Written bare (``GB82WEST12345698765432``) or in groups of four (``GB82 WEST 1234 5698 7654
32``), upper case or all lower case. The check digits make a chance hit unlikely (one in 97
of the right length and country), so a valid IBAN is a likely one.

The redacted form keeps the country code and the last four characters:
``GB** **** **** **** **54 32``.
"""

from __future__ import annotations

import re

from detectors.recognizers._text import group_from_left, has_before
from detectors.recognizers.base import Budget, PiiMatch, TextContext, capped

__all__ = ["IBAN_LENGTHS", "IbanRecognizer", "find_ibans", "iban_ok", "redact_iban"]

# SWIFT IBAN registry: country -> total length.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28,
    "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22,
    "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24,
    "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip

_START = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}[0-9]{2}(?=[ ]?[A-Za-z0-9])")
_CONTEXT = re.compile(
    r"(?i)\b(?:iban|bank|account|acct|konto|kontonummer|bankverbindung|compte|rib|cuenta"
    r"|conto|rekening|transfer|wire|überweisung|virement|transferencia|bonifico|bic|swift"
    r"|sepa|payment)\b[^\n]{0,40}\Z"
)


def iban_ok(iban: str) -> bool:
    """Country length and the ISO 7064 mod-97 check of an upper-case IBAN without spaces."""
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban.isalnum() or not iban.isascii():
        return False
    rearranged = iban[4:] + iban[:4]
    value = 0
    for c in rearranged:
        value = (value * (100 if c.isalpha() else 10) + int(c, 36)) % 97
    return value == 1


def redact_iban(iban: str) -> str:
    return group_from_left(iban[:2] + "*" * (len(iban) - 6) + iban[-4:])


def _read(text: str, start: int, length: int) -> tuple[int, str] | None:
    """Read ``length`` alphanumerics from ``start``: bare, or in space-separated fours."""
    chars: list[str] = []
    i = start
    n = len(text)
    spaced: bool | None = None
    while len(chars) < length:
        if i >= n:
            return None
        c = text[i]
        if c == " " and chars and len(chars) % 4 == 0 and spaced is not False:
            spaced = True
            i += 1
            continue
        if not (c.isascii() and c.isalnum()):
            return None
        if chars and len(chars) % 4 == 0 and spaced is None:
            spaced = False
        elif spaced and len(chars) % 4 == 0 and text[i - 1] != " ":
            return None
        chars.append(c)
        i += 1
    if i < n and text[i].isalnum():
        return None  # the value goes on: not this IBAN
    return i, "".join(chars)


def find_ibans(text: str, budget: Budget | None = None) -> list[PiiMatch]:
    out: list[PiiMatch] = []
    for m in capped(_START.finditer(text), "iban", budget):
        country = m.group()[:2]
        length = IBAN_LENGTHS.get(country.upper())
        if length is None:
            continue
        got = _read(text, m.start(), length)
        if got is None:
            continue
        end, raw = got
        if not (raw.isupper() or raw.islower()) and not raw[2:].isdigit():
            continue  # mixed case is a word or a code, not an IBAN
        iban = raw.upper()
        if not iban_ok(iban):
            continue
        confidence = 0.9 if raw[:2].isupper() else 0.75
        if has_before(_CONTEXT, text, m.start(), 48):
            confidence = min(0.95, confidence + 0.15)
        out.append(PiiMatch(m.start(), end, "iban", confidence, redact_iban(iban)))
    return out


class IbanRecognizer:
    kind = "iban"
    prefilter = r"[A-Za-z]{2}[0-9]{2} ?[A-Za-z0-9]{4}"

    def find(self, text: str, ctx: TextContext) -> list[PiiMatch]:
        return find_ibans(text, ctx.budget)
