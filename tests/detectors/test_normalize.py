from __future__ import annotations

import pytest

from detectors.normalize import STEPS, normalize, tokenize

ALL = STEPS


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("You IDIOT!", "you idiot!"),  # a trailing "!" is punctuation, not an "i"
        ("1d10t", "idiot"),
        ("$h1t", "shit"),
        ("a$$hole", "asshole"),
        ("k.i.l.l yourself", "kill yourself"),
        ("k i l l you", "kill you"),
        ("іdіöt", "idiot"),  # Cyrillic і and an umlaut
        ("ＩＤＩＯＴ", "idiot"),  # fullwidth
        ("Straße", "strasse"),
        ("in 1990 he was 25", "in 1990 he was 25"),  # numbers stay numbers
        ("A1 road", "ai road"),
        ("i\u0334d\u0334i\u0334o\u0334t\u0334", "idiot"),  # zalgo: combining marks written apart
        ("غَبِي", "غبي"),  # Arabic harakat
        ("غـبـي", "غبي"),  # Arabic tatweel
        ("אִידְיוֹט", "אידיוט"),  # Hebrew niqqud
    ],
)
def test_full_profile(text: str, expected: str) -> None:
    assert normalize(text, ALL).text == expected


def test_offsets_map_back_to_the_original() -> None:
    text = "Hey ＩＤＩＯＴ, k.i.l.l Straße"
    n = normalize(text, ALL)
    for word in ("idiot", "kill", "strasse"):
        start = n.text.index(word)
        s, e = n.original_span(start, start + len(word))
        assert text[s:e] in ("ＩＤＩＯＴ", "k.i.l.l", "Straße")
    assert n.offsets is not None
    assert n.offsets[-1] == len(text)


def test_steps_are_chosen_per_condition() -> None:
    assert normalize("ІDIOT", ()).text == "ІDIOT"
    assert normalize("ІDIOT", ("casefold",)).text == "іdiot"
    assert normalize("1d10t", ("casefold",)).text == "1d10t"


def test_tokenize() -> None:
    assert [t for t, _s, _e in tokenize("you're a m oron_x")] == [
        "you",
        "re",
        "a",
        "m",
        "oron",
        "x",
    ]
