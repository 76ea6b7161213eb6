"""The language of a text: the wiki's, unless the text plainly is another."""

from __future__ import annotations

import pytest

from detectors.language import language_label, text_language, wiki_language


@pytest.mark.parametrize(
    ("wiki", "server_name", "language"),
    [
        ("dewiki", None, "de"),
        ("enwiktionary", None, "en"),
        ("zh_yuewiki", None, "yue"),
        ("simplewiki", None, "en"),
        ("be_x_oldwiki", None, "be"),
        ("nowiki", None, "nb"),
        ("commonswiki", None, None),
        ("wikidatawiki", None, None),
        ("metawiki", None, None),
        ("specieswiki", None, None),
        ("mediawikiwiki", None, None),
        ("testwiki", None, None),
        ("dewikimedia", None, None),  # a chapter's wiki: no content language of its own
        (None, "fr.wikipedia.org", "fr"),
        (None, "commons.wikimedia.org", None),
        (None, "evil.example.org", None),
        (None, None, None),
    ],
)
def test_a_wikis_language(wiki: str | None, server_name: str | None, language: str | None) -> None:
    assert wiki_language(wiki, server_name) == language


def test_the_wikis_language_stands_unless_the_text_plainly_is_another() -> None:
    german = "Du bist ein kompletter Idiot und solltest hier nie wieder etwas bearbeiten"
    english = "You are a complete idiot and should never edit anything on this page again"
    assert text_language(german, "de") == "de"
    assert text_language(english, "de") == "en", "an English comment on dewiki is English"
    assert text_language("Du Idiot", "en") == "en", "too short to overrule the wiki"
    assert text_language(None, "fr") == "fr"
    assert text_language("", None) is None


def test_a_multilingual_wiki_asks_the_identifier_or_says_it_does_not_know() -> None:
    assert text_language("Ты полный идиот, больше никогда не редактируй эту страницу", None) == "ru"
    assert text_language("너는 정말 바보야 다시는 이 문서를 편집하지 마라 알겠어", None) == "ko"
    assert text_language("ok 12 34 56 --", None) is None, "no letters to go by"
    # an Egyptian Arabic guess is Arabic to the rules
    assert text_language("انت غبي جدا ولا تعرف اي شيء عن هذا الموضوع يا اخي", None) == "ar"


def test_labels_are_bounded_whatever_a_text_says() -> None:
    assert language_label("de") == "de"
    assert language_label(None) == "none"
    assert language_label("xx-evil\nlabel") == "other"
