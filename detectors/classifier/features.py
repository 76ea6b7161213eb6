"""What a text classifier sees of a text: the one definition training and scoring share.

A text becomes tokens (lowercased, letters repeated three or more times squeezed to two,
``[^\\W_]+`` words with an inner apostrophe kept, identity terms dropped), and the tokens
become two blocks of binary features (below). Tokenizer 2 (``FeatureConfig.tokenizer``,
recorded in each model) differs from tokenizer 1 in three ways, for languages beyond
English:

- combining marks belong to the word they are in (Devanagari and Thai vowel signs, Hebrew
  and Arabic points): tokenizer 1 cut "नमस्ते" into "नमस" and "त";
- the text is NFKC-normalised (full-width Latin and punctuation, half-width katakana,
  ligatures: the forms a filter evader or an input method produces read as the plain ones;
  explanations normalise word by word, so the rare character that NFKC turns into letters,
  such as "™", can make an explanation's tokens differ from the score's);
- scripts written without spaces between words (Han, kana, Thai, Lao, Khmer, Myanmar,
  Tibetan) become overlapping windows of ``unspaced_window`` characters: without it a
  Chinese sentence was one token, a word feature no other text shares, and each
  character-gram weighed as little as one among the hundreds of the whole sentence. With
  windows of two, "你是傻逼" is "你是", "是傻", "傻逼", their pairs (character trigrams)
  and the grams of each window (the single characters, at a window's edge).

- words: every distinct token (``w:you``) and every distinct pair of neighbours
  (``b:you idiot``);
- characters: for every distinct token, its distinct 2- to 5-grams padded with spaces
  (``c: id``, ``c:idi``, ...), which carry misspellings, inflections and look-alikes; a
  gram two different tokens share counts twice.

A word feature present has the value ``1/sqrt(n)``, ``n`` being the number of distinct word
features the text generated; a character feature has ``k/sqrt(m)``, ``k`` being the number
of distinct tokens that contain it and ``m`` the sum of their gram counts (in the model's
vocabulary or not), so that a long text and a short one weigh alike. A token's character
part of the score is then one sum per distinct token, which scoring caches. Identity
terms (``gay``, ``muslim``, ``woman``, ...) are dropped before anything else: naming a
group can then carry no weight either way, which is what keeps "I am a gay Muslim woman"
from scoring as an attack.

Pure functions of the text and the configuration; no I/O.
"""

from __future__ import annotations

import functools
import itertools
import operator
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

__all__ = ["FeatureConfig", "char_grams", "feature_sets", "tokens"]

_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
_RUN3 = re.compile(r"(.)\1{2,}")
TOKENIZERS = (1, 2)
# scripts written without spaces between words (tokenizer 2 windows them)
_UNSPACED_CLASS = (
    "\u0e00-\u0eff"  # Thai, Lao
    "\u0f00-\u0fff"  # Tibetan
    "\u1000-\u109f"  # Myanmar
    "\u1780-\u17ff"  # Khmer
    "\u3040-\u30ff\u31f0-\u31ff"  # hiragana, katakana
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # Han
    "\uff66-\uff9f"  # half-width katakana
    "\U00020000-\U0003134f"  # Han, supplementary planes
)
_UNSPACED = re.compile(f"[{_UNSPACED_CLASS}]")
_UNSPACED_SPLIT = re.compile(f"([{_UNSPACED_CLASS}]+)")


