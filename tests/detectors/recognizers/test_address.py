"""Street address recognizer: the orders big European languages write addresses in."""

from __future__ import annotations

import pytest

from detectors.recognizers import TextContext
from tests.detectors.recognizers.helpers import assert_hides, find, spans


@pytest.mark.parametrize(
    ("text", "matched", "redacted"),
    [
        ("He lives at 221B Baker Street, London", "221B Baker Street", "*** *** Street"),
        ("1600 Pennsylvania Ave NW", "1600 Pennsylvania Ave NW", "*** *** Ave ***"),
        ("send it to 12 Main St, Apt 4", "12 Main St, Apt 4", "*** *** St, *** ***"),
        ("22 Example Court Suite 331", "22 Example Court Suite 331", "*** *** Court *** ***"),
        ("elle habite 12 rue de la Paix", "12 rue de la Paix", "*** rue *** *** ***"),
        ("3, avenue Foch", "3, avenue Foch", "*** avenue ***"),
        ("vive en la Calle Mayor 5", "Calle Mayor 5", "Calle *** ***"),
        ("Avenida de América 12", "Avenida de América 12", "Avenida *** *** ***"),
        ("Rua Augusta 100", "Rua Augusta 100", "Rua *** ***"),
        ("abita in Via del Corso 12", "Via del Corso 12", "Via *** *** ***"),
        ("ul. Długa 5", "ul. Długa 5", "ul. *** ***"),
        ("wohnt in der Hauptstraße 12a", "Hauptstraße 12a", "***straße ***"),
        ("Musterweg 5", "Musterweg 5", "***weg ***"),
        ("Berliner Allee 3-5", "Berliner Allee 3-5", "*** Allee ***"),
        ("Damstraat 12", "Damstraat 12", "***straat ***"),
        ("Storgatan 4", "Storgatan 4", "***gatan ***"),
        ("Kossuth utca 5", "Kossuth utca 5", "*** utca ***"),
        ("Karl Johans gate 22", "Karl Johans gate 22", "*** *** gate ***"),
    ],
)
def test_true_positives(text: str, matched: str, redacted: str) -> None:
    found = find("street_address", text)
    assert [text[m.start : m.end] for m in found] == [matched]
    assert found[0].redacted == redacted
    assert 0.5 <= found[0].confidence <= 0.8
    assert_hides(matched, found[0].redacted, 0)


def test_address_words_raise_confidence() -> None:
    (plain,) = find("street_address", "12 Main Street")
    (lives,) = find("street_address", "she lives at 12 Main Street")
    assert lives.confidence > plain.confidence


def test_content_namespaces_name_buildings() -> None:
    article = TextContext(namespace=0)
    talk = TextContext(namespace=3)
    assert spans("street_address", "The museum at 12 Main Street opened", article) == []
    assert spans("street_address", "The museum at 12 Main Street opened", talk) == [
        "12 Main Street"
    ]
    # ... but a home address in an article is still what a privacy rule wants
    assert spans("street_address", "she lives at 12 Main Street", article) == ["12 Main Street"]


@pytest.mark.parametrize(
    "text",
    [
        "World War 2 Street fighting",
        "Route 66",
        "U.S. Route 1 through town",
        "In 1905 Regent Street was widened",
        "July 2010 Backlog Elimination Drive.",
        "March 17, 2004. The Supreme Court of Israel ruled",
        "on 5 May Street parties were held",
        "the 3 little women walk home",
        "39th Separate Railway Brigade 14.jpg",
        "Blockade 5 lifted",
        "I have 3 kids on the way",
        "2 Street Fighter games",
        "{{cite book |title=Example Street |year=1999 |pages=12}}",
    ],
)
def test_not_addresses(text: str) -> None:
    assert spans("street_address", text) == []
