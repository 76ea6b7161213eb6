"""Alert de-duplication and throttling: the same rule on the same target within a cooldown
is one alert, updated with a count, not a new page for on-call each time.

Groups are the same rule on the same target (a user, a page, a pattern's group) within one
period of ``cooldown_seconds`` of event time. A group's alert ``id`` is derived from what
defines the group (rule, wiki, target, period), never from which of its events came first,
so a restart that re-processes events in another order (a resumed connection serves one
topic's backlog before another's) gives the same ids. The first alert of a group is
delivered with ``count`` 1; each further one as an *update*: same ``id``, a higher
``count``, the newest event's details, and a severity raised one level at each count in
``escalate_at``. Sinks key updates by ``delivery_id`` (``<id>~<count>``), so a restart
neither repeats nor loses one. Counting is idempotent: a group remembers which source
alerts (rule + change) it counted, and the same change seen again (a resume overlap, a
re-delivery) is a repeat, not a new count, so it can neither re-page nor escalate. Driven
by event time and snapshotted with the checkpoint, so replays are deterministic. A burst
that spans two periods gives two alerts.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from detectors.confload import json_int, json_list, json_number, json_str
from sinks.alert import Alert, alert_id

__all__ = ["Throttle", "ThrottleConfig"]

_LEVELS = ("low", "medium", "high", "critical")


def _h(value: str) -> str:
    return hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


_SOURCES_PER_GROUP = 256  # counted source alerts remembered per group


def _check_levels(values: tuple[int, ...]) -> str | None:
    if any(v < 2 for v in values) or list(values) != sorted(set(values)):
        return "escalate_at takes increasing counts of at least 2"
    return None


@dataclass(frozen=True)
class ThrottleConfig:
    enabled: bool = True
    cooldown_seconds: float = field(default=1800.0, metadata={"gt": 0})
    escalate_at: tuple[int, ...] = field(default=(3, 10), metadata={"check": _check_levels})
    max_keys: int = field(default=100_000, metadata={"min": 100})


@dataclass
class _Group:
    id: str
    count: int
    first_time: float
    last_time: float
    first_event_time: str | None
    severity: str
    sources: dict[str, int] = field(default_factory=dict)  # source alert id -> its count


# (rule, wiki, hash of the target, period): the target is a user or a page, kept as a hash
_Key = tuple[str, str, str, int]


class Throttle:
    def __init__(self, config: ThrottleConfig | None = None) -> None:
        self.config = config or ThrottleConfig()
        self._groups: OrderedDict[_Key, _Group] = OrderedDict()
        self.updates = 0
        self.escalations = 0

    def empty_copy(self) -> Throttle:
        """A throttle with the same settings and no groups (to restore a snapshot into)."""
        return Throttle(self.config)

    def apply(self, alert: Alert, when: float) -> tuple[Alert, bool, bool] | None:
        """(alert to deliver, is an update, escalated); None when this very alert (the same
        rule on the same change) was counted already."""
        if not self.config.enabled:
            return alert, False, False
        target = _h(alert.target or alert.title or "")
        period = int(when // self.config.cooldown_seconds)
        key = (alert.rule, alert.wiki or "", target, period)
        group = self._groups.get(key)
        if group is not None and alert.id in group.sources:
            return None
        if group is None:
            gid = alert_id(alert.rule, alert.wiki, f"throttle:{target}:{period}")
            group = _Group(gid, 0, when, when, alert.event_time, alert.severity)
            self._groups[key] = group
        group.count += 1
        group.sources[alert.id] = group.count
        if len(group.sources) > _SOURCES_PER_GROUP:
            del group.sources[next(iter(group.sources))]
        group.first_time = min(group.first_time, when)
        group.last_time = max(group.last_time, when)
        self._groups.move_to_end(key)
        escalated = False
        if group.count in self.config.escalate_at:
            level = min(_LEVELS.index(group.severity) + 1, len(_LEVELS) - 1)
            escalated = _LEVELS[level] != group.severity
            group.severity = _LEVELS[level]
        if _LEVELS.index(alert.severity) > _LEVELS.index(group.severity):
            group.severity = alert.severity
        update = group.count > 1
        if update:
            self.updates += 1
            self.escalations += escalated
        else:
            self._expire(when)
        delivered = dataclasses.replace(
            alert,
            id=group.id,
            count=group.count,
            severity=group.severity,
            first_event_time=group.first_event_time if update else None,
        )
        return delivered, update, escalated

    def _expire(self, now: float) -> None:
        groups = self._groups
        horizon = now - 2 * self.config.cooldown_seconds
        while groups and next(iter(groups.values())).last_time < horizon:
            groups.popitem(last=False)
        while len(groups) > self.config.max_keys:
            groups.popitem(last=False)

    @property
    def size(self) -> int:
        return len(self._groups)

    def snapshot(self) -> dict[str, Any]:
        return {
            "version": 3,
            "groups": [[list(k), dataclasses.astuple(g)] for k, g in self._groups.items()],
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Replace the groups with a snapshot's; ValueError (nothing changed) when the
        snapshot is not one this version wrote. Groups of version 1 (targets as names, no
        sources, ids from the first alert) keep their ids and get their period."""
        if not isinstance(data, Mapping) or data.get("version") not in (1, 3):
            raise ValueError("unknown throttle state version")
        version = data["version"]
        cooldown = self.config.cooldown_seconds
        groups: OrderedDict[_Key, _Group] = OrderedDict()
        for item in json_list(data.get("groups")):
            key, fields = _pair(item)
            g = json_list(fields)
            if len(g) not in (6, 7):
                raise ValueError("throttle group of the wrong shape")
            gid, severity = json_str(g[0]), json_str(g[5])
            count, first, last = json_int(g[1]), json_number(g[2]), json_number(g[3])
            first_event = None if g[4] is None else json_str(g[4])
            sources = g[6] if len(g) == 7 else {gid: 1}
            if severity not in _LEVELS or count < 1 or not isinstance(sources, dict):
                raise ValueError("throttle group with impossible values")
            counted = {json_str(k): json_int(v) for k, v in sources.items()}
            if version == 1:
                rule, wiki, target = _strs(key, 3)
                new_key = (rule, wiki, _h(target), int(last // cooldown))
            else:
                parts = json_list(key)
                if len(parts) != 4:
                    raise ValueError("throttle key of the wrong shape")
                new_key = (
                    json_str(parts[0]),
                    json_str(parts[1]),
                    json_str(parts[2]),
                    json_int(parts[3]),
                )
            groups[new_key] = _Group(gid, count, first, last, first_event, severity, counted)
        self._groups = groups


def _pair(value: Any) -> tuple[Any, Any]:
    items = json_list(value)
    if len(items) != 2:
        raise ValueError("expected a pair")
    return items[0], items[1]


def _strs(value: Any, n: int) -> list[str]:
    items = json_list(value)
    if len(items) != n:
        raise ValueError(f"expected {n} strings")
    return [json_str(v) for v in items]
