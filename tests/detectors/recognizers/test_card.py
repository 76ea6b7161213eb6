"""Card recognizer: issuers' published test numbers, and digit runs that are not cards."""

from __future__ import annotations

import pytest

from detectors.recognizers.card import card_brand, find_cards
from tests.detectors.recognizers.helpers import assert_hides, find, spans


@pytest.mark.parametrize(
    ("text", "matched", "redacted", "brand", "min_conf"),
    [
        (
            "card 4111 1111 1111 1111 exp 12/30",
            "4111 1111 1111 1111",
            "**** **** **** 1111",
            "visa",
            0.9,
        ),
        (
            "pay with 4111-1111-1111-1111.",
            "4111-1111-1111-1111",
            "**** **** **** 1111",
            "visa",
            0.9,
        ),
        ("4111 1111 1111 1111 12/30", "4111 1111 1111 1111", "**** **** **** 1111", "visa", 0.8),
        ("Visa 4012888888881881", "4012888888881881", "**** **** **** 1881", "visa", 0.85),
        ("4012888888881881", "4012888888881881", "**** **** **** 1881", "visa", 0.55),
        ("Amex 3782 822463 10005", "3782 822463 10005", "**** **** *** 0005", "amex", 0.9),
        (
            "MasterCard 5555 5555 5555 4444",
            "5555 5555 5555 4444",
            "**** **** **** 4444",
            "mastercard",
            0.9,
        ),
        ("cc 2223 0031 2200 3222", "2223 0031 2200 3222", "**** **** **** 3222", "mastercard", 0.9),
        (
            "Discover 6011 1111 1111 1117",
            "6011 1111 1111 1117",
            "**** **** **** 1117",
            "discover",
            0.9,
        ),
        ("JCB 3530 1113 3330 0000", "3530 1113 3330 0000", "**** **** **** 0000", "jcb", 0.9),
        ("Diners Club 3056 930902 5904", "3056 930902 5904", "**** **** ** 5904", "diners", 0.9),
        (
            "Kreditkarte: 4000 0566 5566 5556",
            "4000 0566 5566 5556",
            "**** **** **** 5556",
            "visa",
            0.9,
        ),
    ],
)
def test_true_positives(
    text: str, matched: str, redacted: str, brand: str, min_conf: float
) -> None:
    found = find("credit_card", text)
    assert [text[m.start : m.end] for m in found] == [matched]
    assert found[0].redacted == redacted
    assert found[0].confidence >= min_conf
    assert card_brand("".join(c for c in matched if c.isdigit())) == brand
    assert_hides(matched, found[0].redacted, 4)


def test_a_card_word_raises_confidence() -> None:
    (bare,) = find_cards("ref 4012888888881881")
    (worded,) = find_cards("credit card 4012888888881881")
    assert worded.confidence > bare.confidence


def test_twelve_digit_maestro_needs_a_card_word() -> None:
    # Luhn-valid, Maestro prefix 6759: a card only when the text says so
    assert spans("credit_card", "675964982648") == []
    assert spans("credit_card", "my debit card 675964982648") == ["675964982648"]


@pytest.mark.parametrize(
    "text",
    [
        "4111 1111 1111 1112",  # Luhn fails
        "1234 5678 9012 3456",  # no issuer, Luhn fails
        "9111 1111 1111 1116",  # Luhn passes, no issuer starts with 9
        "41 1111 1111 1111 11",  # not a card layout
        "4111 1111 1111 1111 1111 1111",  # too long: not a card followed by a group
        "ISBN 9780306406157",
        "ISBN 978-0-306-40615-7",
        "https://en.wikipedia.org/w/index.php?oldid=4111111111111111",
        "[[Special:Diff/4111111111111111]]",
        "{{cite web |id=4111111111111111 |title=Example}}",
        "tweet status 4111111111111111",
        "1234567890123456789012",
        "revision 1352636736 by Example",
    ],
)
def test_not_cards(text: str) -> None:
    assert spans("credit_card", text) == []
