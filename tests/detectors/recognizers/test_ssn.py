"""US SSN recognizer: assignable values, SSA exclusions, and where a bare number counts."""

from __future__ import annotations

import pytest

from detectors.recognizers.ssn import ssn_ok
from tests.detectors.recognizers.helpers import assert_hides, find, spans


@pytest.mark.parametrize(
    ("text", "matched", "min_conf"),
    [
        ("SSN: 536-22-1476", "536-22-1476", 0.9),
        ("His social security number is 536-22-1476", "536-22-1476", 0.9),
        ("536-22-1476", "536-22-1476", 0.6),
        ("social security number 536 22 1476", "536 22 1476", 0.8),
        ("SSN 536221476", "536221476", 0.7),
        ("536-22-1476 (SSN)", "536-22-1476", 0.9),
    ],
)
def test_true_positives(text: str, matched: str, min_conf: float) -> None:
    found = find("us_ssn", text)
    assert [text[m.start : m.end] for m in found] == [matched]
    assert found[0].confidence >= min_conf
    assert found[0].redacted == "***-**-1476"
    assert_hides(matched, found[0].redacted, 4)


def test_spaced_and_bare_forms_need_context() -> None:
    assert spans("us_ssn", "536 22 1476") == []
    assert spans("us_ssn", "536221476", min_conf=0.0) == []


@pytest.mark.parametrize(
    ("area", "group", "serial", "ok"),
    [
        ("536", "22", "1476", True),
        ("899", "99", "9999", True),
        ("000", "22", "1476", False),
        ("666", "22", "1476", False),
        ("900", "22", "1476", False),
        ("536", "00", "1476", False),
        ("536", "22", "0000", False),
        ("078", "05", "1120", True),  # voided after the Woolworth wallet card, still SSN-shaped
    ],
)
def test_ranges(area: str, group: str, serial: str, ok: bool) -> None:
    assert ssn_ok(area, group, serial) is ok
    assert bool(spans("us_ssn", f"SSN {area}-{group}-{serial}")) is ok


@pytest.mark.parametrize(
    "text",
    [
        "ISBN 536-22-1476",
        "phone 536-22-1476",
        "oldid=536221476",
        "1536-22-1476",
        "536-22-14760",
        "2024-05-05",
        "Reverted edits by 203.0.113.7 (talk) to last version by Example",
    ],
)
def test_not_ssns(text: str) -> None:
    assert spans("us_ssn", text) == []
