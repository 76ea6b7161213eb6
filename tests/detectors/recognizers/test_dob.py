"""Date-of-birth recognizer: dates only count next to a birth word."""

from __future__ import annotations

import pytest

from detectors.recognizers import TextContext
from tests.detectors.recognizers.helpers import find, spans


@pytest.mark.parametrize(
    ("text", "matched", "redacted", "min_conf"),
    [
        ("born 12 May 1990 in Example", "12 May 1990", "**/**/199*", 0.8),
        ("DOB: 1990-05-12", "1990-05-12", "**/**/199*", 0.85),
        ("Date of birth: May 12, 1990", "May 12, 1990", "**/**/199*", 0.85),
        ("geboren am 12.05.1990 in Beispielstadt", "12.05.1990", "**/**/199*", 0.8),
        ("Geburtsdatum 12. Mai 1990", "12. Mai 1990", "**/**/199*", 0.85),
        ("née le 12 mai 1990", "12 mai 1990", "**/**/199*", 0.8),
        ("nacido el 12 de mayo de 1990", "12 de mayo de 1990", "**/**/199*", 0.8),
        ("nata il 12 maggio 1990", "12 maggio 1990", "**/**/199*", 0.8),
        ("生年月日\uff1a1990年5月12日", "1990年5月12日", "**/**/199*", 0.8),
        ("родился 12.05.1990", "12.05.1990", "**/**/199*", 0.8),
        ("Example (b. 5/12/90)", "5/12/90", "**/**/**", 0.8),
        ("my birthday is 12 May", "12 May", "**/**", 0.5),
        ("born in May 1990", "May 1990", "**/**/199*", 0.4),
        ("{{birth date and age|1990|5|12}}", "{{birth date and age|1990|5|12}}", "**/**/199*", 0.5),
    ],
)
def test_true_positives(text: str, matched: str, redacted: str, min_conf: float) -> None:
    found = find("date_of_birth", text)
    assert [text[m.start : m.end] for m in found] == [matched]
    assert found[0].redacted == redacted
    assert found[0].confidence >= min_conf
    assert not any(part in found[0].redacted for part in ("12", "05", "1990"))


def test_articles_halve_the_confidence() -> None:
    text = "born 12 May 1990"
    (talk,) = find("date_of_birth", text, TextContext(namespace=3))
    (article,) = find("date_of_birth", text, TextContext(namespace=0))
    assert article.confidence == pytest.approx(talk.confidence / 2)


@pytest.mark.parametrize(
    "text",
    [
        "released 12 May 1990",
        "On 12.05.1990 the council met",
        "1990-05-12",
        "born in 1990",
        "b. In February 2012, the court ruled",
        "NATO summit on 12 May 1990",
        "born 1990-13-45",
        "born 31/31/1990",
        "He was born. 12 May 1990 was a Saturday",
    ],
)
def test_not_dates_of_birth(text: str) -> None:
    assert spans("date_of_birth", text, min_conf=0.45) == []
