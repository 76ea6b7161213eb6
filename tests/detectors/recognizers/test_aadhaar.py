"""Aadhaar recognizer: twelve digits with a Verhoeff check digit.

The numbers were built for these tests with an independent Verhoeff implementation.
"""

from __future__ import annotations

import pytest

from detectors.recognizers.aadhaar import verhoeff_ok
from tests.detectors.recognizers.helpers import assert_hides, find, spans


def test_verhoeff() -> None:
    assert verhoeff_ok("2363")  # the textbook example: 236 has check digit 3
    assert not verhoeff_ok("2364")
    assert verhoeff_ok("234567890124")
    assert not verhoeff_ok("234567890125")
    assert not verhoeff_ok("234567890142")  # a transposition


@pytest.mark.parametrize(
    ("text", "matched", "min_conf"),
    [
        ("Aadhaar: 2345 6789 0124", "2345 6789 0124", 0.85),
        ("आधार संख्या 4987 6543 2102", "4987 6543 2102", 0.85),
        ("UIDAI 842109753108", "842109753108", 0.85),
        ("2345-6789-0124", "2345-6789-0124", 0.5),
    ],
)
def test_true_positives(text: str, matched: str, min_conf: float) -> None:
    found = find("aadhaar", text)
    assert [text[m.start : m.end] for m in found] == [matched]
    assert found[0].confidence >= min_conf
    assert found[0].redacted == f"**** **** {matched[-4:]}"
    assert_hides(matched, found[0].redacted, 4)


def test_a_bare_run_is_weak_without_context() -> None:
    assert spans("aadhaar", "842109753108") == []
    assert spans("aadhaar", "842109753108", min_conf=0.2) == ["842109753108"]


@pytest.mark.parametrize(
    "text",
    [
        "Aadhaar 2345 6789 0125",  # check digit wrong
        "Aadhaar 1345 6789 0124",  # first digit 0 or 1 is never issued
        "Aadhaar 2345 6789 0124 5678",  # a longer number
        "card 2345 6789 0124",
        "oldid=234567890124",
        "ISBN 2345 6789 0124",
    ],
)
def test_not_aadhaar(text: str) -> None:
    assert spans("aadhaar", text, min_conf=0.0) == []
