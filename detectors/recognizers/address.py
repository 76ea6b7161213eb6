"""Street addresses: a house number with a street name and a street type, in the orders
the big European languages write them.

* number first, English: ``221B Baker Street``, ``1600 Pennsylvania Ave NW``, ``12 Main St,
  Apt 4``;
* number first, French: ``12 rue de la Paix``, ``3, avenue Foch``, ``76 Boulevard de
  Normandie``;
* type first, Spanish, Portuguese, Italian, Polish, ...: ``Calle Mayor 5``, ``Avenida de
  América 12``, ``Rua Augusta 100``, ``Via del Corso 12``, ``ul. Długa 5``;
* type as a suffix or after the name, number last: ``Hauptstraße 12``, ``Musterweg 5a``,
  ``Berliner Allee 3``, ``Damstraat 12``, ``Storgatan 4``, ``Kossuth utca 5``,
  ``Karl Johans gate 22``.

Unit suffixes (Apt, Suite, Unit, Flat, #) extend the span. Not addresses: "World War 2
Street fighting" (no street name), "Route 66" (a highway: no house number first), "In 1905
Regent Street was widened" (a year after a preposition), "5 May Street" where the "name"
is a month. The confidence is moderate (0.6); an address word nearby ("lives at",
"address", "wohnt", "Anschrift", ...) raises it to 0.8. In content namespaces (articles,
files, categories) an address without such a word is most likely a building's: 0.4.

The redacted form keeps only the street type: ``*** *** Street``, ``***straße ***``.
"""

from __future__ import annotations

import re

import re2

from detectors.recognizers._text import has_before
from detectors.recognizers.base import Budget, PiiMatch, TextContext, capped

__all__ = ["STREET_TYPES", "AddressRecognizer", "find_addresses"]

_EN_TYPES = (
    "Street|St|Avenue|Ave|Av|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Place|Pl"
    "|Terrace|Way|Circle|Cir|Highway|Hwy|Parkway|Pkwy|Square|Sq|Crescent|Close|Grove"
    "|Gardens|Mews|Alley|Trail|Plaza|Walk"
)
# lower-case English types that are not everyday words on their own
_EN_TYPES_LOWER = "street|avenue|road|boulevard|lane|drive|terrace|highway|parkway|crescent"
_FR_TYPES = (
    "rue|avenue|av\\.|boulevard|bd|bld|place|allée|impasse|chemin|quai|cours|route|square"
    "|passage|villa|cité|rond-point|faubourg|fg"
)
_PREFIX_TYPES = (
    "calle|c/|avenida|avda|avda\\.|plaza|pza\\.|paseo|camino|carretera|ronda|travesía|carrer"
    "|rua|rúa|travessa|largo|praça|via|viale|piazza|piazzale|corso|vicolo|strada|lungomare"
    "|ulica|ul\\.|aleja|al\\.|plac|pl\\.|odos|οδός|trg|ulitsa|ул\\.|улица|проспект|пр\\."
)
_SUFFIX_TYPES = (
    "straße|strasse|str\\.|weg|gasse|allee|platz|damm|ufer|chaussee|steig|pfad|gracht"
    "|straat|laan|plein|kade|singel|dijk|gatan|vägen|väg|gränd|vej|gade|veien|vegen|gata"
    "|katu|kuja|polku|vegur|stræti|braut"
)
_WORD_TYPES = (
    "Straße|Strasse|Str\\.|Weg|Gasse|Allee|Platz|Damm|Ufer|Chaussee|Markt|gate|gata|gatan"
    "|vei|veien|vej|gade|väg|vägen|utca|út|tér|körút|ulice|cesta|sokak|soka\u011f\u0131|caddesi"
)
STREET_TYPES: tuple[str, ...] = tuple(
    t.replace("\\", "")
    for group in (_EN_TYPES, _FR_TYPES, _PREFIX_TYPES, _SUFFIX_TYPES, _WORD_TYPES)
    for t in group.split("|")
)

