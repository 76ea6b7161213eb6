"""Dates of birth: a date, only where a birth word stands right before it.

Dates are everywhere in wiki text; a date is a date of birth only after "born", "b.",
"DOB", "date of birth", "birthday", "geboren (am)", "geb.", "Geburtsdatum", "né(e) le",
"nacido/a el", "nato/a il", "fecha de nacimiento", "родился", "生年月日", ... (at most 36
characters before it, no digits in between). Date forms: ``1990-05-12``, ``12.05.1990``,
``5/12/90``, ``12 May 1990``, ``May 12, 1990``, ``12. Mai 1990``, ``12 de mayo de 1990``,
``1990年5月12日``, ``{{birth date|1990|5|12}}``; a month and year or a birthday without a
year count for less.

In articles (namespace 0) a date of birth is part of a biography, so the confidence is
halved there.

The redacted form keeps the decade at most: ``**/**/199*``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import re2

from detectors.recognizers._text import has_before
from detectors.recognizers.base import Budget, PiiMatch, TextContext, capped

__all__ = ["DobRecognizer", "find_dobs"]

_MONTH_NAMES = (
    "january|february|march|april|may|june|july|august|september|october|november|december"
    "|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec"
    "|januar|jänner|februar|märz|mai|juni|juli|oktober|dezember|okt|dez"
    "|janvier|février|mars|avril|juin|juillet|août|septembre|octobre|novembre|décembre"
    "|enero|febrero|marzo|abril|mayo|junio|julio|agosto|septiembre|setiembre|octubre"
    "|noviembre|diciembre|gennaio|febbraio|aprile|maggio|giugno|luglio|settembre|ottobre"
    "|dicembre|januari|februari|maart|mei|augustus|janeiro|fevereiro|março|maio|junho"
    "|julho|setembro|outubro|novembro|dezembro"
)
_YEAR = r"(?:1[89][0-9]{2}|20[0-9]{2})"
_DAY = r"(?:0?[1-9]|[12][0-9]|3[01])"
_DATE = re.compile(
    r"(?i)(?<![\w])(?:"
    rf"(?P<iso>{_YEAR})-(?:0?[1-9]|1[0-2])-{_DAY}(?![0-9])"
    rf"|(?P<num>[0-9]{{1,2}})[./\-](?P<num2>[0-9]{{1,2}})[./\-](?P<numy>{_YEAR}|[0-9]{{2}})(?![0-9])"
    rf"|{_DAY}(?:st|nd|rd|th|er|\.|º)?[ \u00a0](?:of[ ]|de[ ])?(?:{_MONTH_NAMES})\.?"
    rf"(?:[ ]de)?,?[ \u00a0](?P<dmy>{_YEAR})(?![0-9])"
    rf"|(?:{_MONTH_NAMES})\.?[ \u00a0]{_DAY}(?:st|nd|rd|th)?,?[ \u00a0](?P<mdy>{_YEAR})(?![0-9])"
    rf"|(?P<cjk>{_YEAR})年[0-9]{{1,2}}月[0-9]{{1,2}}日"
    rf"|(?P<my_month>{_MONTH_NAMES})\.?[ \u00a0](?:de[ ])?(?P<my>{_YEAR})(?![0-9])"
    rf"|{_DAY}(?:st|nd|rd|th|er|\.)?[ \u00a0](?:of[ ])?(?P<dm>{_MONTH_NAMES})\b"
    r"|\{\{[ ]*(?:birth date|birth date and age|bda|dob|geburtsdatum)[ ]*\|"
    r"(?:[^|{}]*=[^|{}]*\|)?"
    rf"[ ]*(?P<tpl>{_YEAR})[ ]*\|[^{{}}\n]{{0,40}}\}}\}}"
    r")"
)
_BIRTH = re.compile(
    r"(?i)(?:(?:\b(?:born|dob|d\.o\.b\.?|date of birth|birth ?date|birthday|bday|b-day"
    r"|geboren|geburtsdatum|geburtstag|née?|date de naissance|nacid[oa]|fecha de nacimiento"
    r"|cumpleaños|nat[oa](?= (?:il|a|ad|nel)\b)|data di nascita|compleanno|nascid[oa]"
    r"|data de nascimento"
    r"|geboortedatum|jarig|urodzon[ya]|data urodzenia|född|født|syntynyt|doğum tarihi"
    r"|doğum)\b"
    r"|родил(?:ся|ась)|дата рождения|生年月日|出生日期|出生|生まれ|생년월일|출생)"
    # no sentence end in between, but "St. Louis" and "J. Doe" are fine
    r"(?:[^\n0-9.!?]|(?<=\b[A-Z][a-z])\.|(?<=\b[A-Z])\.|[.!?](?!\s)){0,36}\Z"
    # "b." and "geb." only right before the date: "(b. 5/12/90)"
    r"|(?:^|(?<=[\s(\[;,]))(?:b|geb)\.[ \u00a0]?\Z)"
)
_STRONG_LABEL = re.compile(
    r"(?i)\b(?:dob|d\.o\.b|date of birth|birth ?date|geburtsdatum|date de naissance"
    r"|fecha de nacimiento|data di nascita|data de nascimento|geboortedatum|data urodzenia"
    r"|doğum tarihi)\b\.?[^\n0-9]{0,12}\Z"
)
_BIRTHDAY = re.compile(
    r"(?i)\b(?:birthday|bday|b-day|geburtstag|cumpleaños|compleanno|jarig)\b"
    r"[^\n0-9]{0,36}\Z"
)


# every date of birth has one of these words right before it (RE2 and Python syntax alike)
_PREFILTER = (
    r"(?i)born|dob|d\.o\.b|birth|bda|bday|b-day|b\.|geb|geburt|née?|naissance|nacid|nacimiento"
    r"|cumplea|nat[oa]|nascita|compleanno|nascid|nascimento|geboorte|jarig|urodzon"
    r"|urodzenia|född|født|syntynyt|doğum|родил|рождения|生年月日|出生|生まれ|생년월일|출생"
)
_RE2 = re2.Options()
_RE2.log_errors = False
# RE2: a big alternation of words is one linear pass, not one try per word per position
_TRIGGER = re2.compile(_PREFILTER, _RE2)


def _plausible_numeric(a: str, b: str) -> bool:
    x, y = int(a), int(b)
    day_month = 1 <= x <= 31 and 1 <= y <= 12
    month_day = 1 <= x <= 12 and 1 <= y <= 31
    return day_month or month_day


def _redact(year: str | None) -> str:
    if year is None:
        return "**/**"
    if len(year) == 2:
        return "**/**/**"
    return f"**/**/{year[:3]}*"


def _windows(text: str, budget: Budget | None) -> Iterator[re.Match[str]]:
    """Date candidates, looked for only near a birth word (the prefilter's words): a date of
    birth follows one within 36 characters, a template opens a few before it. A long text
    with one "born" costs one short scan, not a scan of the whole text."""
    spans: list[tuple[int, int]] = []
    for t in capped(_TRIGGER.finditer(text), "date_of_birth", budget):
        lo, hi = max(0, t.start() - 8), t.end() + 112
        if spans and lo <= spans[-1][1]:
            spans[-1] = (spans[-1][0], hi)
        else:
            spans.append((lo, hi))
    for lo, hi in spans:
        yield from _DATE.finditer(text, lo, min(hi, len(text)))


def find_dobs(
    text: str, namespace: int | None = None, budget: Budget | None = None
) -> list[PiiMatch]:
    if not any("0" <= c <= "9" for c in text):
        return []
    out: list[PiiMatch] = []
    for m in capped(_windows(text, budget), "date_of_birth", budget):
        start = m.start()
        groups = m.groupdict()
        if groups["tpl"] is not None:
            year: str | None = groups["tpl"]
            confidence = 0.5
        else:
            if not has_before(_BIRTH, text, start, 56):
                continue
            if groups["num"] is not None and not _plausible_numeric(groups["num"], groups["num2"]):
                continue
            year = next(
                (groups[k] for k in ("iso", "numy", "dmy", "mdy", "cjk", "my") if groups[k]),
                None,
            )
            if groups["my"] is not None:
                confidence = 0.4  # month and year only
            elif groups["dm"] is not None:
                if not has_before(_BIRTHDAY, text, start, 56):
                    continue
                confidence = 0.5  # a birthday without a year
            elif has_before(_STRONG_LABEL, text, start, 32):
                confidence = 0.9
            else:
                confidence = 0.8
        if namespace == 0:
            confidence /= 2
        out.append(PiiMatch(start, m.end(), "date_of_birth", confidence, _redact(year)))
    return out


class DobRecognizer:
    kind = "date_of_birth"
    prefilter = _PREFILTER

    def find(self, text: str, ctx: TextContext) -> list[PiiMatch]:
        return find_dobs(text, ctx.namespace, ctx.budget)
