"""Text normalization for matching, with a map back to the original offsets.

A condition chooses its steps; the engine normalizes each field once per distinct profile:

- ``nfkc``: Unicode compatibility forms (fullwidth letters, ligatures, circled letters);
- ``casefold``: case-insensitive (``ß`` -> ``ss``);
- ``confusables``: look-alike letters from Cyrillic, Greek and symbols folded to Latin, and
  accents removed (Cyrillic ``i`` look-alikes and ``ö`` in ``idiöt`` -> ``idiot``), also marks
  written apart (zalgo text, Arabic harakat, Hebrew niqqud) and the Arabic tatweel;
- ``leet``: digits and symbols standing for letters (``1d10t`` -> ``idiot``, ``$h1t``);
- ``separators``: letters spaced or dotted out are joined (``k.i.l.l``, ``k i l l`` -> ``kill``).

Repeated-letter squeezing (``stuuupid``) is done by the keyword matcher, which tries the
squeezed forms of each token, so that it cannot turn ``ass`` into ``as``.

``normalize`` returns the text and ``offsets``: ``offsets[i]`` is the offset in the original
text of normalized character ``i`` (``offsets[len(text)]`` is the original length), so a match found
in normalized text can be reported, scrubbed and redacted at its original place.
"""

from __future__ import annotations

import re
import unicodedata
from typing import NamedTuple

__all__ = ["STEPS", "Normalized", "normalize", "tokenize"]

STEPS = ("nfkc", "casefold", "confusables", "leet", "separators")


class Normalized(NamedTuple):
    text: str
    offsets: list[int] | None  # None: offsets are unchanged (identity map)

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        if self.offsets is None:
            return start, end
        last = self.offsets[end - 1] + 1 if end > start else self.offsets[start]
        return self.offsets[start], last


# Look-alikes commonly used to dodge filters (Unicode's confusables.txt, the subset that
# maps onto Latin letters in running text).
_CONFUSABLES = str.maketrans(
    {
        # Cyrillic
        "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o",
        "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i",
        "ј": "j", "ԁ": "d", "ɡ": "g", "һ": "h", "ӏ": "l", "ԛ": "q", "ԝ": "w", "ь": "b",
        # Greek
        "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o",
        "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ς": "s",
        # symbols and letter-likes
        "ℓ": "l", "ı": "i", "ł": "l", "ø": "o", "đ": "d", "ħ": "h", "ŧ": "t", "ß": "ss",
        "æ": "ae", "œ": "oe", "þ": "th",
        # the Arabic tatweel only stretches a word: غـبـي is غبي
        "\u0640": "",
    }
)  # fmt: skip

_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "@": "a",
     "$": "s", "!": "i", "|": "i", "€": "e", "+": "t"}
)  # fmt: skip
# a run of word characters and leet symbols; only its core (from the first character that
# starts a word to the last letter or digit) is translated, and only if it holds a letter,
# so "idiot!" keeps its "!", "1990" stays a number and "$h1t" becomes "shit"
_LEET_RUN = re.compile(r"[\w@$!|+€]+")  # one greedy class: linear on any input
_LEET_CHARS = frozenset("0123456789@$!|+€")
_LEET_CORE = re.compile(r"[@$!|+€]*[^\W_].*[^\W_]|[^\W_]", re.S)


_LEET_NEAR_LETTER = re.compile(r"[^\W\d_][0-9@$!|+€]|[0-9@$!|+€][^\W\d_]")


def _leet(text: str) -> str:
    if not _LEET_NEAR_LETTER.search(text):
        return text  # no digit or symbol touches a letter: nothing to translate

    def fix(m: re.Match[str]) -> str:
        run = m.group()
        if _LEET_CHARS.isdisjoint(run):
            return run
        core = _LEET_CORE.search(run)
        if core is None or not any(c.isalpha() for c in core.group()):
            return run
        return run[: core.start()] + core.group().translate(_LEET) + run[core.end() :]

    return _LEET_RUN.sub(fix, text)


