"""Small helpers shared by the recognizers: context windows, checksums, masking.

Everything here is a pure function of its arguments.
"""

from __future__ import annotations

import re

__all__ = [
    "digits_of",
    "enclosing_template",
    "group_from_left",
    "has_after",
    "has_before",
    "luhn_ok",
    "mask_keep_last",
]


def digits_of(s: str) -> str:
    """The ASCII digits of ``s``, in order."""
    return "".join(c for c in s if "0" <= c <= "9")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        n = ord(c) - 48
        if i % 2:
            n *= 2
            if n > 9:
                n -= 9
        total += n
    return total % 10 == 0


def has_before(pattern: re.Pattern[str], text: str, start: int, window: int) -> bool:
    """Whether ``pattern`` matches in the ``window`` characters before ``start``.

    Patterns that must touch the candidate end in ``\\Z``: ``search`` with ``endpos`` treats
    ``start`` as the end of the string.
    """
    return pattern.search(text, max(0, start - window), start) is not None


def has_after(pattern: re.Pattern[str], text: str, end: int, window: int) -> bool:
    """Whether ``pattern`` matches at ``end`` within the next ``window`` characters."""
    return pattern.match(text, end, min(len(text), end + window)) is not None


def mask_keep_last(s: str, keep: int) -> str:
    """``s`` with every ASCII letter or digit masked by ``*`` except the last ``keep`` digits.

    Separators and signs are kept, so the form still shows how the value was written.
    """
    out = list(s)
    kept = 0
    for i in range(len(out) - 1, -1, -1):
        c = out[i]
        if "0" <= c <= "9":
            if kept < keep:
                kept += 1
                continue
            out[i] = "*"
        elif c.isascii() and c.isalpha():
            out[i] = "*"
    return "".join(out)


def group_from_left(s: str, size: int = 4) -> str:
    """``s`` in space-separated groups of ``size`` characters, counted from the left."""
    return " ".join(s[i : i + size] for i in range(0, len(s), size))


_TEMPLATE_WINDOW = 400


def enclosing_template(text: str, start: int) -> tuple[str, str] | None:
    """The template a position sits in, as (lower-case name, lower-case parameter name).

    Looks back at most 400 characters for an unclosed ``{{``; nested templates are handled
    only as far as the innermost one. The parameter name is ``""`` for positional
    parameters and for the template name itself.
    """
    lo = max(0, start - _TEMPLATE_WINDOW)
    open_at = text.rfind("{{", lo, start)
    if open_at < 0:
        return None
    if text.find("}}", open_at, start) >= 0:
        return None
    inner = text[open_at + 2 : start]
    bar = inner.find("|")
    name = (inner if bar < 0 else inner[:bar]).strip().lower()
    if bar < 0:
        return name, ""
    last = inner[inner.rfind("|") + 1 :]
    eq = last.find("=")
    param = last[:eq].strip().lower() if eq >= 0 else ""
    return name, param
