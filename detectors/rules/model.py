"""The rule schema: what a rule file may say, as typed, immutable values."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from detectors.base import Category, Severity

__all__ = [
    "TEXT_FIELDS",
    "VALUE_FIELDS",
    "AllOf",
    "AnyOf",
    "ClassifierCond",
    "Condition",
    "Example",
    "FactCond",
    "FindingCond",
    "KeywordCond",
    "LanguageCond",
    "Near",
    "Not",
    "RecognizerCond",
    "RegexCond",
    "Rule",
    "RuleExamples",
    "RuleScope",
    "ValueCond",
    "Window",
    "leaf_conditions",
]

TEXT_FIELDS = ("title", "summary", "user", "added_text", "removed_text")
VALUE_FIELDS = (
    "namespace", "size_delta", "type", "log_type", "log_action", "performer_kind", "wiki", "bot",
)  # fmt: skip

DEFAULT_KEYWORD_STEPS = ("nfkc", "casefold", "confusables", "leet", "separators")


@dataclass(frozen=True)
class RegexCond:
    field: str
    pattern: str
    normalize: tuple[str, ...] = ()
    line: int = 0


@dataclass(frozen=True)
class KeywordCond:
    field: str
    keywords: tuple[str, ...]  # as written (files already expanded)
    normalize: tuple[str, ...] = DEFAULT_KEYWORD_STEPS
    line: int = 0


@dataclass(frozen=True)
class RecognizerCond:
    field: str
    recognizer: str
    min_confidence: float = 0.5
    line: int = 0


@dataclass(frozen=True)
class ClassifierCond:
    """A trained text classifier's score for the field reaches ``min_score`` (0..1, a
    calibrated probability: see the model's thresholds)."""

    field: str
    classifier: str
    min_score: float = 0.5
    line: int = 0


@dataclass(frozen=True)
class LanguageCond:
    """The language of the field's text (``detectors.language``: the wiki's, unless the
    text plainly is another) is one of ``languages``."""

    field: str
    # sorted: a rule's repr is its digest's input, the same in every process (a frozenset's
    # order follows the process's hash seed, and scale-out workers' answers went unused)
    languages: tuple[str, ...]
    line: int = 0


@dataclass(frozen=True)
class ValueCond:
    field: str
    op: Literal["equals", "in", "gt", "gte", "lt", "lte"]
    value: object
    line: int = 0


@dataclass(frozen=True)
class FactCond:
    fact: str
    field: str | None = None  # for facts about a text
    line: int = 0


@dataclass(frozen=True)
class FindingCond:
    """Another rule fired on this event (pattern rules only): by category, rule id
    (shell wildcards) and minimum severity; every given criterion must hold."""

    categories: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    min_severity: str | None = None
    line: int = 0


@dataclass(frozen=True)
class AllOf:
    conditions: tuple[Condition, ...]
    line: int = 0


@dataclass(frozen=True)
class AnyOf:
    conditions: tuple[Condition, ...]
    line: int = 0


@dataclass(frozen=True)
class Near:
    """All conditions hold, and each has a match within ``within_chars`` of one of the
    first condition's matches (same field): "an insult next to 'you'"."""

    conditions: tuple[Condition, ...]
    within_chars: int = 40
    line: int = 0


@dataclass(frozen=True)
class Not:
    condition: Condition
    line: int = 0


Condition = (
    RegexCond
    | KeywordCond
    | RecognizerCond
    | ClassifierCond
    | LanguageCond
    | ValueCond
    | FactCond
    | FindingCond
    | AllOf
    | AnyOf
    | Near
    | Not
)

GROUP_KEYS = ("target_user", "page", "performer", "performer_range", "wiki", "previous_editor")
DISTINCT_KEYS = ("performer", "performer_range", "page", "wiki")


def _check_group_by(value: tuple[str, ...]) -> str | None:
    bad = [v for v in value if v not in GROUP_KEYS]
    if bad or not value:
        return f"group_by takes one or more of {', '.join(GROUP_KEYS)} (got {list(value)})"
    return None


@dataclass(frozen=True)
class Window:
    """Makes a rule a pattern rule: it fires when, within ``seconds`` (event time), the
    events matching its conditions that share the ``group_by`` values reach
    ``threshold`` — as a count of events, or of distinct ``distinct`` values."""

    seconds: float = field(metadata={"gt": 0})
    group_by: tuple[str, ...] = field(metadata={"check": _check_group_by})
    threshold: int = field(default=2, metadata={"min": 1})
    distinct: Literal["performer", "performer_range", "page", "wiki"] | None = None


@dataclass(frozen=True)
class RuleScope:
    """Which changes a rule looks at. Bots are out unless ``performers`` lists ``bot``."""

    wikis: tuple[str, ...] = ("*",)
    exclude_wikis: tuple[str, ...] = ()
    namespaces: tuple[int, ...] | None = None
    exclude_namespaces: tuple[int, ...] = ()
    types: tuple[str, ...] | None = None  # edit, new, log, categorize; None: all
    log_types: tuple[str, ...] | None = None  # "newusers" or "newusers/create"
    performers: tuple[Literal["registered", "ip", "temporary", "bot", "unknown"], ...] = (
        "registered", "ip", "temporary", "unknown",
    )  # fmt: skip


@dataclass(frozen=True)
class Example:
    """A partial event: whatever is not given takes a neutral default. In a pattern
    rule's examples, a list of these is a sequence, ``at`` seconds apart from the first."""

    title: str | None = None
    summary: str | None = None
    user: str | None = None
    added_text: str | None = None
    removed_text: str | None = None
    namespace: int | None = None
    type: str | None = None
    log_type: str | None = None
    log_action: str | None = None
    wiki: str | None = None
    bot: bool | None = None
    size_delta: int | None = None
    at: float = 0.0  # seconds after the first event of a sequence


@dataclass(frozen=True)
class RuleExamples:
    # (events, line): one event for ordinary rules, a sequence for pattern rules
    match: tuple[tuple[tuple[Example, ...], int], ...] = ()
    no_match: tuple[tuple[tuple[Example, ...], int], ...] = ()


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    category: Category
    severity: Severity
    match: Condition
    description: str = ""
    enabled: bool = True
    scope: RuleScope = field(default_factory=RuleScope)
    examples: RuleExamples = field(default_factory=RuleExamples)
    false_positives: str = ""
    tags: tuple[str, ...] = ()
    window: Window | None = None
    # rule ids (shell wildcards) that make this rule redundant when they fire on the
    # same event: a general rule stays quiet where a more specific one spoke
    suppressed_by: tuple[str, ...] = ()
    file: str = field(default="", metadata={"internal": True})
    line: int = field(default=0, metadata={"internal": True})


def leaf_conditions(cond: Condition) -> Iterator[Condition]:
    """The leaf conditions under ``cond`` (through all, any, near and not), in order."""
    if isinstance(cond, AllOf | AnyOf | Near):
        for c in cond.conditions:
            yield from leaf_conditions(c)
    elif isinstance(cond, Not):
        yield from leaf_conditions(cond.condition)
    else:
        yield cond
