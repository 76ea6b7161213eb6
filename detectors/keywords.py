"""Keyword lists matched by token lookup: the cost grows with the text, not with the lists.

Every keyword (a word or a phrase) of every condition that shares a normalization profile
goes into one index: phrase (a tuple of tokens) -> condition ids. Matching walks the
text's tokens once and looks each position up for every phrase length in use. Besides the
token itself it tries the forms obfuscation produces:

- repeated letters squeezed (``stuuupid`` -> ``stupid``; ``asssss`` -> ``ass``): a run of
  three or more is tried as one letter and as two, so ``ass`` never becomes ``as``;
- a word split by a space (``m oron``, ``cu nt``): two neighbouring tokens are joined when
  one of them is at most two characters long and is not a common short word (``put a``
  must not become ``puta``);
- letters masked by ``*``, ``#`` or ``%`` (``f*ck``, ``sh#t``, ``motherf**kers``): a masked
  token is looked up against the keywords with the same letters around the mask.

Keywords in scripts written without spaces (Chinese, Japanese, Thai) cannot be found by
tokens; ``is_substring_keyword`` tells the compiler to match those as literals instead.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable

__all__ = ["KeywordIndex", "is_substring_keyword", "phrase_tokens"]

_RUN3 = re.compile(r"(.)\1{2,}")
_MASK_CHARS = "*#%"
# a word with letters masked out: f*ck, sh#t, motherf**kers
_MASK_RUN = re.compile(r"[\w*#%]+")  # linear: one character class, no backtracking
_MASK_TO_Q = str.maketrans({"*": "?", "#": "?", "%": "?"})
_WORD = re.compile(r"[^\W_]+")
# short words that must not be glued to a neighbour (en, de, fr, es, it, nl, pt)
_SHORT_WORDS = frozenset(
    {
        "a", "i", "o", "e", "u", "y", "an", "as", "at", "be", "by", "do", "go", "he",
        "if", "in", "is", "it", "me", "my", "no", "of", "oh", "on", "or", "so", "to", "up",
        "us", "we", "ok", "ya", "im", "am", "ad", "ah", "eh", "uh", "id", "ye", "pm", "tv",
        "uk", "eu", "vs", "ie", "eg", "da", "de", "du", "el", "en", "es", "et", "il", "la",
        "le", "ma", "mi", "ne", "ni", "se", "si", "su", "te", "tu", "un", "vi", "yo", "al",
        "ca", "ce", "je", "ja", "wo", "zu", "um", "ob", "er", "ab",
    }
)  # fmt: skip


def _squeezed(token: str) -> tuple[str, ...]:
    if not _RUN3.search(token):
        return ()
    return (_RUN3.sub(r"\1", token), _RUN3.sub(r"\1\1", token))


def is_substring_keyword(keyword: str) -> bool:
    for ch in keyword:
        if ch.isalpha() and ord(ch) > 0x2E7F:
            name = unicodedata.name(ch, "")
            if name.startswith(("CJK", "HIRAGANA", "KATAKANA", "THAI", "LAO", "KHMER", "MYANMAR")):
                return True
    return False


def phrase_tokens(keyword: str) -> tuple[str, ...]:
    return tuple(_WORD.findall(keyword))


def _masked_forms(word: str) -> list[str]:
    """``word`` with one or two interior letters replaced by ``?`` (the mask placeholder)."""
    if len(word) < 4 or not word.isalpha():
        return []
    inner = range(1, len(word) - 1)
    forms = [word[:i] + "?" + word[i + 1 :] for i in inner]
    forms += [word[:i] + "??" + word[i + 2 :] for i in range(1, len(word) - 2)]
    return forms


def _masked_tokens(text: str) -> list[tuple[str, int, int]]:
    """Words written with mask characters (``f*ck``), each mask as ``?``, with offsets."""
    out = []
    for m in _MASK_RUN.finditer(text):
        tok = m.group()
        if "*" not in tok and "#" not in tok and "%" not in tok:
            continue
        core = tok.strip("*#%_")
        if len(core) < 3 or not any(c in core for c in _MASK_CHARS):
            continue
        if not any(c.isalpha() for c in core):
            continue
        start = m.start() + len(tok) - len(tok.lstrip("*#%_"))
        out.append((core.translate(_MASK_TO_Q), start, start + len(core)))
    return out


class KeywordIndex:
    def __init__(self) -> None:
        self._masked: dict[str, list[int]] = defaultdict(list)
        self._single: dict[str, list[int]] = defaultdict(list)
        self._multi: dict[tuple[str, ...], list[int]] = defaultdict(list)
        self._starts: dict[str, list[int]] = defaultdict(list)  # first word -> phrase lengths
        self._lengths: set[int] = set()
        self.size = 0

    def add(self, phrase: tuple[str, ...], cond_id: int) -> None:
        if not phrase:
            return
        target = self._single[phrase[0]] if len(phrase) == 1 else self._multi[phrase]
        if cond_id not in target:
            target.append(cond_id)
            self.size += 1
            if len(phrase) == 1:
                for form in _masked_forms(phrase[0]):
                    ids = self._masked[form]
                    if cond_id not in ids:
                        ids.append(cond_id)
        if len(phrase) > 1:
            self._lengths.add(len(phrase))
            if len(phrase) not in self._starts[phrase[0]]:
                self._starts[phrase[0]].append(len(phrase))
                self._starts[phrase[0]].sort()

    def add_all(self, phrases: Iterable[tuple[str, ...]], cond_id: int) -> None:
        for p in phrases:
            self.add(p, cond_id)

    def match_text(self, text: str) -> dict[int, list[tuple[int, int]]]:
        """Condition id -> (start, end) offsets in ``text`` of its keywords' hits."""
        hits: dict[int, list[tuple[int, int]]] = {}
        if self._masked and any(c in text for c in _MASK_CHARS):
            for token, start, end in _masked_tokens(text):
                for c in self._masked.get(token, ()):
                    hits.setdefault(c, []).append((start, end))
        words = _WORD.findall(text)
        stretched = _RUN3.search(text) is not None  # any letter repeated 3+ times?
        found: list[tuple[int, int, int]] = []  # (first word, last word, condition)
        squeezes: dict[str, tuple[str, ...]] = {}
        single = self._single
        multi = self._multi
        starts = self._starts
        n = len(words)
        for i, tok in enumerate(words):
            ids = single.get(tok)
            if ids is None and stretched and len(tok) > 2 and not tok.isdigit():
                forms = squeezes.get(tok)
                if forms is None:  # a long text repeats its words: squeeze each once
                    forms = _squeezed(tok)
                    if len(squeezes) < 65_536:
                        squeezes[tok] = forms
                for form in forms:
                    ids = single.get(form)
                    if ids is not None:
                        break
            if ids is not None:
                found.extend((i, i, c) for c in ids)
            elif i + 1 < n:
                nxt = words[i + 1]
                short = tok if len(tok) <= len(nxt) else nxt
                if len(short) <= 2 and short not in _SHORT_WORDS and len(tok) + len(nxt) >= 4:
                    joined = single.get(tok + nxt)
                    if joined is not None:
                        found.extend((i, i + 1, c) for c in joined)
            lengths = starts.get(tok)
            if lengths is None:
                continue
            for length in lengths:
                if i + length > n:
                    break
                ids = multi.get(tuple(words[i : i + length]))
                if ids is not None:
                    found.extend((i, i + length - 1, c) for c in ids)
        if found:  # offsets only for texts with hits (rare): one more pass
            places = [m.span() for m in _WORD.finditer(text)]
            for first, last, c in found:
                hits.setdefault(c, []).append((places[first][0], places[last][1]))
        return hits
