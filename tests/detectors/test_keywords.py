from __future__ import annotations

from detectors.keywords import KeywordIndex, is_substring_keyword, phrase_tokens


def _index(**lists: list[str]) -> tuple[KeywordIndex, dict[str, int]]:
    idx = KeywordIndex()
    ids = {}
    for i, (name, words) in enumerate(lists.items()):
        ids[name] = i
        for w in words:
            idx.add(phrase_tokens(w), i)
    return idx, ids


def _hits(idx: KeywordIndex, text: str) -> dict[int, list[str]]:
    return {c: [text[s:e] for s, e in spans] for c, spans in idx.match_text(text).items()}


def test_words_phrases_and_obfuscation() -> None:
    idx, ids = _index(insult=["idiot", "ass", "moron", "piece of shit"], threat=["kill yourself"])
    assert _hits(idx, "you idiot") == {ids["insult"]: ["idiot"]}
    assert _hits(idx, "what a piece of shit, kill yourself") == {
        ids["insult"]: ["piece of shit"],
        ids["threat"]: ["kill yourself"],
    }
    assert _hits(idx, "idiooooot") == {ids["insult"]: ["idiooooot"]}
    assert _hits(idx, "asssss") == {ids["insult"]: ["asssss"]}
    assert _hits(idx, "as soon as") == {}, "squeezing must not turn 'ass' into 'as'"
    assert _hits(idx, "you m oron") == {ids["insult"]: ["m oron"]}
    assert _hits(idx, "you i diot") == {}, "'i' is a word: not glued to its neighbour"
    assert _hits(idx, "f*ck you, you m*ron") == {ids["insult"]: ["m*ron"]}
    assert _hits(idx, "idiomatic passes") == {}


def test_lookup_cost_does_not_depend_on_the_list() -> None:
    idx, _ = _index(big=[f"word{i}" for i in range(10_000)])
    assert idx.size == 10_000
    assert _hits(idx, "this has word9999 in it") == {0: ["word9999"]}


def test_scripts_without_spaces_are_matched_as_substrings() -> None:
    assert is_substring_keyword("バカ")
    assert is_substring_keyword("傻逼")
    assert not is_substring_keyword("idiot")
    assert not is_substring_keyword("идиот")
