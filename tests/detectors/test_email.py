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


@pytest.mark.parametrize(
    ("text", "redacted", "confidence"),
    [
        ("contact me at john [at] example [dot] org", "j***@e***.org", 0.9),
        ("mail jane(at)example(dot)com for the files", "j***@e***.com", 0.9),
        ("write to jane{at}mail.example.de now", "j***@m***.de", 0.9),
        ("bob <at> gmail <dot> com", "b***@g***.com", 0.9),
        ("john @ example . org", "j***@e***.org", 0.8),
        ("write to john at example dot org", "j***@e***.org", 0.6),
        ("permissions(at)wikimedia(dot)org", "p***@w***.org", 0.9),  # seen in talk pages
    ],
)
def test_obfuscated_addresses(text: str, redacted: str, confidence: float) -> None:
    """Defect 9.10: the forms people use to slip an address past filters raised nothing."""
    [found] = find_emails(text)
    assert (found.redacted, found.confidence) == (redacted, confidence)


@pytest.mark.parametrize(
    "text",
    [
        "meet at the station",
        "look at this. Then fix the table",
        "moved at 12:00, see talk",
        "at the end of the day. Ok",
        "reverted at [[Example]] (dot points)",
        "John at example. Org chart updated",  # a sentence break is not a dot
    ],
)
def test_ordinary_uses_of_at_and_dot_are_not_addresses(text: str) -> None:
    assert find_emails(text) == []
