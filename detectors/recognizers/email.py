"""Email addresses in wiki text, and their redacted form (``j***@e***.org``).

Written plainly (``jane.roe@example.org``) or in the forms people use to slip an address
past filters: ``john [at] example [dot] org``, ``(at)``/``(dot)``, ``{at}``, ``<at>``,
``john at example dot org``, spaced symbols ``john @ example . org``. An obfuscated form
needs a known top-level domain (``meet at the station`` is not an address, nor is
``look at this. Then``), and a spelled-out "at" needs the dot obfuscated too or written
inside the domain.
"""

from __future__ import annotations

import re

from detectors.recognizers.base import Budget, PiiMatch, TextContext, capped

__all__ = ["EmailRecognizer", "find_emails", "redact_email"]

# The domain must end in an alphabetic TLD of 2+ letters; file names such as
# "Logo@2x.png" look like addresses, so common media and document extensions are refused.
_FILE_EXTENSIONS = frozenset(
    {
        "png", "jpg", "jpeg", "gif", "svg", "webp", "tif", "tiff", "bmp", "pdf", "djvu",
        "ogg", "ogv", "oga", "webm", "mp3", "mp4", "wav", "flac", "mid", "midi", "txt",
        "css", "js", "json", "xml", "html", "htm", "stl",
    }
)  # fmt: skip
_EMAIL = re.compile(
    r"(?<![\w.%+\-@])"
    r"([\w%+\-](?:[\w.%+\-]{0,62}[\w%+\-])?)"  # local part: no leading/trailing dot
    r"@"
    r"((?:[^\W_](?:[\w\-]{0,61}[^\W_])?\.)+([^\W\d_]{2,24}))"
    r"(?![\w\-]|\.[^\W_])"
)


_OPEN = r"[\[({<]\s*"
_CLOSE = r"\s*[\])}>]"
_AT = (
    rf"(?P<at>\s*{_OPEN}at{_CLOSE}\s*"  # [at] (at) {at} <at>
    r"|\s+at\s+"  # the word
    r"|\s+@\s*|\s*@\s+)"  # a spaced @
)
_DOT = rf"(?:\s*{_OPEN}dot{_CLOSE}\s*|\s+dot\s+|\s*\.\s*)"
_LABEL = r"[^\W_](?:[\w\-]{0,61}[^\W_])?"
_OBFUSCATED = re.compile(
    r"(?i)(?<![\w.%+\-@])"
    r"(?P<local>[\w%+\-](?:[\w.%+\-]{0,62}[\w%+\-])?)"
    + _AT
    + rf"(?P<domain>(?:{_LABEL}{_DOT}){{1,4}}(?P<tld>[^\W\d_]{{2,24}}))"
    r"(?![\w\-])"
)
# what every obfuscated form holds: a bracketed "at", the word "at", or a spaced "@"
_AT_MARKER = re.compile(r"(?i)[\[({<]\s*at\s*[\])}>]|\sat\s|\s@|@\s")
_WORD_DOT = re.compile(r"(?i)\s+dot\s+|[\[({<]\s*dot")
# top-level domains an obfuscated address may end in: the common generic ones and every
# two-letter country code shape (a sentence's next word rarely is two letters and lowercase)
_TLDS = frozenset(
    {
        "com", "org", "net", "edu", "gov", "mil", "int", "info", "biz", "name", "pro",
        "mobi", "io", "app", "dev", "xyz", "online", "site", "email", "mail", "me",
    }
)  # fmt: skip
_PREFILTER = r"(?i)@|[\[({<]\s*at\s*[\])}>]|\bat\b.{1,160}?(?:\bdot\b|[\[({<]\s*dot|\.[a-z]{2})"


def redact_email(local: str, domain: str) -> str:
    labels = domain.split(".")
    return f"{local[:1]}***@{labels[0][:1]}***.{labels[-1]}"


def _canonical_domain(domain: str) -> str:
    return re.sub(_DOT, ".", domain, flags=re.IGNORECASE)


def _obfuscated(text: str, budget: Budget | None) -> list[PiiMatch]:
    out = []
    for m in capped(_OBFUSCATED.finditer(text), "email", budget):
        tld = m.group("tld")
        if tld.lower() not in _TLDS and not (len(tld) == 2 and tld.islower()):
            continue
        at = m.group("at").strip()
        domain = _canonical_domain(m.group("domain"))
        if at.lower() == "at":  # the plain word: the dot must be obfuscated too
            if not _WORD_DOT.search(m.group("domain")):
                continue
            confidence = 0.6
        elif at == "@":  # a spaced symbol
            confidence = 0.8
        else:  # [at] (at) {at} <at>
            confidence = 0.9
        out.append(PiiMatch(m.start(), m.end(), "email", confidence,
                            redact_email(m.group("local"), domain)))  # fmt: skip
    return out


def find_emails(text: str, budget: Budget | None = None) -> list[PiiMatch]:
    out = []
    if "@" in text:  # the common case costs one scan
        for m in capped(_EMAIL.finditer(text), "email", budget):
            if m.group(3).lower() in _FILE_EXTENSIONS:
                continue
            redacted = redact_email(m.group(1), m.group(2))
            out.append(PiiMatch(m.start(), m.end(), "email", 0.9, redacted))
    if _AT_MARKER.search(text):
        plain = [(p.start, p.end) for p in out]
        for found in _obfuscated(text, budget):
            if not any(s < found.end and found.start < e for s, e in plain):
                out.append(found)
        out.sort(key=lambda p: p.start)
    return out


class EmailRecognizer:
    kind = "email"
    # an @, a bracketed at, or the word "at" followed by a dot (word, bracket or in a domain)
    prefilter = _PREFILTER

    def find(self, text: str, ctx: TextContext) -> list[PiiMatch]:
        return find_emails(text, ctx.budget)
