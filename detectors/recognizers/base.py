"""The recognizer contract: text in, typed spans with confidence and a redacted form out.

Recognizers are pure (no network, no clock, no global state) and cheap enough to run on
every edit summary. Their cost is bounded whatever the text: each judges at most
``MAX_CANDIDATES`` candidates per call (and the phone recognizer validates at most
``MAX_VALIDATIONS`` of them with libphonenumber); beyond that it stops and says so in the
caller's ``Budget``, so that a megabyte of digits costs milliseconds, not a minute, and
the caller can count what was not looked at.

Each declares a ``prefilter``: an RE2 pattern that must match somewhere in the text for
the recognizer to find anything (``\\d`` for phone numbers, ``@`` for email). The rule
engine folds every prefilter into its multi-pattern matcher, so a recognizer only runs on
texts that could hold its kind of data.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol, TypeVar

__all__ = ["MAX_CANDIDATES", "Budget", "PiiMatch", "Recognizer", "TextContext", "capped"]

# candidates one recognizer judges in one text; an alert needs one match, the evidence a few
MAX_CANDIDATES = 1_000

T = TypeVar("T")


class Budget:
    """Collects which recognizers (or fields) stopped early on one event's texts."""

    __slots__ = ("exhausted",)

    def __init__(self) -> None:
        self.exhausted: set[str] = set()


def capped(
    candidates: Iterable[T], kind: str, budget: Budget | None, limit: int = MAX_CANDIDATES
) -> Iterator[T]:
    """At most ``limit`` of ``candidates``; running out is recorded in ``budget``."""
    for n, item in enumerate(candidates):
        if n >= limit:
            if budget is not None:
                budget.exhausted.add(kind)
            return
        yield item


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
    budget: Budget | None = None  # where running out of candidates is recorded


class Recognizer(Protocol):
    @property
    def kind(self) -> str: ...

    @property
    def prefilter(self) -> str: ...

    def find(self, text: str, ctx: TextContext) -> list[PiiMatch]: ...