@dataclass(frozen=True)
class FeatureConfig:
    min_n: int = 2  # character n-grams, shortest
    max_n: int = 5  # and longest
    word_bigrams: bool = True
    identity_terms: frozenset[str] = field(default_factory=frozenset)
    # the most of one text a score reads (a talk comment is a few hundred characters)
    max_chars: int = 20_000
    tokenizer: int = 1  # see the module docstring; a model records the one it was trained with
    unspaced_window: int = 2  # tokenizer 2: characters per window of an unspaced script

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "tokens": "lowercase; letters repeated 3+ times squeezed to 2; [^\\W_]+('[^\\W_]+)?",
            "char_ngrams": [self.min_n, self.max_n],
            "word_bigrams": self.word_bigrams,
            "max_chars": self.max_chars,
            "identity_terms": sorted(self.identity_terms),
        }
        if self.tokenizer != 1:
            out["tokenizer"] = self.tokenizer
            out["tokens"] = (
                "lowercase; letters repeated 3+ times squeezed to 2; words with their combining "
                "marks; NFKC; unspaced scripts in overlapping windows"
            )
            out["unspaced_window"] = self.unspaced_window
        return out

    @classmethod
    def from_json(cls, data: dict[str, object]) -> FeatureConfig:
        grams = data.get("char_ngrams", [2, 5])
        terms = data.get("identity_terms", [])
        max_chars = data.get("max_chars", 20_000)
        if not (
            isinstance(grams, list)
            and len(grams) == 2
            and all(isinstance(g, int) and not isinstance(g, bool) and g > 0 for g in grams)
            and grams[0] <= grams[1]
        ):
            raise ValueError("features.char_ngrams must be [shortest, longest]")
        if not isinstance(terms, list) or not all(isinstance(t, str) for t in terms):
            raise ValueError("features.identity_terms must be a list of words")
        if not isinstance(max_chars, int) or isinstance(max_chars, bool) or max_chars < 1:
            raise ValueError("features.max_chars must be a positive integer")
        tokenizer = data.get("tokenizer", 1)
        if tokenizer not in TOKENIZERS or isinstance(tokenizer, bool):
            raise ValueError(
                f"features.tokenizer {tokenizer!r} is not one this rcwatch knows {TOKENIZERS}"
            )
        window = data.get("unspaced_window", 2)
        if not isinstance(window, int) or isinstance(window, bool) or window < 1:
            raise ValueError("features.unspaced_window must be a positive integer")
        return cls(
            min_n=grams[0],
            max_n=grams[1],
            word_bigrams=bool(data.get("word_bigrams", True)),
            identity_terms=frozenset(t.lower() for t in terms),
            max_chars=max_chars,
            tokenizer=int(tokenizer),
            unspaced_window=window,
        )


