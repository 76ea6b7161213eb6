"""Helpers for recognizer tests: run one recognizer, check what a redacted form reveals."""

from __future__ import annotations

import re2

from detectors.recognizers import RECOGNIZERS, PiiMatch, TextContext


def find(kind: str, text: str, ctx: TextContext | None = None) -> list[PiiMatch]:
    """Run the registered recognizer, checking the contract on the way."""
    recognizer = RECOGNIZERS[kind]
    found = recognizer.find(text, ctx if ctx is not None else TextContext())
    for m in found:
        assert m.kind == kind
        assert 0 <= m.start < m.end <= len(text)
        assert 0.0 < m.confidence <= 1.0
    if found:  # the rule engine only runs a recognizer whose prefilter matched
        assert re2.search(recognizer.prefilter, text) is not None, (kind, text)
    return found


def spans(kind: str, text: str, ctx: TextContext | None = None, min_conf: float = 0.5) -> list[str]:
    """The matched substrings at or above ``min_conf``."""
    return [text[m.start : m.end] for m in find(kind, text, ctx) if m.confidence >= min_conf]


def assert_hides(original: str, redacted: str, keep_digits: int) -> None:
    """``redacted`` shows at most the last ``keep_digits`` digits of ``original``, in order,
    and no other letter or digit run of the original longer than two characters."""
    orig_digits = [c for c in original if c.isdigit()]
    shown = [c for c in redacted if c.isdigit()]
    assert len(shown) <= keep_digits, (original, redacted)
    if shown:
        assert shown == orig_digits[len(orig_digits) - len(shown) :], (original, redacted)
    assert original not in redacted
    for token in original.replace("-", " ").replace(".", " ").split():
        if len(token) > 4 and any(c.isdigit() for c in token):
            assert token not in redacted, (original, redacted)
