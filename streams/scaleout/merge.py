"""The detect stage's merge: the enriched topic's partitions back into stream order.

The ingest numbers every event (``seq``) in the order EventStreams sent it, and the workers
keep each partition in that order. Read as they arrive, the partitions interleave by how
fast each worker is: a slow or dead worker's page edits would reach the pattern windows
late, after events that followed them in the stream. The merge releases events in ``seq``
order instead, so the detect stage sees exactly the order one ``rcwatch run`` process sees,
whatever the workers' speeds.

An event with number ``s`` is released when no partition can still bring a smaller one:
each other partition either holds an event numbered above ``s``, or has shown (by an event
or by the ingest's *tick*) that everything below ``s`` is already in it. Pure: no I/O, no
clock (the caller passes the time); the Kafka source does the reading.

What does not wait:
- an event numbered at or below what its partition already showed, or below what was
  already released: a worker's re-delivery after a takeover (the pipeline drops it by
  event id) or a produce retry that reordered records. It goes on at once, counted
  ``late``;
- an event with no number (written before the numbering): at once, ``unsequenced``.

What bounds the waiting:
- ``max_wait_seconds``: the oldest held event waits no longer. A partition whose worker
  died is back after the takeover (the session timeout and a rebalance); past this, the
  held events go on, counted ``forced``, and that partition's events come ``late``;
- ``max_buffered``: held events in all; past it, the oldest goes on, ``forced``. The
  source pauses reading a partition that holds more than its share, so a fast partition
  waits at the broker, not in memory, while a slow one catches up.

The position to checkpoint is, for each partition, the offset of its first event not yet
released (``positions``), with the partition's mark as of that offset (``marks``): a
restart reads again what was held, never skips it, and need not wait for a quiet
partition's next tick to know how far it had got.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Released", "SeqMerge"]

T = TypeVar("T")

Released = tuple[T, str]  # the item, and how: ordered | late | unsequenced | forced


@dataclass
class _Held(Generic[T]):
    seq: int
    offset: int
    arrived: float
    item: T
    before: int  # the partition's mark before this event


class SeqMerge(Generic[T]):
    def __init__(
        self,
        next_offsets: Mapping[int, int],
        *,
        max_wait_seconds: float,
        max_buffered: int,
        marks: Mapping[int, int] | None = None,
    ) -> None:
        """``next_offsets``: every partition to merge, and the offset it is read from;
        ``marks``: what ``marks`` said with those offsets (a restart)."""
        self.max_wait = max_wait_seconds
        self.max_buffered = max_buffered
        self._read = dict(next_offsets)  # partition -> next offset to read
        self._held: dict[int, deque[_Held[T]]] = {p: deque() for p in self._read}
        # partition -> the highest number it showed (by an event or a tick)
        self._shown = {p: (marks or {}).get(p, -1) for p in self._read}
        self._heads: list[tuple[int, int]] = []  # (seq, partition) of each held head
        self._idle = set(self._read)  # partitions holding nothing
        self.released_seq = -1  # the highest seq released in order
        self.buffered = 0
        self.counts = {"ordered": 0, "late": 0, "unsequenced": 0, "forced": 0}

    def held(self, partition: int) -> int:
        return len(self._held[partition])

    def add(
        self, partition: int, offset: int, seq: int | None, item: T, now: float
    ) -> Released[T] | None:
        """Take an event read from ``partition`` at ``offset``; returns it at once when it
        need not wait (late or unsequenced), else None (held until ``release``)."""
        self._read[partition] = offset + 1
        if seq is None:
            return self._count(item, "unsequenced")
        if seq <= self._shown[partition] or seq <= self.released_seq:
            return self._count(item, "late")
        before, self._shown[partition] = self._shown[partition], seq
        queue = self._held[partition]
        if not queue:
            heapq.heappush(self._heads, (seq, partition))
            self._idle.discard(partition)
        queue.append(_Held(seq, offset, now, item, before))
        self.buffered += 1
        return None

    def tick(self, partition: int, offset: int, seq: int | None) -> None:
        """A tick read from ``partition`` at ``offset``: it holds every event up to ``seq``."""
        self._read[partition] = offset + 1
        if seq is not None and seq > self._shown[partition]:
            self._shown[partition] = seq

    def release(self, now: float, upto: int | None = None) -> Iterable[Released[T]]:
        """The held events that may go on now, in order (a generator: take them one at a
        time, ``positions`` between two is the position after the last one taken);
        ``upto``: none numbered above it goes on in order (what another input, such as
        the window partitions' findings, has caught up with)."""
        heads = self._heads
        while heads:
            seq, partition = heads[0]
            if self._may_go(seq, partition) and (upto is None or seq <= upto):
                how = "ordered"
            elif self.buffered > self.max_buffered or self.oldest_wait(now) >= self.max_wait:
                how = "forced"  # in order still, until the longest-held has gone on
            else:
                return
            heapq.heappop(heads)
            queue = self._held[partition]
            held = queue.popleft()
            self.buffered -= 1
            if queue:
                heapq.heappush(heads, (queue[0].seq, partition))
            else:
                self._idle.add(partition)
            self.released_seq = max(self.released_seq, seq)
            yield self._count(held.item, how)

    def _may_go(self, seq: int, partition: int) -> bool:
        shown = self._shown
        # another partition with nothing held may still bring an event numbered below seq,
        # unless it showed seq - 1 (numbers are unique: seq itself is here)
        return all(p == partition or shown[p] >= seq - 1 for p in self._idle)

    def positions(self) -> dict[int, int]:
        """partition -> the offset to read from after a restart: the first event held,
        else the next to read."""
        return {p: (queue[0].offset if queue else self._read[p]) for p, queue in self._held.items()}

    def marks(self) -> dict[int, int]:
        """partition -> the highest number it had shown before its first held event (or
        in all): saved with ``positions``, it lets a restarted merge go on at once, without
        waiting for a quiet partition's next tick."""
        return {p: (q[0].before if q else self._shown[p]) for p, q in self._held.items()}

    def holds(self, partition: int, seq: int) -> bool:
        """Whether an event numbered ``seq`` from ``partition`` is held: a copy read again
        (a takeover's, a produce retry's) of one still waiting here."""
        return any(h.seq == seq for h in self._held[partition])

    def frontier(self) -> int:
        """The highest number such that every event numbered up to it has been released
        (-1 before every partition showed something). A window partition passes this on
        as its tick: nothing at or below it will follow."""
        low = min(self._shown.values(), default=-1)
        if self._heads:
            low = min(low, self._heads[0][0] - 1)
        return low

    def first_held(self) -> int | None:
        """The lowest offset of any held event, when the partitions merged are lanes of
        one Kafka partition (they share its offsets): where a restart must read from."""
        return min((q[0].offset for q in self._held.values() if q), default=None)

    def oldest_wait(self, now: float) -> float:
        """Seconds the longest-held event has waited (0 when none is held)."""
        return max((now - q[0].arrived for q in self._held.values() if q), default=0.0)

    def _count(self, item: T, how: str) -> Released[T]:
        self.counts[how] += 1
        return item, how
