"""Scope filter: which changes the detectors see (wikis, namespaces, types, bots, canary)."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field

from detectors.event import PerformerKind, RecentChange

__all__ = ["Scope", "ScopeConfig"]


def _kinds_ok(values: tuple[str, ...]) -> str | None:
    bad = [v for v in values if v not in PerformerKind.__members__.values()]
    return f"unknown performer kinds {bad}" if bad else None


@dataclass(frozen=True)
class ScopeConfig:
    """Which changes are in scope. Wiki patterns use shell wildcards (``*wiki``, ``en*``)."""

    wikis: tuple[str, ...] = ("*",)
    exclude_wikis: tuple[str, ...] = ()
    namespaces: tuple[int, ...] | None = None  # None: every namespace
    types: tuple[str, ...] = ("edit", "new", "log", "categorize")
    include_bots: bool = True
    performer_kinds: tuple[str, ...] = field(
        default=("registered", "ip", "temporary", "bot", "unknown"),
        metadata={"check": _kinds_ok},
    )

    def build(self) -> Scope:
        return Scope(self)


def _compile(patterns: tuple[str, ...]) -> re.Pattern[str]:
    if not patterns:
        return re.compile(r"(?!)")
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


class Scope:
    def __init__(self, config: ScopeConfig) -> None:
        self.config = config
        self._include = _compile(config.wikis)
        self._exclude = _compile(config.exclude_wikis)
        self._wiki_cache: dict[str | None, bool] = {}
        self._types = frozenset(config.types)
        self._namespaces = frozenset(config.namespaces) if config.namespaces is not None else None
        kinds = set(config.performer_kinds)
        if not config.include_bots:
            kinds.discard(PerformerKind.BOT)
        self._kinds = frozenset(PerformerKind(k) for k in kinds)

    def _wiki_ok(self, wiki: str | None) -> bool:
        ok = self._wiki_cache.get(wiki)
        if ok is None:
            name = wiki or ""
            ok = bool(self._include.match(name)) and not self._exclude.match(name)
            if len(self._wiki_cache) < 10_000:  # ~1,000 wikis exist; bound it anyway
                self._wiki_cache[wiki] = ok
        return ok

    def accepts(self, change: RecentChange) -> bool:
        if change.type not in self._types:
            return False
        if change.performer_kind not in self._kinds:
            return False
        # a bot flag on an IP or temporary edit is odd; still honour include_bots
        if change.bot and not self.config.include_bots:
            return False
        if self._namespaces is not None and change.namespace not in self._namespaces:
            return False
        return self._wiki_ok(change.wiki)
