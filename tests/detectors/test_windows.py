"""The page memory's bounds: per page and in total, in memory and in the snapshot."""

from __future__ import annotations

import orjson

from detectors.base import DetectionContext
from detectors.event import RecentChange, decode_event
from detectors.windows import _PER_PAGE_PII_MAX, WindowStore


def _edit(title: str, n: int) -> RecentChange:
    return decode_event(
        orjson.dumps(
            {
                "meta": {"id": f"e{n}", "dt": "2026-05-05T11:17:40Z", "domain": "x"},
                "wiki": "enwiki",
                "type": "edit",
                "namespace": 1,
                "title": title,
                "user": f"Editor{n % 7}",
                "revision": {"old": n, "new": n + 1},
            }
        )
    )


REMOVED = DetectionContext(removed_text="(fingerprints given)")


def _remove(store: WindowStore, change: RecentChange, when: float, fps: list[str]) -> None:
    store.remember(change, REMOVED, when, removed_pii=frozenset(fps))


def _removed_on(store: WindowStore, change: RecentChange) -> frozenset[str]:
    return store.context_for(change, DetectionContext(), ()).removed_pii or frozenset()


def test_one_page_edited_again_and_again_stays_bounded() -> None:
    """Issue 20, item 7: 600 edits of one page, each removing 1,000 addresses, grew the
    memory and the checkpoint snapshot without bound (8.4 MB)."""
    store = WindowStore()
    page = _edit("Talk:Spam list", 0)
    for n in range(600):
        fps = [f"{n:04d}-{i:04d}" for i in range(1000)]
        _remove(store, page, 1000.0 + n, fps)
        assert store.size <= 1 + _PER_PAGE_PII_MAX
    remembered = _removed_on(store, page)
    assert len(remembered) == _PER_PAGE_PII_MAX
    assert all(fp.startswith("0599-") for fp in remembered), "the newest are kept"
    assert len(orjson.dumps(store.snapshot())) < 50_000


def test_fingerprints_expire_while_the_page_keeps_being_edited() -> None:
    store = WindowStore(pii_memory_seconds=100.0)
    page = _edit("Talk:Busy", 0)
    _remove(store, page, 0.0, ["old"])
    for t in range(1, 300, 10):  # edited every 10 s, removing something each time
        _remove(store, page, float(t), [f"fp{t}"])
    remembered = _removed_on(store, page)
    assert "old" not in remembered
    assert "fp291" in remembered and "fp181" not in remembered
    [[_page, kept]] = store.snapshot()["removed"]
    assert len(kept) == 11, "the expired are forgotten, not only hidden"


def test_a_fingerprint_removed_again_is_fresh_again() -> None:
    store = WindowStore(pii_memory_seconds=100.0)
    page = _edit("Talk:Busy", 0)
    _remove(store, page, 0.0, ["again", "once"])
    _remove(store, page, 90.0, ["again"])
    _remove(store, page, 150.0, ["later"])
    assert _removed_on(store, page) == {"again", "later"}


def test_fingerprints_count_toward_the_total_cap() -> None:
    store = WindowStore(max_keys=1000)
    for n in range(50):
        _remove(store, _edit(f"Talk:Page {n}", n), float(n), [f"{n}-{i}" for i in range(200)])
        assert store.size <= 1000
    assert store.evictions > 0
    assert len(_removed_on(store, _edit("Talk:Page 49", 49))) == 200, "the newest page stays"
    assert _removed_on(store, _edit("Talk:Page 0", 0)) == frozenset(), "the oldest went"
    restored = store.empty_copy()
    restored.restore(orjson.loads(orjson.dumps(store.snapshot())))
    assert restored.size == store.size
