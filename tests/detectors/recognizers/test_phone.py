"""Phone recognizer: numbers people leave in wiki text, and the numbers wiki text is full of.

Numbers are from ranges reserved for fiction: Ofcom's drama numbers (020 7946 0xxx, 0161 496
0xxx), ACMA's (0491 570 xxx), ARCEP's (01 99 00 xx xx), the Bundesnetzagentur's (030 23125
xxx) and NANP 555-01xx.
"""

from __future__ import annotations

import pytest

from detectors.recognizers import TextContext
from detectors.recognizers.phone import DEFAULT_REGIONS, PhoneRecognizer, find_phones
from tests.detectors.recognizers.helpers import assert_hides, find, spans

GB = TextContext(regions=("GB",))
WIKI = TextContext(regions=("US", "GB", "DE", "FR", "IN"))


@pytest.mark.parametrize(
    ("text", "regions", "matched", "redacted", "min_conf"),
    [
        ("Call me on 020 7946 0958 after six", ("GB",), "020 7946 0958", "*** **** **58", 0.85),
        ("Tel.: +44 20 7946 0958", (), "+44 20 7946 0958", "+** ** **** **58", 0.9),
        ("Handy: +61 491 570 156", (), "+61 491 570 156", "+** *** *** *56", 0.9),
        ("mobile 0491 570 156", ("AU",), "0491 570 156", "**** *** *56", 0.85),
        ("Telefon 030 23125123", ("DE",), "030 23125123", "*** ******23", 0.85),
        ("appelle-moi au 01 99 00 12 34", ("FR",), "01 99 00 12 34", "** ** ** ** 34", 0.85),
        ("WhatsApp +33 1 99 00 12 34 !", (), "+33 1 99 00 12 34", "+** * ** ** ** 34", 0.9),
        ("電話: +44 161 496 0123", (), "+44 161 496 0123", "+** *** *** **23", 0.9),
        ("020 7946 0958 (office)", ("GB",), "020 7946 0958", "*** **** **58", 0.85),
        ("Fax: (0161) 496-0123", ("GB",), "(0161) 496-0123", "(****) ***-**23", 0.85),
        ("Tel 0044 20 7946 0958", (), "0044 20 7946 0958", "**** ** **** **58", 0.9),
        (
            "Tel. 020 7946 0958 ext. 12",
            ("GB",),
            "020 7946 0958 ext. 12",
            "*** **** **58 ext. **",
            0.85,
        ),
        ("Tel: 02079460958", ("GB",), "02079460958", "*********58", 0.7),
        # valid and written like a phone number, no phone word: likely, not certain
        ("see 020 7946 0958 for details", ("GB",), "020 7946 0958", "*** **** **58", 0.55),
        # an unvalidated number next to a phone word: likely
        ("Phone:\n+41 (0)96 471 07 95", (), "+41 (0)96 471 07 95", "+** (*)** *** ** 95", 0.55),
    ],
)
def test_true_positives(
    text: str, regions: tuple[str, ...], matched: str, redacted: str, min_conf: float
) -> None:
    found = find("phone", text, TextContext(regions=regions))
    assert [text[m.start : m.end] for m in found] == [matched]
    assert found[0].redacted == redacted
    assert found[0].confidence >= min_conf
    assert_hides(matched.split(" ext", maxsplit=1)[0], found[0].redacted, 2)


def test_confidence_orders_the_evidence() -> None:
    def conf(text: str) -> float:
        (m,) = find("phone", text, GB)
        return m.confidence

    with_word = conf("phone 020 7946 0958")
    formatted = conf("see 020 7946 0958")
    bare = conf("see 02079460958")
    assert with_word > formatted > bare
    assert bare < 0.5  # a bare digit run is an id until a phone word says otherwise
    assert conf("see +44 20 7946 0958") > formatted  # a country code is phone formatting


def test_fictional_555_numbers_are_found_but_low() -> None:
    for text in ("call (201) 555-0123", "Tel: +1 201-555-0199"):
        (m,) = find("phone", text, TextContext(regions=("US",)))
        assert m.confidence <= 0.2
        assert m.redacted.endswith(text[-2:])


def test_regions_decide_national_numbers() -> None:
    text = "see 01 99 00 12 34"
    assert spans("phone", text, TextContext(regions=("FR",))) == ["01 99 00 12 34"]
    assert spans("phone", text, TextContext(regions=("US",))) == []
    # without regions the defaults apply (France is among them)
    assert "FR" in DEFAULT_REGIONS
    assert spans("phone", text) == ["01 99 00 12 34"]


