"""What a text classifier sees of a text: the one definition training and scoring share.

A text becomes tokens (lowercased, letters repeated three or more times squeezed to two,
``[^\\W_]+`` words with an inner apostrophe kept, identity terms dropped), and the tokens
become two blocks of binary features:

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

import itertools
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["FeatureConfig", "char_grams", "feature_sets", "tokens"]

_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
_RUN3 = re.compile(r"(.)\1{2,}")


@dataclass(frozen=True)
class FeatureConfig:
    min_n: int = 2  # character n-grams, shortest
    max_n: int = 5  # and longest
    word_bigrams: bool = True
    identity_terms: frozenset[str] = field(default_factory=frozenset)
    # the most of one text a score reads (a talk comment is a few hundred characters)
    max_chars: int = 20_000

    def to_json(self) -> dict[str, object]:
        return {
            "tokens": "lowercase; letters repeated 3+ times squeezed to 2; [^\\W_]+('[^\\W_]+)?",
            "char_ngrams": [self.min_n, self.max_n],
            "word_bigrams": self.word_bigrams,
            "max_chars": self.max_chars,
            "identity_terms": sorted(self.identity_terms),
        }

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
        return cls(
            min_n=grams[0],
            max_n=grams[1],
            word_bigrams=bool(data.get("word_bigrams", True)),
            identity_terms=frozenset(t.lower() for t in terms),
            max_chars=max_chars,
        )


def tokens(text: str, config: FeatureConfig) -> list[str]:
    """The tokens of ``text`` (its first ``max_chars``), identity terms dropped."""
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
