"""Email addresses in wiki text, and their redacted form (``j***@e***.org``)."""

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


def redact_email(local: str, domain: str) -> str:
    labels = domain.split(".")
    return f"{local[:1]}***@{labels[0][:1]}***.{labels[-1]}"


def find_emails(text: str, budget: Budget | None = None) -> list[PiiMatch]:
    if "@" not in text:  # the common case costs one scan
        return []
    out = []
    for m in capped(_EMAIL.finditer(text), "email", budget):
        if m.group(3).lower() in _FILE_EXTENSIONS:
            continue
        out.append(PiiMatch(m.start(), m.end(), "email", 0.9, redact_email(m.group(1), m.group(2))))
    return out


class EmailRecognizer:
    kind = "email"
    prefilter = "@"

    def find(self, text: str, ctx: TextContext) -> list[PiiMatch]:
        return find_emails(text, ctx.budget)
