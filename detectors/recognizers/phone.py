"""Phone numbers in wiki text: libphonenumber validation, with wikitext context on top.

A linear-time regular expression finds phone-shaped candidates (7-15 digits in groups, an
optional ``+`` country code, ``(0)`` and ``(area)`` parts, an extension). Each candidate is
then judged:

* dropped when the context says it is something else: an ISBN, ISSN, DOI or other
  identifier (by keyword, by ``|isbn=``-style template parameter or by checksum and shape),
  a date, a year range, a decimal or thousands-separated number, an IPv4 address, a version,
  a revision or page id (``oldid=``, ``diff/``, "revision 123..."), a US SSN-shaped value,
  or any number inside a citation or ``{{coord}}`` template;
* validated with libphonenumber: international numbers (``+``/``00``) on their own, national
  ones in the regions of the text's context (``TextContext.regions``, else
  ``DEFAULT_REGIONS``), with the verdict of ``PhoneNumberMatcher`` at leniency VALID (valid
  number, national prefix present where the region requires it), run on the candidate only
  and after cheap checks, not over the whole text once per region;
* scored: a valid number written with phone formatting is a likely phone number; a valid
  bare digit run is not (revision ids and other identifiers are bare digit runs); a phone
  word next to the number ("Tel.", "call me on", "Handy", "電話", "... fax") raises the
  score, and makes a phone-shaped but unvalidated number likely too. Fictional
  555-01xx numbers are capped low.

Numbers written partly or wholly in English words, the way people slip them past filters
(``+44 seven seven zero zero 900123``, ``oh two oh, 7946 0147``), are read as digits (at
least three digit words close together) and judged the same way.

The redacted form keeps the layout and only the last two digits: ``+** ** **** **58``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import phonenumbers
from phonenumbers import Leniency, NumberParseException, PhoneMetadata, PhoneNumberMatcher

from detectors.recognizers._text import (
    digits_of,
    enclosing_template,
    has_after,
    has_before,
    mask_keep_last,
)
from detectors.recognizers.base import Budget, PiiMatch, TextContext, capped

__all__ = [
    "DEFAULT_REGIONS",
    "MAX_VALIDATIONS",
    "PhoneRecognizer",
    "find_phones",
    "find_spelled_phones",
    "redact_phone",
]

# libphonenumber checks per text (about 0.5 ms each over several regions)
MAX_VALIDATIONS = 100

# Used when the context names no region (unknown or multilingual wikis).
DEFAULT_REGIONS: tuple[str, ...] = ("US", "GB", "IN", "DE", "FR", "AU")

_SP = "[ \u00a0]"  # a space or a no-break space
_SEPARATOR = (
    rf"(?:{_SP}?[\-.]{_SP}?"  # 030-123, 03.93, 555 - 1234
    rf"|{_SP}"  # 0490 75 40
    rf"|/{_SP}?"  # 030/1234567
    rf"|{_SP}?\([0-9]{{1,4}}\){_SP}?)"  # +46 (0)8
)
_CANDIDATE = re.compile(
    r"(?<![\w+/=#@%&\-.$€£¥~])"  # not glued to a word, URL, parameter, amount, ~2026-... name
    r"(?P<num>"
    rf"(?:\+{_SP}?)?"
    rf"(?:\([0-9]{{1,5}}\){_SP}?(?:[\-.]{_SP}?)?)?"  # (579)888-3058, (08) 8747 6301
    r"[0-9]{1,15}"
    rf"(?:{_SEPARATOR}[0-9]{{1,15}}){{0,7}}"
    r")"
    rf"(?:{_SP}?(?:x|ext\.?|extn\.?|ext\.?{_SP}?no\.?|extension|Durchwahl|poste|#){_SP}?"
    r"(?P<ext>[0-9]{1,6}))?"
    r"(?![\w]|[.,\-/:][0-9]|[\- ][Xx]\b)"  # nor an ISBN-10 ending in X
)

# Identifiers and structures whose numbers are not phone numbers, right before a candidate.
_NUMBER_WORD = r"(?:\s*(?:number|numbers|no\.?|nr\.?|num\.?|#|nummer|numéro|número|numero))?"
_LETTER_AHEAD = r"(?=[^\W\d_])"  # lets the search skip spaces, digits and punctuation fast
_NOT_PHONE_BEFORE = re.compile(
    r"(?i)(?=[^\W\d_]|[°\u2032\u2033])(?:\b(?:isbn(?:-?1[03])?|issn|eissn|doi|oclc|pmid|pmc|lccn|arxiv|bibcode|jstor"
    r"|zbl|ssrn|s2cid|asin|sbn|ean|upc|gtin|naid|hdl|osti|rfc"
    r"|revision|revisions|rev|revid|oldid|diff|curid|permalink|page ?id|pageid|id"
    r"|version|ver|v|build|release|firmware|kernel|serial|model|part|item|sku"
    r"|ssn|social security|nino|national insurance|aadhaar|passport|licen[cs]e|permit"
    r"|iban|bic|swift|account|routing|konto|kontonummer|card|credit card|kreditkarte|carte"
    r"|tarjeta|policy|invoice|order|tracking|reference|ref|ticket|case|membership|member"
    r"|customer|employee|student|zip|zip code|postal code|postcode|plz)\b"
    + _NUMBER_WORD
    + r"(?:\s*(?:is|was|:|=))?[^0-9\n]{0,4}"
    r"|[°\u2032\u2033]\s*"
    r")\Z"
)
_CITATION_TEMPLATES = (
    "cite",
    "citation",
    "cita ",
    "literatur",
    "internetquelle",
    "lien web",
    "ouvrage",
    "article",
    "harvnb",
    "harv",
    "sfn",
    "coord",
    "isbn",
    "issn",
    "doi",
    "oclc",
    "google books",
    "webarchive",
    "bibcode",
)
_NOT_PHONE_PARAMS = frozenset(
    {
        "isbn", "issn", "eissn", "id", "pages", "page", "pp", "p", "at", "year", "date",
        "orig-date", "access-date", "accessdate", "archive-date", "archivedate", "oclc",
        "doi", "pmid", "pmc", "volume", "issue", "number", "bibcode", "jstor", "lccn",
        "s2cid", "zbl", "mr", "ssrn", "osti", "rfc", "asin", "hdl", "arxiv", "coordinates",
        "coord", "lat", "long", "lon", "population", "area", "elevation", "postal_code",
        "postcode", "zip", "zipcode", "plz", "revid", "oldid", "diff",
    }
)  # fmt: skip

_PHONE_WORDS = (
    r"phone|phones|ph|tel|tele|telephone|telephones|telefon|telefono|teléfono|téléphone|tél"
    r"|telefone|telefoon|telefonnummer|telefoonnummer|rufnummer|festnetz|tlf|tfn|puhelin"
    r"|mobile|mobil|mob|handy|handynummer|mobilnummer|cell|cellphone|cel|celular|móvil|movil"
    r"|portable|cellulare|gsm|whatsapp|viber|telegram|signal|sms|text|texts|call|ring"
    r"|fax|telefax|hotline|landline|dial|phone number|contact number|tel no|telephone number"
    r"|appelle|appelez|appeler|anrufen|ruf|ruft|rufen|llama|llámame|llamame|llamar|chiama"
    r"|chiamami|chiamare|bel|bellen|zadzwoń|ligue|ligar"
    r"|телефон|тел|моб|телефона|τηλ|τηλέφωνο|telefonu|numer telefonu|číslo|telefonszám"
)
_PHONE_BEFORE = re.compile(
    rf"(?i){_LETTER_AHEAD}(?:(?:\b(?:{_PHONE_WORDS})\b|電話|电话|手机|手機|携帯|휴대폰|전화)"
    r"(?:\s?(?:me|us|him|her)?\s?(?:on|at|via|under|unter|au|al)?)?"
    + _NUMBER_WORD
    + r"(?:\s*(?:is|was|:))?"
    # "Office:", "Desk:": a label word only counts with its colon
    r"|\b(?:desk|office|work|home|direct|main|switchboard|private|business|daytime|evening"
    r"|privat|dienstlich|büro|bureau|domicile|oficina|casa|trabajo)\s?:)"
    r"[^0-9\n]{0,6}\n?[^0-9\n]{0,6}\Z"
)
_PHONE_AFTER = re.compile(
    r"(?i)[ \u00a0]?[\-\u2013(,:/]?[ \u00a0]?"
    r"(?:fax|office|mobile|mob|cell|home|work|desk|tel|phone|landline|whatsapp|handy|privat"
    r"|büro|dienstlich|bureau|domicile|oficina|móvil)\b"
)

# The candidate is part of a file name: a media extension follows in the same name.
_FILE_NAME_AFTER = re.compile(
    r"[^|\[\]{}<>\n]{0,120}?\.(?i:jpe?g|png|gif|svg|tiff?|pdf|djvu|webp|webm|ogg|ogv|oga"
    r"|mp3|mp4|wav|flac|mid|stl|xcf)\b"
)
# Links to special pages (diffs, permanent links, contributions) hold ids, not numbers.
_SPECIAL_LINK = re.compile(
    r"(?i)\[\[:?\s*(?:special|spezial|spécial|especial|speciale|speciaal|specjalna|služebná"
    r"|служебная|特別|特殊)\s*:[^\]\n]*\Z"
)
# A house number: the candidate is followed by a street name and a street type.
_ADDRESS_AFTER = re.compile(
    r"[ \u00a0]+(?:[A-Z][\w'.\-]*[ \u00a0]+){0,3}"
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl"
    r"|Terrace|Crescent|Close|Square|Highway|Hwy|Parkway|Pkwy)\b"
)
_DS = r"(?:[\-/ ]|\.[ ]?)"  # a date separator: 2024-05-05, 05.05.2024, 22. 1. 2026
_DATE = re.compile(
    rf"(?:1[0-9]|20)[0-9]{{2}}{_DS}(?:0?[1-9]|1[0-2]){_DS}(?:0?[1-9]|[12][0-9]|3[01])(?![0-9])"
    rf"|(?<![0-9])(?:0?[1-9]|[12][0-9]|3[01]){_DS}(?:0?[1-9]|1[0-2]){_DS}(?:1[0-9]|20)[0-9]{{2}}"
    r"|(?<![0-9])(?:0?[1-9]|1[0-2])[\-./](?:0?[1-9]|[12][0-9]|3[01])[\-./](?:1[0-9]|20)[0-9]{2}"
)
_GROUPS = re.compile(r"[0-9]+")
_THOUSANDS_STRICT = re.compile(r"[0-9]{1,3}(?:[.,][0-9]{3})+")
_THOUSANDS_SPACED = re.compile(r"[0-9]{1,3}(?:[ \u00a0][0-9]{3})+")
_SSN_SHAPE = re.compile(r"[0-9]{3}-[0-9]{2}-[0-9]{4}")
_IPV4_SHAPE = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")
_ISBN_SHAPE = re.compile(r"[0-9]{1,5}[\- ][0-9]{1,7}[\- ][0-9]{1,7}[\- ][0-9]")
_FICTIONAL_555 = re.compile(r"(?:\+?1[ \-.]?)?\(?[2-9][0-9]{2}\)?[ \-.]?555[ \-.]?01[0-9]{2}")


def redact_phone(number: str, extension: str = "") -> str:
    """Every digit of the number masked but the last two; an extension's digits all masked.

    ``extension`` is the text after the number ("ext. 12"); its words stay.
    """
    return mask_keep_last(number, 2) + "".join("*" if "0" <= c <= "9" else c for c in extension)


def _isbn10_ok(digits: str) -> bool:
    if len(digits) != 10:
        return False
    total = sum((10 - i) * int(c) for i, c in enumerate(digits))
    return total % 11 == 0


def _isbn13_ok(digits: str) -> bool:
    if len(digits) != 13 or not digits.startswith(("978", "979")):
        return False
    total = sum(int(c) * (1 if i % 2 == 0 else 3) for i, c in enumerate(digits))
    return total % 10 == 0


def _shape_says_not_phone(num: str, digits: str) -> bool:
    if _DATE.search(num):
        return True
    groups = _GROUPS.findall(num)
    if len(groups) >= 2 and all(len(g) == 4 and "1000" <= g <= "2099" for g in groups):
        return True  # 1999-2004, 1939 1945
    if _IPV4_SHAPE.fullmatch(num):
        return True
    if _THOUSANDS_STRICT.fullmatch(num):
        return True  # 1.234.567 or 1,234,567
    if "." in num and len(groups) == 2 and "-" not in num and " " not in num:
        return True  # a decimal: 40.712776
    if "." in num and any(len(g) > 4 for g in groups[1:]):
        return True  # dotted parts of phone numbers are short; 10.0.19041.1234 is a version
    if _isbn13_ok(digits):
        return True
    return _ISBN_SHAPE.fullmatch(num) is not None and _isbn10_ok(digits)  # 0-306-40615-2


def _in_citation(text: str, start: int) -> bool:
    where = enclosing_template(text, start)
    if where is None:
        return False
    name, param = where
    if param in _NOT_PHONE_PARAMS:
        return True
    return name.startswith(_CITATION_TEMPLATES)


def _unique_country_regions(regions: Sequence[str]) -> list[str]:
    """One region per country calling code (US and CA parse alike), in the given order."""
    seen: set[int] = set()
    out: list[str] = []
    for region in regions:
        code = phonenumbers.country_code_for_region(region)
        if code and code not in seen:
            seen.add(code)
            out.append(region)
    return out


def _valid_international(num: str) -> bool:
    try:
        parsed = phonenumbers.parse(num, None)
    except NumberParseException:
        return False
    return phonenumbers.is_valid_number(parsed)


def _national_prefixes(metadata: PhoneMetadata) -> list[str] | None:
    """The region's national prefixes ("0", "0|180020" -> ["0", "180020"]), or None when
    the region gives them as a pattern."""
    parsing = metadata.national_prefix_for_parsing
    if parsing is None:
        return [metadata.national_prefix] if metadata.national_prefix else []
    if all("0" <= c <= "9" or c == "|" for c in parsing):
        return [p for p in parsing.split("|") if p]
    return None


def _could_be_national(digits: str, metadata: PhoneMetadata) -> bool:
    """A cheap necessary condition for parse() to give a valid number in the region.

    The digits, less a national prefix or the country code, must fit the region's general
    number pattern (every valid number there does). Regions whose national prefix is itself
    a pattern are left to parse().
    """
    prefixes = _national_prefixes(metadata)
    desc = metadata.general_desc
    if prefixes is None or desc is None or desc.national_number_pattern is None:
        return True
    nsns = [digits]
    nsns.extend(digits[len(p) :] for p in prefixes if digits.startswith(p))
    code = str(metadata.country_code)
    if digits.startswith(code):
        nsns.append(digits[len(code) :])
    return any(re.fullmatch(desc.national_number_pattern, nsn) for nsn in nsns)


def _valid_national(num: str, digits: str, regions: Sequence[str]) -> bool:
    for region in regions:
        metadata = PhoneMetadata.metadata_for_region(region)
        if metadata is not None and not _could_be_national(digits, metadata):
            continue
        try:
            parsed = phonenumbers.parse(num, region)
        except NumberParseException:
            continue
        if not phonenumbers.is_valid_number(parsed):
            continue
        # Leniency VALID also wants the national prefix where the region requires one.
        # Written with it, the number passes; otherwise PhoneNumberMatcher decides, on the
        # candidate alone.
        prefixes = _national_prefixes(metadata) if metadata is not None else None
        if prefixes and any(digits.startswith(p) for p in prefixes):
            return True
        for m in PhoneNumberMatcher(num, region, leniency=Leniency.VALID):
            if m.start == 0 and m.end == len(num):
                return True
    return False


def find_phones(
    text: str, regions: Sequence[str] = (), budget: Budget | None = None
) -> list[PiiMatch]:
    if not any("0" <= c <= "9" for c in text):
        return []
    regs: list[str] | None = None
    out: list[PiiMatch] = []
    validations = 0
    for m in capped(_CANDIDATE.finditer(text), "phone", budget):
        num = m.group("num")
        digits = digits_of(num)
        if not 7 <= len(digits) <= 15:
            continue
        start, end = m.start(), m.end()
        if (
            _shape_says_not_phone(num, digits)
            or has_before(_NOT_PHONE_BEFORE, text, start, 40)
            or _in_citation(text, start)
            or has_before(_SPECIAL_LINK, text, start, 120)
            or has_after(_FILE_NAME_AFTER, text, end, 130)
        ):
            continue
        context = has_before(_PHONE_BEFORE, text, start, 48) or has_after(
            _PHONE_AFTER, text, end, 16
        )
        if not context and _SSN_SHAPE.fullmatch(num):
            continue  # 536-22-1476 is how SSNs are written, not phone numbers
        if has_after(_ADDRESS_AFTER, text, end, 64):
            continue  # a house number
        international = num.startswith("+") or (num.startswith("00") and len(digits) >= 10)
        formatted = international or len(_GROUPS.findall(num)) > 1 or "(" in num
        validations += 1
        if validations > MAX_VALIDATIONS:  # libphonenumber is the costly part: stop here
            if budget is not None:
                budget.exhausted.add("phone")
            break
        if international:
            intl = num if num.startswith("+") else "+" + num[2:].lstrip(" \u00a0.-")
            valid = _valid_international(intl)
        else:
            if regs is None:
                regs = _unique_country_regions(regions or DEFAULT_REGIONS)
            valid = _valid_national(num, digits, regs)
        if valid and international:
            confidence = 0.95 if context else 0.8
        elif valid and formatted:
            confidence = 0.9 if context else 0.6
        elif valid:
            confidence = 0.75 if context else 0.3
        elif formatted:
            confidence = 0.6 if context else 0.2
        else:
            confidence = 0.55 if context else 0.0
        if not context and _THOUSANDS_SPACED.fullmatch(num):
            confidence = min(confidence, 0.3)  # 1 234 567: a count as often as a phone
        if _FICTIONAL_555.fullmatch(num):
            confidence = min(confidence, 0.2)
        if confidence <= 0.0:
            continue
        redacted = redact_phone(num, text[m.end("num") : end])
        out.append(PiiMatch(start, end, "phone", confidence, redacted))
    return out


_DIGIT_WORDS = {
    "zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9",
}  # fmt: skip
_DIGIT_WORD = re.compile(r"(?i)\b(?:zero|oh|one|two|three|four|five|six|seven|eight|nine)\b")
_RUN_GAP = re.compile(r"[ \u00a0\-]{1,3}")  # between the words of one spelled digit group
_DIGIT_OR_WORD_NEAR = re.compile(
    r"(?i)(?:[0-9]|\b(?:zero|one|two|three|four|five|six|seven|eight|nine)\b)"
)


# digit words one text is searched for (a spelled number takes 7-15): "oh oh oh ..." for a
# megabyte would otherwise cost a regex search per word
MAX_DIGIT_WORDS = 3_000
_AROUND = 32  # characters kept around a run of digit words


def _spelled_digits(
    text: str, budget: Budget | None = None
) -> tuple[str, list[int], list[tuple[int, int]]] | None:
    """The text with runs of digit words turned into digit groups ("seven seven zero zero"
    -> "7700"), the original offset of each character, and where the converted runs now
    sit. None when it has fewer than three digit words. At most ``MAX_DIGIT_WORDS`` are
    looked at (running out is recorded in ``budget`` as "phone")."""
    words = []
    for m in capped(_DIGIT_WORD.finditer(text), "phone", budget, MAX_DIGIT_WORDS):
        if m.group().lower() == "oh":  # only among digits: "oh two oh", not "oh well"
            around = text[max(0, m.start() - 8) : m.start()] + " " + text[m.end() : m.end() + 8]
            if not _DIGIT_OR_WORD_NEAR.search(around):
                continue
        words.append(m)
    if len(words) < 3:
        return None
    runs: list[list[re.Match[str]]] = []
    for m in words:
        if runs and _RUN_GAP.fullmatch(text, runs[-1][-1].end(), m.start()):
            runs[-1].append(m)
        else:
            runs.append([m])
    # only the neighbourhood of each run is converted (and searched again): a number may
    # mix written digits with words ("0 seven 7 ..."), but the rest of a long text was
    # searched by the plain pass already
    segments: list[tuple[int, int, list[list[re.Match[str]]]]] = []
    for run in runs:
        lo, hi = max(0, run[0].start() - _AROUND), min(len(text), run[-1].end() + _AROUND)
        if segments and lo <= segments[-1][1]:
            segments[-1] = (segments[-1][0], hi, [*segments[-1][2], run])
        else:
            segments.append((lo, hi, [run]))
    pieces: list[str] = []
    origin: list[int] = []
    converted: list[tuple[int, int]] = []
    size = 0
    for lo, hi, seg_runs in segments:
        pos = lo
        for run in seg_runs:
            first = run[0].start()
            pieces.append(text[pos:first])
            origin.extend(range(pos, first))
            size += first - pos
            digits = "".join(_DIGIT_WORDS[m.group().lower()] for m in run)
            pieces.append(digits)
            origin.extend(m.start() for m in run)
            converted.append((size, size + len(digits)))
            size += len(digits)
            pos = run[-1].end()
        pieces.append(text[pos:hi] + "\n\n")  # no number spans two segments
        origin.extend(range(pos, hi))
        origin.extend((hi, hi))
        size += hi - pos + 2
    origin.append(len(text))
    return "".join(pieces), origin, converted


def find_spelled_phones(
    text: str, regions: Sequence[str] = (), budget: Budget | None = None
) -> list[PiiMatch]:
    """Phone numbers with digits written as words, offsets into ``text``."""
    spelled = _spelled_digits(text, budget)
    if spelled is None:
        return []
    digits, origin, converted = spelled
    out = []
    for m in find_phones(digits, regions, budget):
        if any(m.start < b and a < m.end for a, b in converted):  # else the plain pass saw it
            end = origin[m.end - 1] + 1
            while end < len(text) and text[end : end + 1].isalpha():
                end += 1  # to the end of the last word
            out.append(PiiMatch(origin[m.start], end, m.kind, m.confidence, m.redacted))
    return out


class PhoneRecognizer:
    kind = "phone"
    # Seven digits with at most separators between them (every written candidate holds
    # this), or digit words (a number spelled out)
    prefilter = (
        r"[0-9][0-9 ().\-/\x{a0}]{5,}[0-9]"
        r"|(?i)\b(?:zero|oh|one|two|three|four|five|six|seven|eight|nine)\b"
    )

    def find(self, text: str, ctx: TextContext) -> list[PiiMatch]:
        found = find_phones(text, ctx.regions, ctx.budget)
        spelled = find_spelled_phones(text, ctx.regions, ctx.budget)
        if spelled:
            taken = [(m.start, m.end) for m in found]
            found += [m for m in spelled if not any(s < m.end and m.start < e for s, e in taken)]
            found.sort(key=lambda m: m.start)
        return found
