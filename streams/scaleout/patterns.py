"""Partitioned pattern windows (``scaleout.windows: partitioned``): the state, no I/O.

Pattern rules group by page, by performer across wikis and by target user across wikis, so
no single key keeps every window whole. The state is therefore split in two steps, each
partitioned by the key it needs, each with its own changelog topic (Faust's tables, built on
the project's event-time windows):

1. ``PageShard``, in the fetch workers, per partition of the events topic (keyed by page):
   the page memory (a page's last editor, the personal data removed from it). For every
   event in scope it works out the pattern rules' candidates as one process would, and the
   ``Observation`` each adds to a window. The worker sends each observation to the window
   partition of its group (``window_partition``): the repartitioning.
2. ``WindowShard``, in the window stage, per partition of the observations topic: the group
   windows of the keys hashed to it. The observations of one window partition come from
   every events partition (a *lane* each, in stream order within a lane); the shard merges
   the lanes by ``seq`` (``SeqMerge``) so each window counts in stream order, exactly as one
   process counts.

Exact despite at-least-once:
- a window entry is keyed by its event, so a repeat is never counted (nor fires) twice;
- a page remembers the ``seq`` of the last event that worked on it, and its changelog
  value is written only after the broker acknowledged that event's observations. An event
  re-read after a takeover whose page already went past it is not worked out again (its
  observations went out the first time, and the page memory moved on since, so working
  it out again would see another context). One the changelog had not reached is worked
  out again from the page memory as it was before it: the same observations.
- the window shard's changelog carries its lanes' marks after the entries they cover, so
  a restarted shard knows which re-read observations it counted already; a re-read
  observation (``late``) is counted idempotently and never fires again.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from detectors.base import DetectionContext, Finding
from detectors.event import RecentChange
from detectors.rules.engine import RuleEngine
from detectors.windows import Observation, WindowStore, observations, page_key
from sinks.dedup import RecentIds
from streams.scaleout.merge import SeqMerge

__all__ = ["MARKS_KEY", "PageShard", "WindowShard", "group_partition", "window_partition"]

_SWEEP_EVERY = 10_000  # observations between sweeps of expired group windows
MARKS_KEY = b"\x00marks"  # a window shard's changelog record of its lanes' marks

Fingerprints = tuple[frozenset[str], frozenset[str]] | None
# key, value (None: forget the key, a tombstone compaction removes in time)
ChangelogRecord = tuple[bytes, bytes | None]


def window_partition(obs: Observation, partitions: int) -> int:
    """The observations-topic partition of an observation's group."""
    return group_partition(obs.rule, obs.group, partitions)