_UP = "A-ZÀ-ÖØ-ÞĀ-Ž"  # capitals of Latin-script languages (enough for names)
# a name word: capitalised (an abbreviation may end in a dot), or an ordinal (5th, 42nd)
_NAME = rf"(?:[{_UP}][\w'\u2019\-]*\.?|[0-9]{{1,4}}(?:st|nd|rd|th|e|er|ème)\b)"
_UNIT = (
    r"(?:,?[ \u00a0]+(?:Apt|Apartment|Suite|Ste|Unit|Flat|Fl|Floor|Room|Rm|#)\.?"
    r"[ \u00a0]*#?[0-9A-Za-z\-]{1,6}\b)?"
)
_HOUSE = r"[0-9]{1,5}[A-Za-z]?(?:[\-\u2013/][0-9]{1,5}[A-Za-z]?)?"
_NUMBER_LAST = (
    r"[ \u00a0]+(?:n[º°o]\.?[ \u00a0]?|nr\.?[ \u00a0]?)?[0-9]{1,4}[ ]?[a-zA-Z]?\b"
    r"(?:[\-\u2013/][0-9]{1,4}[a-zA-Z]?\b)?"
)

_PATTERNS = (
    # 221B Baker Street, 1600 Pennsylvania Ave NW, Apt 4
    re.compile(
        rf"(?<![\w.,\-])(?P<num>{_HOUSE})[ \u00a0]+"
        rf"(?P<name>(?:{_NAME}[ \u00a0]+){{1,4}}?)"
        rf"(?P<type>{_EN_TYPES}|{_EN_TYPES_LOWER})\b\.?"
        rf"(?:[ \u00a0]+(?:NE|NW|SE|SW|N|S|E|W)\b)?" + _UNIT
    ),
    # 12 rue de la Paix, 3, avenue Foch
    re.compile(
        rf"(?<![\w.,\-])(?P<num>[0-9]{{1,4}}(?:[ ]?(?:bis|ter|[A-Za-z]))?),?[ \u00a0]+"
        rf"(?P<type>(?i:{_FR_TYPES}))[ \u00a0]+"
        r"(?P<name>(?:(?:de la|de l'|de l\u2019|du|des|de|d'|d\u2019|la|le|les)[ ]*)?"
        rf"{_NAME}(?:[ \-]+(?:(?:de|du|des|la|le|les|et|sur)[ ]+)?{_NAME}){{0,3}})"
    ),
    # Calle Mayor 5, Avenida de América 12, Via del Corso 12, ul. Długa 5
    re.compile(
        rf"(?<![\w])(?P<type>(?i:{_PREFIX_TYPES}))[ \u00a0]+"
        r"(?P<name>(?:(?:de|del|de la|de los|de las|della|delle|dei|degli|di|da|do|dos|das)"
        rf"[ ]+)?{_NAME}(?:[ ]+(?:(?:de|del|la|y|e|di|da|do|dos)[ ]+)?{_NAME}){{0,3}}),?"
        + _NUMBER_LAST
        + _UNIT
    ),
    # Hauptstraße 12, Musterweg 5a, Damstraat 12, Storgatan 4, Koskikatu 25
    re.compile(
        rf"(?<![\w])(?P<name>[{_UP}][\w\-]*?)(?P<type>{_SUFFIX_TYPES})" + _NUMBER_LAST + _UNIT
    ),
    # Berliner Allee 3, Kossuth utca 5, Karl Johans gate 22
    re.compile(
        rf"(?<![\w])(?P<name>{_NAME}(?:[ ]{_NAME}){{0,2}})[ \u00a0]+(?P<type>{_WORD_TYPES})"
        + _NUMBER_LAST
        + _UNIT
    ),
)

_MONTHS = frozenset(
    (
        "january", "february", "march", "april", "may", "june", "july", "august",
        "september", "october", "november", "december", "jan", "feb", "mar", "apr", "jun",
        "jul", "aug", "sep", "sept", "oct", "nov", "dec",
    )
)  # fmt: skip
# Words that end like a suffix street type but are not streets.
_NOT_STREETS = frozenset({"brigade", "brigaden", "renegade", "blockade", "braut", "regata"})
# Content namespaces (articles, files, categories) name the addresses of notable buildings.
_CONTENT_NAMESPACES = frozenset({0, 6, 14})
# A year, not a house number: after a preposition or a month ("In 1905", "July 2010").
_YEAR_BEFORE = re.compile(
    r"(?i)\b(?:in|by|since|until|till|from|of|during|after|before|circa|c\.|ca\.|around"
    r"|between|and|to|im|seit|bis|en|depuis|desde|dal|nel"
    r"|january|february|march|april|may|june|july|august|september|october|november"
    r"|december|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec)\.?"
    r"(?:[ \u00a0]+[0-9]{1,2}(?:st|nd|rd|th)?)?,?[ \u00a0]*\Z"
)
_CONTEXT = re.compile(
    r"(?i)\b(?:address|addresses|lives|lived|living|live|resides|resided|home|house|moved to"
    r"|located at|send|mail|post|visit|wohnt|wohnhaft|adresse|anschrift|wohnung|habite"
    r"|domicile|domicilio|dirección|direccion|vive|indirizzo|abita|residenza|woont|adres"
    r"|bor|mieszka)\b[^\n]{0,40}\Z"
)


