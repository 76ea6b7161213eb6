"""IBAN recognizer: the registry's example IBANs, and look-alikes that fail the checks."""

from __future__ import annotations

import pytest

from detectors.recognizers.iban import IBAN_LENGTHS, iban_ok
from tests.detectors.recognizers.helpers import assert_hides, find, spans


@pytest.mark.parametrize(
    ("text", "matched", "redacted"),
    [
        (
            "IBAN GB82 WEST 1234 5698 7654 32, BIC WESTGB22",
            "GB82 WEST 1234 5698 7654 32",
            "GB** **** **** **** **54 32",
        ),
        ("GB82WEST12345698765432", "GB82WEST12345698765432", "GB** **** **** **** **54 32"),
        (
            "Konto DE89 3704 0044 0532 0130 00.",
            "DE89 3704 0044 0532 0130 00",
            "DE** **** **** **** **30 00",
        ),
        (
            "FR14 2004 1010 0505 0001 3M02 606",
            "FR14 2004 1010 0505 0001 3M02 606",
            "FR** **** **** **** **** ***2 606",
        ),
        ("NL91ABNA0417164300", "NL91ABNA0417164300", "NL** **** **** **43 00"),
        ("CH9300762011623852957", "CH9300762011623852957", "CH** **** **** **** *295 7"),
        (
            "my iban is gb82west12345698765432",
            "gb82west12345698765432",
            "GB** **** **** **** **54 32",
        ),
    ],
)
def test_true_positives(text: str, matched: str, redacted: str) -> None:
    found = find("iban", text)
    assert [text[m.start : m.end] for m in found] == [matched]
    assert found[0].redacted == redacted
    assert found[0].confidence >= 0.85
    assert_hides(matched, found[0].redacted, 4)


def test_check_digits_and_lengths() -> None:
    assert iban_ok("GB82WEST12345698765432")
    assert not iban_ok("GB82WEST12345698765433")
    assert not iban_ok("GB82WEST1234569876543")
    assert IBAN_LENGTHS["DE"] == 22 and IBAN_LENGTHS["NO"] == 15


@pytest.mark.parametrize(
    "text",
    [
        "GB82 WEST 1234 5698 7654 33",  # check digits fail
        "GB82 WEST 1234 5698 7654 3210",  # one group too many
        "GB82WEST123456987654",  # too short for GB
        "XX82WEST12345698765432",  # no such country
        "Gb82West12345698765432",  # mixed case: a word or a code
        "GB82 WE ST12 3456 9876 5432",  # not grouped in fours
        "ISO 3166 GB12 and DE89 are codes",
        "the A380 and the B747",
    ],
)
def test_not_ibans(text: str) -> None:
    assert spans("iban", text, min_conf=0.0) == []