def group_partition(rule: str, group: str, partitions: int) -> int:
    """The observations-topic partition of a rule's group window (``windows.group_key``):
    stable across processes and versions (never Python's salted ``hash``)."""
    digest = hashlib.blake2b(f"{rule}\x1f{group}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % partitions


class PageShard:
    """The page memory of one events partition, and the observations worked out with it."""

    def __init__(self, store: WindowStore, recent_ids: int = 50_000) -> None:
        self.store = store
        store.touched_pages = set()
        # page -> seq of the last event worked out for it (bounded like the store's keys)
        self._seqs: OrderedDict[int, int] = OrderedDict()
        self._recent = RecentIds(recent_ids)
        self.replayed = 0  # events passed over: their page had gone past them

    def observe(
        self,
        seq: int | None,
        *,
        change: RecentChange,
        ctx: DetectionContext,
        findings: Sequence[Finding],
        fingerprints: Fingerprints,
        engine: RuleEngine,
    ) -> list[Observation]:
        """What one event in scope adds to the pattern windows, in the events partition's
        order; the page memory then remembers it (as ``Pipeline.complete`` does)."""
        if change.meta_id is not None and not self._recent.add(change.meta_id):
            return []  # the same event twice in this partition (an ingest's repeat)
        page = page_key(change)
        last = self._seqs.get(page)
        if seq is not None and last is not None and seq <= last:
            self.replayed += 1
            return []
        store = self.store
        when = change.event_time or 0.0
        pctx = store.context_for(change, ctx, findings, fingerprints[0] if fingerprints else None)
        candidates = engine.evaluate_patterns(change, pctx)
        out = observations(change, pctx, candidates, engine.pattern_rules, when)
        # the candidates' spans too: the name kept for hounding is redacted at least as much
        # as one process redacts it (it knows which candidates fired; this step does not)
        store.remember(
            change, ctx, when, [*findings, *candidates], fingerprints[1] if fingerprints else None
        )
        if seq is not None:  # written with the page, when the event changed its memory
            self._seqs[page] = seq
            self._seqs.move_to_end(page)
            while len(self._seqs) > store.max_keys:
                self._seqs.popitem(last=False)
        return out

    def changelog(self) -> list[ChangelogRecord]:
        """The pages changed since the last call, as changelog records (write them only
        after the broker acknowledged the observations of the events that changed them)."""
        touched = self.store.touched_pages
        assert touched is not None
        out: list[ChangelogRecord] = []
        for page in sorted(touched):
            state = self.store.page_state(page)
            if state is None:  # forgotten (expired, evicted): nothing to replay against
                self._seqs.pop(page, None)
                out.append((str(page).encode(), None))
                continue
            out.append((str(page).encode(), orjson.dumps([state, self._seqs.get(page)])))
        touched.clear()
        return out

    def restore(self, key: bytes, value: bytes | None) -> bool:
        """One changelog record (oldest first); False (and nothing changed) for one this
        version did not write."""
        try:
            page = int(key.decode("ascii"))
            if not value:  # forgotten
                self.store.set_page(page, None)
                self._seqs.pop(page, None)
                return True
            state, seq = orjson.loads(value)
            if seq is not None and (not isinstance(seq, int) or isinstance(seq, bool)):
                return False
            self.store.set_page(page, state)
        except (ValueError, TypeError, UnicodeDecodeError):  # orjson's error is a ValueError
            return False
        if seq is None:
            self._seqs.pop(page, None)
        else:
            self._seqs[page] = seq
        return True


class WindowShard:
    """The group windows of one observations partition, counted in stream order."""

    def __init__(
        self,
        store: WindowStore,
        lanes: int,
        next_offset: int,
        *,
        marks: dict[int, int] | None = None,
        max_wait_seconds: float,
        max_buffered: int,
    ) -> None:
        self.store = store
        store.touched = set()
        self.next_offset = next_offset
        self.lanes = lanes
        self.merge = SeqMerge[tuple[int | None, list[Observation]]](
            dict.fromkeys(range(lanes), next_offset),
            max_wait_seconds=max_wait_seconds,
            max_buffered=max_buffered,
            marks=marks,
        )
        self.counted = 0
        self.repeats = 0  # records passed over: a copy still held will be counted
        self._seconds: dict[str, float] = {}  # rule -> window length, as observed
        self._swept = 0
        self._marks_written: dict[str, int] = {}

    def add(
        self, lane: int, offset: int, seq: int | None, obs: list[Observation], now: float
    ) -> list[tuple[int | None, list[tuple[int, Finding]]]]:
        """Take one record of observations; returns what fired (seq, [(index, finding)])
        for it when it need not wait for the other lanes."""
        self.next_offset = max(self.next_offset, offset + 1)
        if not 0 <= lane < self.lanes:  # a lane it does not merge: counted at once
            return self._count([((seq, obs), "unsequenced")])
        released = self.merge.add(lane, offset, seq, (seq, obs), now)
        if released is None:
            return []
        if released[1] == "late" and seq is not None and self.merge.holds(lane, seq):
            self.repeats += 1  # its first copy is held: counted, in order, when it goes on
            return []
        return self._count([released])

    def tick(self, lane: int, offset: int, seq: int | None) -> None:
        self.next_offset = max(self.next_offset, offset + 1)
        if 0 <= lane < self.lanes:
            self.merge.tick(lane, offset, seq)

    def release(self, now: float) -> list[tuple[int | None, list[tuple[int, Finding]]]]:
        return self._count(self.merge.release(now))

    def _count(
        self, released: Iterable[tuple[tuple[int | None, list[Observation]], str]]
    ) -> list[tuple[int | None, list[tuple[int, Finding]]]]:
        out = []
        store = self.store
        count = store.count
        for (seq, obs), how in released:
            fired = []
            for o in obs:
                self.counted += 1
                self._seconds[o.rule] = o.seconds
                finding = count(o)
                # a late record is a repeat (a takeover's re-read, a restart's): decided the
                # first time, so it never fires again, even when its entry has left the
                # window since. (A produce retry that reordered a lane is counted too, and
                # the group's next event fires for it.)
                if finding is not None and how != "late":
                    fired.append((o.index, finding))
            if fired:
                out.append((seq, fired))
        store.trim()  # the key cap, as one process applies it after every event
        if self.counted - self._swept >= _SWEEP_EVERY:
            self._swept = self.counted
            store.expire_groups(self._seconds, keep_unknown=True)
        return out

    def frontier(self) -> int:
        """Every observation numbered up to this has been counted (the shard's tick)."""
        return self.merge.frontier()

    def position(self) -> int:
        """The offset to commit: the first observation still held, else the next to read."""
        held = self.merge.first_held()
        return self.next_offset if held is None else min(held, self.next_offset)

    def changelog(self) -> list[ChangelogRecord]:
        """The groups changed since the last call, then the lanes' marks when they moved
        (after the entries they cover: a marks record read back means its entries are
        there); nothing when nothing changed."""
        store = self.store
        touched = store.touched
        assert touched is not None
        out: list[ChangelogRecord] = []
        for key in sorted(touched):
            state = store.group_state(key)
            out.append((orjson.dumps(list(key)), None if state is None else orjson.dumps(state)))
        touched.clear()
        marks = {str(lane): mark for lane, mark in self.merge.marks().items() if mark >= 0}
        if out or marks != self._marks_written:
            out.append((MARKS_KEY, orjson.dumps(marks)))
            self._marks_written = marks
        return out

    @staticmethod
    def restore_into(store: WindowStore, marks: dict[int, int], key: bytes, value: Any) -> bool:
        """One changelog record (oldest first) into ``store`` and ``marks``; False (nothing
        changed) for one this version did not write."""
        try:
            if key == MARKS_KEY:
                if not value:
                    return False
                read = orjson.loads(value)
                if not isinstance(read, dict):
                    return False
                new = {int(k): v for k, v in read.items()}
                if not all(isinstance(v, int) and not isinstance(v, bool) for v in new.values()):
                    return False
                marks.clear()
                marks.update(new)
                return True
            rule, group = orjson.loads(key)
            if not (isinstance(rule, str) and isinstance(group, str)):
                return False
            store.set_group((rule, group), orjson.loads(value) if value else None)
        except (ValueError, TypeError):
            return False
        return True
