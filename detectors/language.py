"""The language of an event's text: a fact rules can use, shown in alerts, counted in metrics.

A text's language is its wiki's (``dewiki``, ``de.wikipedia.org`` -> ``de``), unless the
text plainly is in another one; a wiki without a language (Commons, Wikidata, Meta,
species, MediaWiki, Wikifunctions) leaves it to a language identifier. "Plainly" is
measured, not guessed: the identifier (py3langid, whose model ships inside its wheel and
loads offline) must be sure (probability ``_SURE``) of a text with at least
``_MIN_LETTERS`` letters. Below that the wiki's language stands, or, on a multilingual wiki,
the language is unknown (None): rcwatch says it cannot judge, it does not guess.

Codes are the wikis' own (ISO 639-1 where one exists: ``de``, ``zh``), with the
identifier's regional and dialect codes folded into the language a wiki and a rule would
name (``arz`` Egyptian Arabic -> ``ar``).

Pure: the identifier is a fixed model, loaded once; answers are memoised per text (the
engine, the alert builder and the metrics ask about the same text).
"""

from __future__ import annotations

import functools
import re
import threading
from typing import Any

from detectors.base import DetectionContext, field_text
from detectors.event import RecentChange

__all__ = ["MAJOR_LANGUAGES", "event_language", "language_label", "text_language", "wiki_language"]

# the content projects' database-name suffixes: what comes before one is the language
_PROJECT_SUFFIXES = (
    "wiktionary",
    "wikibooks",
    "wikinews",
    "wikiquote",
    "wikisource",
    "wikiversity",
    "wikivoyage",
    "wiki",
)
# their hosts' second labels (dewiki is de.wikipedia.org)
_PROJECT_DOMAINS = frozenset(
    "wikipedia" if suffix == "wiki" else suffix for suffix in _PROJECT_SUFFIXES
)
# a language code as the wikis write them: 2-3 letters, maybe with subtags (zh-yue)
_CODE = re.compile(r"[a-z]{2,3}(?:-[a-z]+)*")
# wikis whose code is not the language's, or names a variant rules would not
_WIKI_CODES = {
    "simple": "en",
    "zh-yue": "yue",
    "zh-min-nan": "nan",
    "zh-classical": "lzh",
    "be-x-old": "be",
    "be-tarask": "be",
    "nds-nl": "nds",
    "no": "nb",
}
# the identifier's codes folded into the language a wiki and a rule name
_IDENTIFIED = {
    "arz": "ar",
    "ary": "ar",
    "arq": "ar",
    "acm": "ar",
    "apc": "ar",
    "ajp": "ar",
    "aeb": "ar",
    "wuu": "zh",
    "no": "nb",
}

_MIN_LETTERS = 25  # fewer (a syllable or ideograph counts 3): too little to go by
_SURE = 0.95  # the identifier's probability that overrides a wiki's language
_SURE_WITHOUT_WIKI = 0.5  # on a multilingual wiki: the best guess, if it is a guess at all
_READ_CHARS = 2000  # the most of a text the identifier reads (a language shows early)


@functools.lru_cache(maxsize=4096)  # a thousand wikis; asked once per event
def wiki_language(wiki: str | None, server_name: str | None = None) -> str | None:
    """The content language of a wiki: from its database name (``dewiki``, ``zh_yuewiki``),
    else from its host (``de.wikipedia.org``). None for multilingual and unknown wikis."""
    if wiki:
        name = wiki.strip().lower()
        for suffix in _PROJECT_SUFFIXES:
            if name.endswith(suffix) and len(name) > len(suffix):
                return _code(name[: -len(suffix)].replace("_", "-"))
        return None
    if server_name:
        parts = server_name.strip().lower().split(".")
        if len(parts) == 3 and parts[1] in _PROJECT_DOMAINS and parts[2] == "org":
            return _code(parts[0])
    return None


def _code(prefix: str) -> str | None:
    if prefix in _WIKI_CODES:
        return _WIKI_CODES[prefix]
    return prefix if _CODE.fullmatch(prefix) else None


def text_language(text: str | None, wiki_lang: str | None) -> str | None:
    """The language of ``text`` written on a wiki whose language is ``wiki_lang``."""
    if not text:
        return wiki_lang
    identified = _identify(text[:_READ_CHARS])
    if identified is None:
        return wiki_lang
    code, probability = identified
    if wiki_lang is None:
        return code if probability >= _SURE_WITHOUT_WIKI else None
    return code if probability >= _SURE else wiki_lang


def event_language(
    change: RecentChange, ctx: DetectionContext, field: str | None = None
) -> str | None:
    """The language of what an event says: of the ``field``'s text when given (an alert's
    evidence), else of the added text, else the wiki's. A summary is identified only when
    asked for by field: most summaries are short or machine-written (Wikidata's), and
    identifying every one would cost more than the rest of an event's work."""
    wiki = wiki_language(change.wiki, change.server_name)
    if field is not None:
        return text_language(field_text(change, ctx, field), wiki)
    return text_language(ctx.added_text, wiki) if ctx.added_text else wiki


_LETTER = re.compile(r"[^\W\d_]")


@functools.lru_cache(maxsize=8192)
def _identify(text: str) -> tuple[str, float] | None:
    weight = 0  # letters, a syllable or ideograph (Hangul, kana, CJK) counting three
    for m in _LETTER.finditer(text):
        weight += 3 if m.group() >= "\u1100" else 1
        if weight >= _MIN_LETTERS:
            break
    else:
        return None  # fewer letters than it takes to tell languages apart
    code, probability = _identifier().classify(text)
    return _IDENTIFIED.get(code, code), float(probability)


_lock = threading.Lock()
_model: Any = None


def _identifier() -> Any:
    """py3langid's model (loaded on first use: ~0.3 s, ~30 MB with NumPy)."""
    global _model  # noqa: PLW0603 - one read-only model per process
    if _model is None:
        with _lock:
            if _model is None:
                from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

                _model = LanguageIdentifier.from_modelpath(MODEL_DIR / MODEL_FILE, norm_probs=True)
    return _model


# The languages of the largest wikis: metric labels (anything else is "other", an unknown
# language "none": bounded, whatever a text says), and what coverage reports are about.
MAJOR_LANGUAGES = frozenset(
    [
        "en",
        "de",
        "fr",
        "es",
        "it",
        "nl",
        "pl",
        "pt",
        "ru",
        "uk",
        "sv",
        "cs",
        "fi",
        "hu",
        "ro",
        "tr",
        "ar",
        "fa",
        "he",
        "hi",
        "bn",
        "ja",
        "ko",
        "zh",
        "id",
        "vi",
        "th",
        "ms",
        "ca",
        "eu",
        "gl",
        "da",
        "nb",
        "el",
        "bg",
        "sr",
        "hr",
        "sl",
        "sk",
        "lt",
        "lv",
        "et",
        "ur",
        "ta",
    ]
)


def language_label(code: str | None) -> str:
    """``code`` as a metric label from a fixed set."""
    if code is None:
        return "none"
    return code if code in MAJOR_LANGUAGES else "other"
