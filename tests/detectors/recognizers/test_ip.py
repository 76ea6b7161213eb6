"""IP address recognizer: an address in prose versus the signatures wikis are full of.

Addresses are from the documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24,
2001:db8::/32), which the recognizer treats as public.
"""

from __future__ import annotations

import pytest

from detectors.recognizers import TextContext
from detectors.recognizers.ip import (
    NOT_SIGNATURE_MIN_CONFIDENCE,
    SIGNATURE_CONFIDENCE,
    in_signature,
)
from tests.detectors.recognizers.helpers import assert_hides, find


def confidences(text: str, ctx: TextContext | None = None) -> list[tuple[str, float]]:
    return [(text[m.start : m.end], m.confidence) for m in find("ip_address", text, ctx)]


@pytest.mark.parametrize(
    ("text", "matched"),
    [
        ("my IP is 203.0.113.7, please unblock", "203.0.113.7"),
        ("she edits from 198.51.100.23 every night", "198.51.100.23"),
        (
            "His home connection is 2001:db8:85a3::8a2e:370:7334 I think",
            "2001:db8:85a3::8a2e:370:7334",
        ),
        ("the stalker at 192.0.2.44 again", "192.0.2.44"),
        ("address 203.0.113.7:8080 answers", "203.0.113.7"),
    ],
)
def test_addresses_in_prose(text: str, matched: str) -> None:
    found = find("ip_address", text)
    assert [text[m.start : m.end] for m in found] == [matched]
    assert found[0].confidence >= 0.8
    assert found[0].redacted in ("*.*.*.*", "*:*:*:*:*:*:*:*")
    assert_hides(matched, found[0].redacted, 0)


@pytest.mark.parametrize(
    "text",
    [
        "Reverted edits by [[Special:Contributions/203.0.113.7|203.0.113.7]] "
        "([[User talk:203.0.113.7|talk]]) to last version by Example",
        "Reverted edits by 203.0.113.7 (talk) to last version by Example",
        "Undid revision 1234567890 by 203.0.113.7 (talk)",
        "{{unsigned|203.0.113.7}}",
        "{{unsigned IP|203.0.113.7|12:34, 5 May 2026 (UTC)}}",
        "{{IPvandal|203.0.113.7}}",
        "— Preceding unsigned comment added by 203.0.113.7 (talk) 12:34, 5 May 2026 (UTC)",
        "Nice work. [[Special:Contributions/2001:db8::1|2001:db8::1]] 12:34, 5 May 2026 (UTC)",
        "[[User talk:2001:db8::7|talk]]",
        "[[Benutzer Diskussion:198.51.100.23|Diskussion]]",
        "see Special:Contributions/203.0.113.7 for the rest",
        "The recent edit made by User:203.0.113.7 could be vandalism",
        "I think the article is wrong. Thanks. 203.0.113.7",
        "Cheers 203.0.113.7",
        "I agree with the proposal.\n198.51.100.23\n",
        "Bearbeitungen von 203.0.113.7 rückgängig gemacht",
    ],
)
def test_signatures_are_low(text: str) -> None:
    found = find("ip_address", text)
    assert found
    assert all(m.confidence == SIGNATURE_CONFIDENCE for m in found)
    assert all(in_signature(text, m.start, m.end) for m in found)


def test_context_makes_signatures() -> None:
    assert confidences("203.0.113.7", TextContext(field="user")) == [
        ("203.0.113.7", SIGNATURE_CONFIDENCE)
    ]
    own = TextContext(field="added_text", performer="203.0.113.7")
    assert confidences("my address is 203.0.113.7", own) == [("203.0.113.7", SIGNATURE_CONFIDENCE)]
    other = TextContext(field="added_text", performer="198.51.100.23")
    assert confidences("my address is 203.0.113.7", other)[0][1] >= 0.8


@pytest.mark.parametrize(
    ("text", "highest"),
    [
        ("connect to 10.0.0.1 on the LAN", 0.4),  # private
        ("localhost is 127.0.0.1", 0.4),
        ("link-local fe80::1:2:3 here", 0.4),
        ("the range 203.0.113.0/24 is blocked", 0.4),  # a range, not an address
        ("Section 1.2.3.4 says", 0.0),
        ("rule 1.2.3.4 applies", 0.0),
        ("see 1.2.3.4", 0.35),  # outline numbering more often than an address
        ("|-\n| 203.0.113.7 || example host\n", 0.5),  # a wikitable cell
    ],
)
def test_lower_confidence(text: str, highest: float) -> None:
    found = confidences(text)
    assert all(c <= highest for _, c in found), found
    if highest > 0.0:
        assert found
    assert all(c > NOT_SIGNATURE_MIN_CONFIDENCE for _, c in found)


@pytest.mark.parametrize(
    "text",
    [
        "v1.2.3.4",
        "version 10.0.0.1",
        "Firmware 2.4.1.0 released",
        "OID 1.3.6.1.4.1.311",
        "1.3.6.1.4.1.311.21.7",
        "12:34:56",
        "std::vector<int>",
        "MAC 00:1A:2B:3C:4D:5E",
        "256.1.1.1",
        "01.02.03.04",
        "05.05.2024",
        "ISBN 0-306-40615-2",
    ],
)
def test_not_ip_addresses(text: str) -> None:
    assert find("ip_address", text) == []


def test_a_rule_can_ask_for_an_address_outside_signatures() -> None:
    text = (
        "Reverted edits by 203.0.113.7 (talk) to last version by Example; "
        "he posts from 198.51.100.23 now"
    )
    wanted = [
        text[m.start : m.end]
        for m in find("ip_address", text)
        if m.confidence >= NOT_SIGNATURE_MIN_CONFIDENCE
    ]
    assert wanted == ["198.51.100.23"]