def _redact(text: str, type_start: int, type_end: int, start: int, end: int) -> str:
    """Every word but the street type becomes ``***``; the type word stays."""
    out: list[str] = []
    for m in re.finditer(r"\S+", text[start:end]):
        a, b = start + m.start(), start + m.end()
        if a <= type_start and type_end <= b:
            before, after = text[a:type_start], text[type_end:b]
            out.append(
                ("***" if any(c.isalnum() for c in before) else before)
                + text[type_start:type_end]
                + ("***" if any(c.isalnum() for c in after) else after)
            )
        else:
            out.append("***")
    return " ".join(out)


def _near_street_words(text: str, budget: Budget | None) -> list[tuple[int, int]]:
    """Where addresses can be: around street type words (a name and a house number come
    at most a few words before or after one). A long text with one "Street" costs one
    short scan per pattern, not a scan of the whole text."""
    spans: list[tuple[int, int]] = []
    for t in capped(_TRIGGER.finditer(text), "street_address", budget):
        lo, hi = max(0, t.start() - 120), min(len(text), t.end() + 48)
        if spans and lo <= spans[-1][1]:
            spans[-1] = (spans[-1][0], hi)
        else:
            spans.append((lo, hi))
    return spans


def find_addresses(
    text: str, namespace: int | None = None, budget: Budget | None = None
) -> list[PiiMatch]:
    if not any("0" <= c <= "9" for c in text):
        return []
    found: list[tuple[int, int, int, int]] = []
    spans = _near_street_words(text, budget)
    for pattern in _PATTERNS:
        matches = (m for lo, hi in spans for m in pattern.finditer(text, lo, hi))
        for m in capped(matches, "street_address", budget):
            name = m.group("name").strip()
            if name.lower().rstrip(".") in _MONTHS:
                continue
            if (name + m.group("type")).lower() in _NOT_STREETS:
                continue
            num = m.groupdict().get("num")
            if (
                num is not None
                and len(num) == 4
                and "1000" <= num <= "2099"
                and has_before(_YEAR_BEFORE, text, m.start(), 24)
            ):
                continue
            found.append((m.start(), m.end(), m.start("type"), m.end("type")))
    found.sort(key=lambda f: (f[0], -(f[1] - f[0])))
    out: list[PiiMatch] = []
    last_end = -1
    for start, end, t0, t1 in found:
        if start < last_end:
            continue  # overlaps a longer or earlier address
        last_end = end
        if has_before(_CONTEXT, text, start, 56):
            confidence = 0.8
        elif namespace in _CONTENT_NAMESPACES:
            confidence = 0.4
        else:
            confidence = 0.6
        out.append(
            PiiMatch(start, end, "street_address", confidence, _redact(text, t0, t1, start, end))
        )
    return out


def _prefilter() -> str:
    """Any street type word, as an RE2 pattern (``\\b`` there is ASCII-only)."""
    suffixes = {t.replace("\\", "") for t in _SUFFIX_TYPES.split("|")}
    parts = []
    for t in sorted({t.lower() for t in STREET_TYPES}, key=len, reverse=True):
        word = re.escape(t)
        if t not in suffixes:
            if "a" <= t[0] <= "z":
                word = r"\b" + word
            if len(t) <= 3 and "a" <= t[-1] <= "z":
                word += r"\b"
        parts.append(word)
    return "(?i)" + "|".join(parts)


_PREFILTER = _prefilter()
_RE2 = re2.Options()
_RE2.log_errors = False
# RE2: a big alternation of words is one linear pass, not one try per word per position
_TRIGGER = re2.compile(_PREFILTER, _RE2)


class AddressRecognizer:
    kind = "street_address"
    # A street type word: every address holds one.
    prefilter = _PREFILTER

    def find(self, text: str, ctx: TextContext) -> list[PiiMatch]:
        return find_addresses(text, ctx.namespace, ctx.budget)
