"""Which alerts a sink receives: by category, minimum severity and rule id (wildcards)."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Literal

from sinks.alert import Alert

__all__ = ["SEVERITY_RANK", "RouteConfig", "check_sink_name"]

_SINK_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}")


def check_sink_name(name: str) -> str | None:
    """A sink name names a directory and a metric label: keep it plain."""
    if _SINK_NAME.fullmatch(name):
        return None
    return "use up to 64 letters, digits, '-', '_' and '.', not starting with '.'"


SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}

Category = Literal["privacy", "doxxing", "harassment"]


@dataclass(frozen=True)
class RouteConfig:
    """Every condition must hold. The default routes everything."""

    categories: tuple[Category, ...] | None = None  # None: every category
    min_severity: Literal["low", "medium", "high", "critical"] = "low"
    rules: tuple[str, ...] = ("*",)  # shell wildcards on the rule id
    exclude_rules: tuple[str, ...] = ()

    def matches(self, alert: Alert) -> bool:
        if self.categories is not None and alert.category not in self.categories:
            return False
        if SEVERITY_RANK.get(alert.severity, 0) < SEVERITY_RANK[self.min_severity]:
            return False
        if not any(fnmatch.fnmatchcase(alert.rule, p) for p in self.rules):
            return False
        return not any(fnmatch.fnmatchcase(alert.rule, p) for p in self.exclude_rules)

    @property
    def routes_everything(self) -> bool:
        return self == RouteConfig()
