"""Redaction of personal data: every recognizer, and never a text half redacted."""

from __future__ import annotations

import pytest

from detectors.pii import redact, redact_pii
from detectors.recognizers import RECOGNIZERS, TextContext
from detectors.recognizers.base import Budget, PiiMatch


def test_redaction_uses_every_recognizer() -> None:
    """Issue 20, item 2: dates of birth and IP addresses were left in (only the
    fingerprint kinds were used)."""
    text = (
        "born 12 May 1990; IP 81.2.69.160; mail jane.doe@example.org; "
        "call +1 415 867 5309; lives at 221 Baker Street"
    )
    done = redact(text)
    assert done.complete
    for private in ("1990", "81.2.69.160", "jane.doe", "867 5309", "221 Baker"):
        assert private not in done.text, done.text
    assert redact_pii("born 12 May 1990, IP 81.2.69.160") == "born **/**/199*, IP *.*.*.*"
    kinds = {m.kind for r in RECOGNIZERS.values() for m in r.find(text, TextContext())}
    assert {"date_of_birth", "ip_address", "email", "phone", "street_address"} <= kinds


def test_a_text_a_recognizer_did_not_read_to_the_end_is_never_half_redacted() -> None:
    """Issue 20, item 2: a phone number after 1,200 decoy digits stayed in the text."""
    text = "you idiot " + "1 " * 1200 + " call me at +1 415 867 5309"
    budget = Budget()
    done = redact(text, TextContext(budget=budget), 0.0)
    assert done.cut_short == {"phone"} and not done.complete
    assert budget.exhausted == {"phone"}  # the caller's budget hears of it too
    withheld = redact_pii(text)
    assert "5309" not in withheld and withheld.startswith("[withheld ")
    assert redact_pii(text + " ") != withheld  # distinct texts stay distinct


class _Overlapping:
    """Finds "alpha beta" and, overlapping it, "beta gamma"."""

    kind = "test_overlap"
    prefilter = "beta"

    def find(self, text: str, ctx: TextContext) -> list[PiiMatch]:
        a, b = text.index("alpha beta"), text.index("beta gamma")
        return [
            PiiMatch(a, a + len("alpha beta"), self.kind, 0.9, "<a>"),
            PiiMatch(b, b + len("beta gamma x"), self.kind, 0.9, "<longer>"),
        ]


def test_overlapping_matches_are_replaced_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replacing overlapping matches one by one left a piece of the first one in."""
    monkeypatch.setitem(RECOGNIZERS, "test_overlap", _Overlapping())
    assert redact("at alpha beta gamma x, ok").text == "at <longer>, ok"
