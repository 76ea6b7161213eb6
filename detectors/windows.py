"""Windows for pattern rules, and the page memory they read. State, but no I/O and no clock.

Everything is driven by event time, so a replay or a backtest gives the same result as the
live run, and the runner can snapshot the state together with the checkpoint.

- Group windows: for each pattern rule and each value of its ``group_by`` keys, the
  (time, value) of the matching events within ``window.seconds``. A rule fires on an event
  when its group holds ``threshold`` events (or distinct values) at that moment.
- Page memory: the last editor of each page (hounding follows another editor around) and
  fingerprints of personal data removed from it (re-insertion). Pages are keyed by a
  hash of wiki and title; fingerprints are hashes; no text is kept.

What is only a key is kept as a hash: group values (user names, titles, IP ranges) and
distinct marks. The one name kept is a page's last editor (hounding names whom it
follows), and personal data the detectors found in that name is kept redacted. The
snapshot saved with the checkpoint is therefore no record of who did what.

Bounded: every map is an LRU under one cap (``max_keys``, evictions counted), and entries
expire with their window. The page memory's fingerprints count one each toward that cap
(a page can remove thousands of addresses in one edit), a page keeps its newest
``_PER_PAGE_PII_MAX`` and forgets each one ``pii_memory_seconds`` after it was removed, even
while the page keeps being edited.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import sys
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from detectors.base import Category, DetectionContext, Finding, Severity, Span
from detectors.confload import json_int, json_list, json_number, json_str
from detectors.event import PerformerKind, RecentChange
from detectors.facts import mentioned_users, page_owner, same_user
from detectors.pii import pii_fingerprints, redact_pii
from detectors.recognizers import regions_for_wiki
from detectors.recognizers.base import Budget, TextContext
from detectors.rules.model import Rule, Window

__all__ = [
    "Observation",
    "WindowStore",
    "event_key",
    "group_key",
    "group_values",
    "observations",
    "page_key",
    "text_fingerprints",
]

_PER_GROUP_MAX = 1000  # entries kept per group (thresholds are small; bounds memory)
# fingerprints of removed personal data kept per page, the newest: a re-insertion of the
# latest removals is what the rule looks for, and one edit removing thousands of
# addresses must not hold a page's memory (and every checkpoint snapshot) at that size
_PER_PAGE_PII_MAX = 256


def _h(value: str) -> str:
    """A key in place of a name: 16 hex digits of a hash ("" stays "")."""
    if not value:
        return value
    return hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def _canon(name: str) -> str:
    name = name.replace("_", " ").strip()
    return name[:1].upper() + name[1:]


_NO_PII: frozenset[str] = frozenset()


def page_key(change: RecentChange) -> int:
    """64 bits of a hash of wiki and title: compact, and no title is kept."""
    raw = f"{change.wiki}\x1f{change.title}".encode()
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big")


def _target_user(change: RecentChange, ctx: DetectionContext) -> str | None:
    owner = page_owner(change)
    if owner is not None and not same_user(owner, change.user):
        return owner
    for text in (ctx.added_text, change.comment):
        others = sorted(u for u in mentioned_users(text) if not same_user(u, change.user))
        if others:
            return others[0]
    return None


def _performer_range(change: RecentChange) -> str | None:
    user = change.user
    if not user:
        return None
    if change.performer_kind is PerformerKind.IP:
        ip = ipaddress.ip_address(user)
        prefix = 24 if ip.version == 4 else 64
        return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))
    return _canon(user)


def _value(key: str, change: RecentChange, ctx: DetectionContext) -> str | None:
    if key == "target_user":
        return _target_user(change, ctx)
    if key == "page":
        return f"{change.wiki}:{change.title}" if change.title else None
    if key == "performer":
        return _canon(change.user) if change.user else None
    if key == "performer_range":
        return _performer_range(change)
    if key == "wiki":
        return change.wiki
    if key == "previous_editor":
        prev = ctx.previous_editor
        return _canon(prev) if prev and not same_user(prev, change.user) else None
    raise KeyError(key)


def group_values(
    window: Window, change: RecentChange, ctx: DetectionContext
) -> tuple[str, ...] | None:
    """The group this event falls in, or None when a group_by value is unknown."""
    values = tuple(_value(k, change, ctx) for k in window.group_by)
    return None if any(v is None for v in values) else values  # type: ignore[return-value]


def _span(seconds: float) -> str:
    if seconds % 86400 == 0:
        return f"{int(seconds // 86400)} d"
    if seconds % 3600 == 0:
        return f"{int(seconds // 3600)} h"
    if seconds % 60 == 0:
        return f"{int(seconds // 60)} min"
    return f"{seconds:g} s"


def _text_context(change: RecentChange, budget: Budget | None = None) -> TextContext:
    return TextContext(
        regions=regions_for_wiki(change.wiki), namespace=change.namespace, budget=budget
    )


def text_fingerprints(
    change: RecentChange, ctx: DetectionContext, budget: Budget | None = None
) -> tuple[frozenset[str], frozenset[str]]:
    """Fingerprints of the personal data in the event's added and removed text: what the
    page memory and ``reinserted_pii`` need. Pure, so the runner works them out in the
    worker thread for an event with a lot of text (never on the event loop)."""
    tctx = _text_context(change, budget)
    return pii_fingerprints(ctx.added_text, tctx), pii_fingerprints(ctx.removed_text, tctx)


@dataclass(frozen=True)
class Observation:
    """One event meeting one pattern rule's conditions: what the rule's window counts, and
    what its finding says when the window fills. Everything the counting needs travels
    with it (no rules needed to count), so a scale-out worker can work it out next to the
    page memory and a window stage elsewhere can count it (``WindowStore.count``)."""

    rule: str
    group: str  # a hash of the group values (the window's key within the rule)
    when: float  # event time
    mark: str  # a hash of the distinct value ("" when the rule counts events)
    event: str  # the event's key: a repeat is never counted twice ("" without an id)
    seconds: float
    threshold: int
    distinct: str | None
    category: Category
    severity: Severity
    title: str
    target: str  # the group values, named (the finding's target)
    spans: tuple[Span, ...]
    index: int = 0  # its place among the event's candidates: fired findings keep that order


def group_key(values: tuple[str, ...]) -> str:
    """The key of a group window within its rule: a hash of the group values."""
    return _h("\x1f".join(values))


def event_key(change: RecentChange) -> str:
    """The key window entries carry for an event (idempotent counting)."""
    return _h(change.meta_id)[:12] if change.meta_id else ""


def observations(
    change: RecentChange,
    ctx: DetectionContext,
    candidates: Iterable[Finding],
    rules: Mapping[str, Rule],
    when: float,
) -> list[Observation]:
    """What the event adds to the pattern windows: one observation per candidate whose
    rule has a window and whose group values are known. Pure."""
    out = []
    event = event_key(change)
    for index, cand in enumerate(candidates):
        rule = rules[cand.rule]
        window = rule.window
        if window is None:
            continue
        values = group_values(window, change, ctx)
        if values is None:
            continue
        mark = _h(_value(window.distinct, change, ctx) or "") if window.distinct is not None else ""
        out.append(
            Observation(
                rule.id, group_key(values), when, mark, event, window.seconds,
                window.threshold, window.distinct, rule.category, rule.severity, rule.title,
                ", ".join(f"{k}={v}" for k, v in zip(window.group_by, values, strict=True)),
                cand.spans, index,
            )
        )  # fmt: skip
    return out


class WindowStore:
    def __init__(
        self,
        *,
        max_keys: int = 100_000,
        page_memory_seconds: float = 86_400.0,
        pii_memory_seconds: float = 7 * 86_400.0,
    ) -> None:
        self.max_keys = max_keys
        self.page_memory_seconds = page_memory_seconds
        self.pii_memory_seconds = pii_memory_seconds
        # (rule, hash of the group values) -> [(time, hash of the distinct value, event key)],
        # oldest first; the event key makes counting idempotent across re-deliveries
        self._groups: OrderedDict[tuple[str, str], list[tuple[float, str, str]]] = OrderedDict()
        self._editors: OrderedDict[int, tuple[str, float]] = OrderedDict()
        self._removed: OrderedDict[int, dict[str, float]] = OrderedDict()
        self._fingerprints = 0  # in all of ``_removed``: each counts toward ``max_keys``
        self.evictions = 0
        self.now = 0.0  # newest event time seen
        # the group and page keys changed since the caller last cleared these (a scale-out
        # stage writes them to its changelog); None: not kept
        self.touched: set[tuple[str, str]] | None = None
        self.touched_pages: set[int] | None = None
        # the page key of the event being processed (context_for, then remember, ask twice)
        self._keyed: tuple[RecentChange | None, int] = (None, 0)

    def empty_copy(self) -> WindowStore:
        """A store with the same limits and no state (to restore a snapshot into)."""
        return WindowStore(
            max_keys=self.max_keys,
            page_memory_seconds=self.page_memory_seconds,
            pii_memory_seconds=self.pii_memory_seconds,
        )

    def _page(self, change: RecentChange) -> int:
        keyed, key = self._keyed
        if keyed is not change:
            key = page_key(change)
            self._keyed = (change, key)
        return key

    # -- reading ----------------------------------------------------------------------

    def context_for(
        self,
        change: RecentChange,
        ctx: DetectionContext,
        findings: Iterable[Finding],
        added_pii: frozenset[str] | None = None,
    ) -> DetectionContext:
        """The context pattern rules see for this event (``added_pii``: the fingerprints
        of its added text, when worked out already; see ``text_fingerprints``)."""
        page = self._page(change)
        prev = self._editors.get(page)
        previous = prev[0] if prev and prev[1] >= self.now - self.page_memory_seconds else None
        removed = self._removed.get(page)
        fingerprints = (
            frozenset(fp for fp, t in removed.items() if t >= self.now - self.pii_memory_seconds)
            if removed
            else _NO_PII
        )
        # built directly: dataclasses.replace costs ~5 us, once per event
        return DetectionContext(
            added_text=ctx.added_text,
            removed_text=ctx.removed_text,
            findings=tuple(findings),
            previous_editor=previous,
            removed_pii=fingerprints,
            added_pii=added_pii,
        )

    @property
    def size(self) -> int:
        """What ``max_keys`` caps: group windows, last editors, and removed fingerprints."""
        return len(self._groups) + len(self._editors) + self._fingerprints

    def _set_removed(self, page: int, fingerprints: dict[str, float]) -> None:
        """A page's removed fingerprints (oldest first), most recently used page last."""
        old = self._removed.pop(page, None)
        self._fingerprints -= len(old) if old else 0
        if fingerprints:
            self._removed[page] = fingerprints
            self._fingerprints += len(fingerprints)

    def _pop_removed(self, last: bool = False) -> int:
        page, fingerprints = self._removed.popitem(last=last)
        self._fingerprints -= len(fingerprints)
        return page

    # -- updating -----------------------------------------------------------------------

    def observe(
        self,
        change: RecentChange,
        ctx: DetectionContext,
        candidates: Iterable[Finding],
        rules: Mapping[str, Rule],
        when: float,
    ) -> list[Finding]:
        """Add the event to the windows of the pattern rules whose conditions it met;
        return the findings of those whose threshold it reached."""
        self.now = max(self.now, when)
        fired = []
        for obs in observations(change, ctx, candidates, rules, when):
            finding = self.count(obs)
            if finding is not None:
                fired.append(finding)
        self._evict()
        return fired

    def count(self, obs: Observation) -> Finding | None:
        """Add one observation to its group's window; its finding when the window holds
        the threshold. A scale-out window stage calls this directly, with observations a
        worker worked out (``observations``): the same counting as ``observe``."""
        self.now = max(self.now, obs.when)
        key = (obs.rule, obs.group)
        entries = self._groups.get(key)
        if entries is None:
            entries = self._groups[key] = []
        else:
            self._groups.move_to_end(key)
            if obs.event and any(e[2] == obs.event for e in entries):
                return None  # re-delivered: counted (and decided) the first time
        if self.touched is not None:
            self.touched.add(key)
        entries.append((obs.when, sys.intern(obs.mark), obs.event))
        horizon = obs.when - obs.seconds
        drop = 0
        while drop < len(entries) and entries[drop][0] < horizon:
            drop += 1
        if drop or len(entries) > _PER_GROUP_MAX:
            del entries[: max(drop, len(entries) - _PER_GROUP_MAX)]
        n = len({e[1] for e in entries}) if obs.distinct is not None else len(entries)
        if n < obs.threshold:
            return None
        what = f"distinct {obs.distinct}s" if obs.distinct else "events"
        return Finding(
            obs.rule,
            obs.category,
            obs.severity,
            f"{obs.title}: {n} {what} within {_span(obs.seconds)}",
            obs.spans,
            obs.target,
        )

    def remember(
        self,
        change: RecentChange,
        ctx: DetectionContext,
        when: float,
        findings: Iterable[Finding] = (),
        removed_pii: frozenset[str] | None = None,
    ) -> None:
        """After the event: who edited the page last (with personal data ``findings``
        spotted in the name redacted), and what personal data it removed (``removed_pii``
        when worked out already, see ``text_fingerprints``)."""
        self.now = max(self.now, when)
        if change.type not in ("edit", "new") or not change.title:
            return
        page = self._page(change)
        changed = False
        if change.user and change.performer_kind is not PerformerKind.BOT:
            self._editors[page] = (sys.intern(_redacted_user(change.user, findings)), when)
            self._editors.move_to_end(page)
            changed = True
        if ctx.removed_text:
            fingerprints = (
                removed_pii
                if removed_pii is not None
                else pii_fingerprints(ctx.removed_text, _text_context(change))
            )
            if fingerprints:
                # the fresh ones last (a repeat moves), the expired and the oldest past
                # the page's cap forgotten
                horizon = when - self.pii_memory_seconds
                old = self._removed.get(page, {})
                kept = {fp: t for fp, t in old.items() if t >= horizon and fp not in fingerprints}
                kept.update(dict.fromkeys(sorted(fingerprints), when))
                if len(kept) > _PER_PAGE_PII_MAX:
                    kept = dict(list(kept.items())[-_PER_PAGE_PII_MAX:])
                self._set_removed(page, kept)
                changed = True
        if changed and self.touched_pages is not None:
            self.touched_pages.add(page)
        self._evict()

    def trim(self) -> None:
        """Forget what is past the limits (after a restore that added keys one by one)."""
        self._evict()

    def _evict(self) -> None:
        editors, removed = self._editors, self._removed
        pages, groups = self.touched_pages, self.touched  # a changelog forgets them too
        while editors and next(iter(editors.values()))[1] < self.now - self.page_memory_seconds:
            page, _ = editors.popitem(last=False)
            if pages is not None:
                pages.add(page)
        while removed and max(next(iter(removed.values())).values(), default=0.0) < (
            self.now - self.pii_memory_seconds
        ):
            page = self._pop_removed()
            if pages is not None:
                pages.add(page)
        while self.size > self.max_keys:
            sizes = (len(self._groups), len(editors), self._fingerprints)
            if sizes[0] == max(sizes):
                key, _ = self._groups.popitem(last=False)
                if groups is not None:
                    groups.add(key)
            else:
                if sizes[1] == max(sizes):
                    page, _ = editors.popitem(last=False)
                else:
                    page = self._pop_removed()
                if pages is not None:
                    pages.add(page)
            self.evictions += 1

    def expire(self, rules: Mapping[str, Rule]) -> None:
        """Drop group windows whose newest event left their rule's window."""
        self.expire_groups(
            {rid: r.window.seconds for rid, r in rules.items() if r.window is not None}
        )

    def expire_groups(self, seconds: Mapping[str, float], *, keep_unknown: bool = False) -> None:
        """Drop group windows whose newest event is older than their rule's window
        (``seconds``: rule -> window length; a rule not in it has no window any more,
        unless ``keep_unknown``: a window stage learns the lengths as observations come)."""
        stale = []
        for (rule_id, values), entries in self._groups.items():
            span = seconds.get(rule_id)
            if span is None and keep_unknown:
                continue
            if span is None or not entries or entries[-1][0] < self.now - span:
                stale.append((rule_id, values))
        for key in stale:
            del self._groups[key]
        if self.touched is not None:
            self.touched.update(stale)

    # -- one key at a time (a scale-out stage's changelog) --------------------------------

    def group_state(self, key: tuple[str, str]) -> list[list[Any]] | None:
        """One group window's entries as a changelog value; None when it is gone."""
        entries = self._groups.get(key)
        return [list(e) for e in entries] if entries else None

    def set_group(self, key: tuple[str, str], entries: Any) -> None:
        """Restore one group window (None removes it); ValueError for a malformed value."""
        if entries is None:
            self._groups.pop(key, None)
            return
        self._groups[key] = [
            (json_number(t), sys.intern(json_str(m)), json_str(e)) for t, m, e in _entries(entries)
        ]
        self._groups.move_to_end(key)
        if self._groups[key]:
            self.now = max(self.now, self._groups[key][-1][0])

    def page_state(self, page: int) -> list[Any] | None:
        """One page's memory as a changelog value: [[editor, time] or None, {fingerprint:
        time}]; None when nothing is remembered."""
        editor, removed = self._editors.get(page), self._removed.get(page)
        if editor is None and not removed:
            return None
        return [list(editor) if editor else None, dict(removed or {})]

    def set_page(self, page: int, state: Any) -> None:
        """Restore one page's memory (None forgets it); ValueError for a malformed value."""
        if state is None:
            self._editors.pop(page, None)
            self._set_removed(page, {})
            return
        editor, removed = _items(state, 2)
        if not isinstance(removed, dict):
            raise ValueError("expected a map of fingerprints")
        fps = {json_str(k): json_number(v) for k, v in removed.items()}
        if editor is None:
            self._editors.pop(page, None)
        else:
            name, when = _items(editor, 2)
            self._editors[page] = (sys.intern(json_str(name)), json_number(when))
            self._editors.move_to_end(page)
            self.now = max(self.now, self._editors[page][1])
        self._set_removed(page, fps)

    # -- persistence --------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "version": 2,
            "now": self.now,
            "groups": [[rid, key, list(entries)] for (rid, key), entries in self._groups.items()],
            "editors": [[page, editor, t] for page, (editor, t) in self._editors.items()],
            "removed": [[page, fps] for page, fps in self._removed.items()],
            "evictions": self.evictions,
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Replace the state with a snapshot's; ValueError (nothing changed) when the
        snapshot is not one this version wrote."""
        if not isinstance(data, Mapping) or data.get("version") not in (1, 2):
            raise ValueError("unknown window state version")
        version = data["version"]
        groups: OrderedDict[tuple[str, str], list[tuple[float, str, str]]] = OrderedDict()
        for item in json_list(data.get("groups")):
            rid, values, entries = _items(item, 3)
            if version == 1:  # names as they were: hashed now, so no name stays on disk
                key = (json_str(rid), _h("\x1f".join(json_str(v) for v in json_list(values))))
                groups[key] = [
                    (json_number(t), sys.intern(_h(json_str(m))), "")
                    for t, m, _ in _entries(entries)
                ]
            else:
                key = (json_str(rid), json_str(values))
                groups[key] = [
                    (json_number(t), sys.intern(json_str(m)), json_str(e))
                    for t, m, e in _entries(entries)
                ]
        editors = OrderedDict(
            (json_int(p), (sys.intern(json_str(e)), json_number(t)))
            for p, e, t in (_items(x, 3) for x in json_list(data.get("editors")))
        )
        removed: OrderedDict[int, dict[str, float]] = OrderedDict()
        for item in json_list(data.get("removed")):
            page, fingerprints = _items(item, 2)
            if not isinstance(fingerprints, dict):
                raise ValueError("expected a map of fingerprints")
            removed[json_int(page)] = {json_str(k): json_number(v) for k, v in fingerprints.items()}
        now, evictions = json_number(data.get("now")), json_int(data.get("evictions", 0))
        self._groups, self._editors, self._removed = groups, editors, removed
        self._fingerprints = sum(len(fps) for fps in removed.values())
        self.now, self.evictions = now, evictions


def _items(value: Any, n: int) -> list[Any]:
    items = json_list(value)
    if len(items) != n:
        raise ValueError(f"expected {n} items")
    return items


def _entries(value: Any) -> list[tuple[Any, Any, Any]]:
    """Window entries: [time, mark, event key], or [time, mark] as older versions wrote."""
    out = []
    for x in json_list(value):
        e = json_list(x)
        if len(e) not in (2, 3):
            raise ValueError("a window entry of the wrong shape")
        out.append((e[0], e[1], e[2] if len(e) == 3 else ""))
    return out


def _redacted_user(user: str, findings: Iterable[Finding]) -> str:
    """The user name with personal data in it replaced by its redacted form: what the
    detectors found in the name on this event, and what the recognizers find in it now
    (a name can carry a phone number on edits no rule looks at the name for)."""
    spans = sorted(
        (s for f in findings for s in f.spans if s.field == "user" and s.sensitive),
        key=lambda s: s.start,
        reverse=True,
    )
    for s in spans:
        if 0 <= s.start < s.end <= len(user):
            user = user[: s.start] + s.redacted + user[s.end :]
    if any("0" <= c <= "9" for c in user) or "@" in user:  # the cheap test first
        user = _redact_name(user)
    return user


@functools.lru_cache(maxsize=8192)
def _redact_name(user: str) -> str:
    """Pure, and the same editors come back all day (most of them IP addresses): kept."""
    return redact_pii(user, TextContext(field="user"))