# single letters separated by one separator, at least four letters: "k.i.l.l", "k i l l"
_SPACED = re.compile(r"(?<![^\W_])(?:[^\W_][\s.\-_*·•,/\\]){3,}[^\W_](?![^\W_])")


def _nfkc_char(ch: str) -> str:
    return ch if ch < "\x80" else unicodedata.normalize("NFKC", ch)


def _strip_accents_char(ch: str) -> str:
    if ch < "\x80":
        return ch
    ch = ch.translate(_CONFUSABLES)
    if len(ch) != 1 or ch < "\x80":
        return ch
    if unicodedata.combining(ch):
        return ""  # a mark written apart: zalgo, Arabic harakat, Hebrew niqqud (אִידְיוֹט)
    decomposed = unicodedata.normalize("NFD", ch)
    base = "".join(c for c in decomposed if not unicodedata.combining(c))
    return base or ch


def _join_spaced(text: str, index: list[int] | None) -> tuple[str, list[int] | None]:
    if not _SPACED.search(text):
        return text, index
    idx = index if index is not None else list(range(len(text) + 1))
    parts: list[str] = []
    new_index: list[int] = []
    pos = 0
    for m in _SPACED.finditer(text):
        parts.append(text[pos : m.start()])
        new_index.extend(idx[pos : m.start()])
        for j in range(m.start(), m.end(), 2):
            parts.append(text[j])
            new_index.append(idx[j])
        pos = m.end()
    parts.append(text[pos:])
    new_index.extend(idx[pos:])
    return "".join(parts), new_index


_CHAR_CACHE: dict[tuple[bool, bool, bool], dict[str, str]] = {}


def _fold_chars(
    text: str, nfkc: bool, fold: bool, confusable: bool
) -> tuple[str, list[int] | None]:
    """NFKC, case folding and look-alike folding, memoized per character and applied with
    one ``str.translate`` (a C loop) over the text's distinct characters."""
    cache = _CHAR_CACHE.setdefault((nfkc, fold, confusable), {})
    table: dict[int, str] = {}
    one_for_one = True
    for ch in set(text):
        out = cache.get(ch)
        if out is None:
            out = ch
            if nfkc:
                out = _nfkc_char(out)
            if fold:
                out = out.casefold()
            if confusable:
                out = "".join(_strip_accents_char(c) for c in out)
            if len(cache) < 100_000:
                cache[ch] = out
        if out != ch:
            table[ord(ch)] = out
            one_for_one = one_for_one and len(out) == 1
    result = text.translate(table)
    if one_for_one:
        return result, None  # one character for one: offsets unchanged
    # some characters became several (ß -> ss, … -> ...): map output offsets back, in runs
    expanding = {chr(k) for k, v in table.items() if len(v) != 1}
    offsets: list[int] = []
    pos = 0
    for m in re.finditer("[" + re.escape("".join(sorted(expanding))) + "]", text):
        i = m.start()
        offsets.extend(range(pos, i))
        offsets.extend([i] * len(table[ord(text[i])]))
        pos = i + 1
    offsets.extend(range(pos, len(text) + 1))
    return result, offsets


def normalize(text: str, steps: tuple[str, ...]) -> Normalized:
    """Apply ``steps`` (in the canonical order of ``STEPS``) to ``text``."""
    offsets: list[int] | None = None
    nfkc, fold, confusable = "nfkc" in steps, "casefold" in steps, "confusables" in steps
    if text.isascii():
        if fold:
            text = text.lower()
    elif nfkc or fold or confusable:
        text, offsets = _fold_chars(text, nfkc, fold, confusable)
    if "leet" in steps:
        text = _leet(text)  # one character for one: offsets unchanged
    if "separators" in steps:
        text, offsets = _join_spaced(text, offsets)
    return Normalized(text, offsets)


_TOKEN = re.compile(r"[^\W_]+")


def tokenize(text: str) -> list[tuple[str, int, int]]:
    """Word tokens (letters and digits) with their offsets."""
    return [(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(text)]
