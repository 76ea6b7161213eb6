"""Email recognizer on wiki text: what must and must not be found, and the redacted form."""

from __future__ import annotations

import pytest

from detectors.recognizers.email import find_emails


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("please contact me at jane.roe@example.org about the photo", ["j***@e***.org"]),
        ("Seine Adresse ist max.mustermann@example.com", ["m***@e***.com"]),
        ("User:Example/contact john.smith@example.net", ["j***@e***.net"]),
        (
            "mail: A.B-c+tag@sub.dom-ain.co.uk, or x_y@mail.example.de.",
            ["A***@s***.uk", "x***@m***.de"],
        ),
        ("Ünïcode: jörg@bücher.example", ["j***@b***.example"]),
        ("<jane@example.org>", ["j***@e***.org"]),
    ],
)
def test_true_positives(text: str, redacted: list[str]) -> None:
    found = find_emails(text)
    assert [m.redacted for m in found] == redacted
    for m in found:
        assert "@" in text[m.start : m.end]


@pytest.mark.parametrize(
    "text",
    [
        "File:Logo@2x.png",  # retina file names
        "[[File:Icon@3x.svg|20px]]",
        "reply to @Example: thanks",  # mentions
        "{{ping|Example}} see above @ 12:00",
        "user@localhost",  # no TLD
        "foo.@example.org",  # local part cannot end with a dot
        "x@@example.org",
        "Reverted edits by 203.0.113.7 (talk) to last version by Example",
        "",
    ],
)
def test_false_positives(text: str) -> None:
    assert find_emails(text) == []