@functools.cache
def _marks() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Tokenizer 2's combining marks, and its words: letters and digits with the marks
    among them. Built from the Unicode database on first use (20 ms, not at import), for
    the Basic Multilingual Plane only: a class reaching beyond it is searched range by
    range, thirty times slower."""
    ranges: list[str] = []
    start = None
    for cp in range(0x10000):
        mark = unicodedata.category(chr(cp))[0] == "M"
        if mark and start is None:
            start = cp
        elif not mark and start is not None:
            ranges.append(f"{re.escape(chr(start))}-{re.escape(chr(cp - 1))}")
            start = None
    marks = "".join(ranges)
    word = f"[^\\W_](?:[^\\W_]|[{marks}])*"
    return re.compile(f"[{marks}]"), re.compile(f"{word}(?:'{word})?")


def _pieces(word: str, window: int) -> list[tuple[int, str]]:
    """Tokenizer 2's tokens from one lowercased word that is not ASCII, each with its
    offset in the normalised word: NFKC, and windows over its unspaced scripts."""
    word = unicodedata.normalize("NFKC", word).lower()
    if not _UNSPACED.search(word):
        return [(0, word)]
    out: list[tuple[int, str]] = []
    at = 0
    for piece in _UNSPACED_SPLIT.split(word):
        if len(piece) > window and _UNSPACED.match(piece):
            out.extend((at + i, piece[i : i + window]) for i in range(len(piece) - window + 1))
        elif piece:
            out.append((at, piece))
        at += len(piece)
    return out


def _words2(text: str) -> re.Pattern[str]:
    """The word pattern for ``text``: the one that keeps combining marks where there are
    some, the plain one (the same words, faster) where there are none."""
    mark, words = _marks()
    return words if mark.search(text) else _TOKEN


def _spans2(text: str, config: FeatureConfig) -> Iterator[tuple[int, int, str]]:
    """Tokenizer 2: (start, end, token) for every token, identity terms included; a piece
    of a word has its own offsets where normalisation kept the word's length, the word's
    where it did not."""
    window = config.unspaced_window
    text = text[: config.max_chars]
    for m in _words2(text).finditer(text):
        word = m.group().lower()
        if _RUN3.search(word):
            word = _RUN3.sub(r"\1\1", word)
        start, end = m.span()
        if word.isascii():
            yield start, end, word
            continue
        pieces = _pieces(word, window)
        if len(pieces) == 1:
            yield start, end, pieces[0][1]
            continue
        exact = len(unicodedata.normalize("NFKC", word).lower()) == len(word) == end - start
        for at, piece in pieces:
            yield (start + at, start + at + len(piece), piece) if exact else (start, end, piece)


def _windows(words: Iterable[str], window: int) -> list[str]:
    """``words`` with their runs of unspaced scripts cut into windows (as ``_pieces``
    does, for words already normalised)."""
    out: list[str] = []
    for w in words:
        if w.isascii() or not _UNSPACED.search(w):
            out.append(w)
            continue
        for piece in _UNSPACED_SPLIT.split(w):
            if len(piece) > window and _UNSPACED.match(piece):
                if window == 2:  # the usual case, in C: each character with the next
                    out.extend(map(operator.add, piece[:-1], piece[1:]))
                else:
                    out.extend(piece[i : i + window] for i in range(len(piece) - window + 1))
            elif piece:
                out.append(piece)
    return out


def _tokens2(text: str, config: FeatureConfig) -> list[str]:
    t = text[: config.max_chars]
    if not t.isascii():
        if not unicodedata.is_normalized("NFKC", t):
            t = unicodedata.normalize("NFKC", t)
        t = t.lower()
        if _RUN3.search(t):
            t = _RUN3.sub(r"\1\1", t)
        words = _words2(t).findall(t)
        found = _windows(words, config.unspaced_window) if _UNSPACED.search(t) else words
    else:
        t = t.lower()
        if _RUN3.search(t):
            t = _RUN3.sub(r"\1\1", t)
        found = _TOKEN.findall(t)
    if config.identity_terms:
        drop = config.identity_terms
        found = [w for w in found if w not in drop]
    return found


def tokens(text: str, config: FeatureConfig) -> list[str]:
    """The tokens of ``text`` (its first ``max_chars``), identity terms dropped."""
    if config.tokenizer == 2:
        return _tokens2(text, config)
    t = text[: config.max_chars].lower()
    if _RUN3.search(t):
        t = _RUN3.sub(r"\1\1", t)
    found = _TOKEN.findall(t)
    if config.identity_terms:
        drop = config.identity_terms
        found = [w for w in found if w not in drop]
    return found


def token_spans(text: str, config: FeatureConfig) -> list[tuple[int, int, str]]:
    """(start, end, token) in ``text`` for each token ``tokens`` yields, for explanations:
    the same tokens, with offsets into the original text."""
    if config.tokenizer == 2:
        drop = config.identity_terms
        return [s for s in _spans2(text, config) if s[2] not in drop]
    out = []
    for m in _TOKEN.finditer(text[: config.max_chars]):
        word = m.group().lower()
        if _RUN3.search(word):
            word = _RUN3.sub(r"\1\1", word)
        if word not in config.identity_terms:
            out.append((m.start(), m.end(), word))
    return out


def char_grams(token: str, config: FeatureConfig) -> frozenset[str]:
    """The distinct character n-grams of one token, padded with a space on each side."""
    padded = f" {token} "
    n = len(padded)
    return frozenset(
        [
            "c:" + padded[i : i + k]
            for k in range(config.min_n, config.max_n + 1)
            for i in range(n - k + 1)
        ]
    )


def feature_sets(toks: Iterable[str], config: FeatureConfig) -> tuple[set[str], Counter[str]]:
    """The distinct word features, and the character features with how many distinct
    tokens contain each (the reference definition; ``TextClassifier`` computes the same
    sums faster)."""
    seq = list(toks)
    words = {"w:" + w for w in seq}
    if config.word_bigrams:
        words.update(f"b:{a} {b}" for a, b in itertools.pairwise(seq))
    chars: Counter[str] = Counter()
    for w in set(seq):
        chars.update(char_grams(w, config))
    return words, chars
