"""The recognizer contract: text in, typed spans with confidence and a redacted form out.

Recognizers are pure (no network, no clock, no global state) and cheap enough to run on
every edit summary. Each declares a ``prefilter``: an RE2 pattern that must match
somewhere in the text for the recognizer to find anything (``\\d`` for phone numbers,
``@`` for email). The rule engine folds every prefilter into its multi-pattern matcher,
so a recognizer only runs on texts that could hold its kind of data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["PiiMatch", "Recognizer", "TextContext"]


@dataclass(frozen=True, slots=True)
class PiiMatch:
    start: int  # offsets into the text given to find()
    end: int
    kind: str  # "email", "phone", "credit_card", "iban", "us_ssn", ...
    confidence: float  # 0..1; rules choose a minimum
    redacted: str  # the only form of the match that may leave the process


@dataclass(frozen=True, slots=True)
class TextContext:
    """Where the text comes from, for recognizers that weigh context."""

    regions: tuple[str, ...] = ()  # phone region hints (ISO 3166), e.g. ("DE", "AT", "CH")
    field: str = "added_text"  # "summary", "title", "added_text", "user", ...
    namespace: int | None = None  # of the page the text belongs to
    performer: str | None = None  # user name of who wrote it


class Recognizer(Protocol):
    @property
    def kind(self) -> str: ...

    @property
    def prefilter(self) -> str: ...

    def find(self, text: str, ctx: TextContext) -> list[PiiMatch]: ...
