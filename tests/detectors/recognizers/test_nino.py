"""UK National Insurance number recognizer: HMRC's format rules."""

from __future__ import annotations

import pytest

from tests.detectors.recognizers.helpers import assert_hides, find, spans


@pytest.mark.parametrize(
    ("text", "matched", "min_conf"),
    [
        ("NI number: AB 12 34 56 C", "AB 12 34 56 C", 0.9),
        ("national insurance no. CE123456D", "CE123456D", 0.9),
        ("AB 12 34 56 C", "AB 12 34 56 C", 0.6),
        ("ref JT123456A.", "JT123456A", 0.55),
    ],
)
def test_true_positives(text: str, matched: str, min_conf: float) -> None:
    found = find("uk_nino", text)
    assert [text[m.start : m.end] for m in found] == [matched]
    assert found[0].confidence >= min_conf
    assert found[0].redacted == "** ** ** *6 *"
    assert_hides(matched, found[0].redacted, 2)


@pytest.mark.parametrize(
    "text",
    [
        "QQ 12 34 56 C",  # Q is never a first letter (HMRC's own example)
        "DA123456A",  # D is never a first letter
        "AO123456A",  # O is never a second letter
        "BG123456A",  # excluded prefixes
        "GB123456A",
        "NK123456A",
        "TN123456A",
        "ZZ123456A",
        "AB123456E",  # suffix A-D only
        "ab123456c",
        "AB 1234 56 C",  # inconsistent spacing
        "XAB123456C",
        "AB123456CD",
    ],
)
def test_not_ninos(text: str) -> None:
    assert spans("uk_nino", text, min_conf=0.0) == []
