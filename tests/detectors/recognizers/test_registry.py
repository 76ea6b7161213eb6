"""The registry, the wiki-to-region table, and the contract every recognizer keeps.

The contract: ``kind`` is the registry key; ``prefilter`` is an RE2 pattern (so the rule
engine can fold all of them into one set) that matches every text in which ``find`` finds
something; ``find`` is pure and returns sorted, in-bounds spans whose redacted form never
repeats the match.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Iterator

import pytest
import re2

from detectors.recognizers import RECOGNIZERS, TextContext, regions_for_wiki
from detectors.recognizers.phone import DEFAULT_REGIONS
from tests.conftest import shared_data

KINDS = {
    "email",
    "phone",
    "credit_card",
    "iban",
    "us_ssn",
    "uk_nino",
    "aadhaar",
    "ip_address",
    "street_address",
    "date_of_birth",
}

# One text per kind that its recognizer finds (fictional or reserved values).
EXAMPLES = {
    "email": "write to jane.roe@example.org",
    "phone": "Tel. +44 20 7946 0958",
    "credit_card": "card 4111 1111 1111 1111",
    "iban": "IBAN GB82 WEST 1234 5698 7654 32",
    "us_ssn": "SSN 536-22-1476",
    "uk_nino": "NI number AB 12 34 56 C",
    "aadhaar": "Aadhaar 2345 6789 0124",
    "ip_address": "my IP is 203.0.113.7",
    "street_address": "she lives at 221B Baker Street",
    "date_of_birth": "born 12 May 1990",
}


def test_registry_holds_all_ten_kinds() -> None:
    assert set(RECOGNIZERS) == KINDS
    for kind, recognizer in RECOGNIZERS.items():
        assert recognizer.kind == kind


def test_prefilters_compile_in_re2_and_fold_into_one_set() -> None:
    rset = re2.Set.SearchSet(re2.Options())
    for recognizer in RECOGNIZERS.values():
        re2.compile(recognizer.prefilter)  # raises on lookarounds and backreferences
        rset.Add(recognizer.prefilter)
    rset.Compile()
    kinds = list(RECOGNIZERS)
    for kind, text in EXAMPLES.items():
        matched = {kinds[i] for i in rset.Match(text) or ()}
        assert kind in matched, (kind, text)
    assert not rset.Match("Reverted edits by Example (talk) to last version by Other")


def test_each_example_is_found_and_redacted() -> None:
    for kind, text in EXAMPLES.items():
        found = RECOGNIZERS[kind].find(text, TextContext())
        assert found, kind
        assert all(m.confidence >= 0.5 for m in found), kind
        for m in found:
            assert text[m.start : m.end] not in m.redacted


def test_prefilters_are_selective_on_edit_summaries() -> None:
    quiet = [
        "/* Early life */ copyedit",
        "Reverted edits by Example (talk) to last version by Other",
        "[[WP:AES|←]]Created page with '{{Infobox person}}'",
        "added [[Category:Living people]] using [[WP:HC|HotCat]]",
    ]
    for text in quiet:
        for kind, recognizer in RECOGNIZERS.items():
            assert re2.search(recognizer.prefilter, text) is None, (kind, text)


@pytest.mark.parametrize(
    ("wiki", "regions"),
    [
        ("dewiki", ("DE", "AT", "CH", "LI", "LU")),
        ("enwiktionary", ("US", "GB", "IN", "CA", "AU", "IE", "NZ", "ZA", "PH", "NG")),
        ("zh_yuewiki", ("HK", "MO")),
        ("frwikisource", ("FR", "BE", "CH", "CA", "LU", "MC", "SN", "CI", "MA")),
        ("jawiki", ("JP",)),
        ("ptwikivoyage", ("BR", "PT", "AO", "MZ")),
        ("commonswiki", ()),
        ("wikidatawiki", ()),
        ("metawiki", ()),
        ("specieswiki", ()),
        ("xxwiki", ()),
        ("", ()),
        (None, ()),
    ],
)
def test_regions_for_wiki(wiki: str | None, regions: tuple[str, ...]) -> None:
    assert regions_for_wiki(wiki) == regions


def test_region_table_uses_phone_regions() -> None:
    import phonenumbers

    supported = phonenumbers.SUPPORTED_REGIONS
    for wiki in ("enwiki", "dewiki", "frwiki", "eswiki", "arwiki", "zhwiki", "ruwiki", "sqwiki"):
        regions = regions_for_wiki(wiki)
        assert regions, wiki
        assert set(regions) <= supported, wiki
    assert set(DEFAULT_REGIONS) <= supported
    assert "UK" not in supported  # the trap FACTS.md warns about


def _shared_texts() -> Iterator[str]:
    presidio = shared_data("labeled", "presidio_synth_dataset_v2", "synth_dataset_v2.json.gz")
    for row in json.loads(gzip.decompress(presidio.read_bytes())):
        yield row["full_text"]
    jigsaw = shared_data("labeled", "jigsaw_toxic_subset", "jigsaw_subset_merged_dedup.csv.gz")
    with gzip.open(jigsaw, "rt", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            yield row["comment_text"]


def test_contract_holds_on_real_and_synthetic_text() -> None:
    """Over Presidio's synthetic PII sentences and real talk-page comments: whenever a
    recognizer finds something its prefilter matches, spans are sorted and in bounds, the
    redacted form does not contain the match, and a second run gives the same result."""
    ctx = TextContext(regions=regions_for_wiki("enwiki"), namespace=1)
    prefilters = {kind: re2.compile(r.prefilter) for kind, r in RECOGNIZERS.items()}
    texts = 0
    hits = 0
    for text in _shared_texts():
        texts += 1
        for kind, recognizer in RECOGNIZERS.items():
            found = recognizer.find(text, ctx)
            if not found:
                continue
            hits += len(found)
            assert prefilters[kind].search(text) is not None, (kind, text[:200])
            assert [m.start for m in found] == sorted(m.start for m in found)
            for m in found:
                assert 0 <= m.start < m.end <= len(text)
                assert 0.0 < m.confidence <= 1.0
                value = text[m.start : m.end]
                if len(value) >= 4:
                    assert value not in m.redacted, (kind, value, m.redacted)
            assert recognizer.find(text, ctx) == found
    assert texts > 3000 and hits > 500