@pytest.mark.parametrize(
    "text",
    [
        # ISBNs, with and without the prefix; Presidio reports the bare one as a phone number
        "ISBN 0-306-40615-2",
        "0-306-40615-2",
        "ISBN-13: 978-0-306-40615-7",
        "9780306406157",
        "ISBN 0-8044-2957-X",
        "0-8044-2957-X",
        "{{cite book |title=Example |isbn=0-306-40615-2 |pages=12\u201334 |year=1999}}",
        "{{cite journal |journal=Example |id=1234567890 |pages=1234-1256 |date=2024-05-05}}",
        "{{Literatur |Autor=Example |Titel=Beispiel |Jahr=1999 |ISBN=3-598-21500-2}}",
        "ISSN 0317-8471",
        "doi:10.1000/1820000",
        "https://doi.org/10.1038/nphys1170",
        "{{doi|10.1093/ajae/aaq063}}",
        # dates and year ranges
        "2024-05-05",
        "05.05.2024",
        "on 5/12/1990 the council met",
        "rv do verze z 22. 1. 2026, 14:15",
        "1999\u20132004",
        "1999-2004",
        "(1939 1945)",
        "Date: 1978-04-13 12:20:39",
        # coordinates and other decimals
        "{{coord|51.5074|-0.1278|display=title}}",
        "40.712776, -74.005974",
        "51°30\u203226\u2033N 0°7\u203239\u2033W",
        # revision, page and other ids
        "https://en.wikipedia.org/w/index.php?title=Example&oldid=1234567890",
        "[[Special:Diff/1234567890|diff]]",
        "Undid revision 1234567890 by [[Special:Contributions/Example|Example]]"
        " ([[User talk:Example|talk]])",
        "[[Special:PermanentLink/1234567890]]",
        "Reverted edits by 203.0.113.7 (talk) to last version by Example",
        "[[File:Emperor Goose (6928329036).jpg]] added to category",
        "File:Example survey 32 425 5384 1 bw 2024.tif",
        "Warning [[Special:Contributions/~2026-27237-36|~2026-27237-36]] - #1",
        "~2026-12345-67",
        # counts, amounts, versions
        "1,234,567 inhabitants",
        "1.234.567 Einwohner",
        "$1 234 567",
        "version 10.0.19041.1234",
        "203.0.113.7",
        # other identifiers by their label
        "SSN: 536-22-1476",
        "my driver's license number is 2270-66-1551",
        "order #1234567890",
        "card 4111 1111 1111 1111",
        # a house number is not a phone number
        "billing address: 03262 2437 Main St Suite 442",
    ],
)
def test_wiki_text_is_not_a_phone_number(text: str) -> None:
    assert spans("phone", text, WIKI) == []


def test_thousands_grouped_counts_stay_below_the_default_threshold() -> None:
    found = find("phone", "the city had 2 345 678 people", WIKI)
    assert all(m.confidence < 0.5 for m in found)


def test_several_numbers_in_a_signature_block() -> None:
    text = "Example Ltd\nMobile: 0491 570 156\nDesk: +44 20 7946 0958\nFax: 030 23125123"
    found = find_phones(text, ("AU", "DE"))
    assert [text[m.start : m.end] for m in found] == [
        "0491 570 156",
        "+44 20 7946 0958",
        "030 23125123",
    ]
    assert all(m.confidence >= 0.85 for m in found)
    for m in found:
        assert_hides(text[m.start : m.end], m.redacted, 2)


def test_empty_and_digitless_text() -> None:
    assert find("phone", "") == []
    assert find("phone", "Reverted edits by Example (talk) to last version by Other") == []


@pytest.mark.parametrize(
    ("text", "spans"),
    [
        ("call +44 seven seven zero zero 900123 tonight", ["+44 seven seven zero zero 900123"]),
        ("ring oh two oh seven nine four six oh one four seven",
         ["oh two oh seven nine four six oh one four seven"]),
        ("phone 020 seven nine four six zero one four seven",
         ["020 seven nine four six zero one four seven"]),
    ],
)  # fmt: skip
def test_numbers_spelled_out_in_words(text: str, spans: list[str]) -> None:
    """Defect 9.10: '+44 seven seven zero zero 900123' raised nothing."""
    found = PhoneRecognizer().find(text, TextContext(regions=("GB",)))
    assert [text[m.start : m.end] for m in found] == spans
    assert all(m.confidence >= 0.6 for m in found)
    assert all(not any(w in m.redacted for w in ("seven", "zero", "oh")) for m in found)


@pytest.mark.parametrize(
    "text",
    ["one of the two photos, three captions", "oh well, one two three", "I count one, two, three"],
)
def test_counting_in_words_is_not_a_phone_number(text: str) -> None:
    assert [m for m in PhoneRecognizer().find(text, TextContext()) if m.confidence >= 0.6] == []
