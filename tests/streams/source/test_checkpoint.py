from __future__ import annotations

from pathlib import Path

import pytest

from streams.source.checkpoint import CheckpointError, CheckpointStore, CommitTracker, StateDirLock


def test_save_load_and_reset(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "state")
    assert store.load() is None
    store.save('[{"topic":"t","partition":0,"offset":5}]', "recentchange", "2026-05-05T11:17:40Z")
    cp = store.load()
    assert cp is not None and cp.last_event_id.endswith('"offset":5}]')
    assert cp.streams == "recentchange" and cp.updated_at
    assert not list((tmp_path / "state").glob("*.tmp")), "temp file left behind"
    assert store.reset() and store.load() is None and not store.reset()


def _pos(offset: int) -> str:
    return f'[{{"topic":"t","partition":0,"offset":{offset}}}]'


def test_the_checkpoint_before_is_kept_with_its_state(tmp_path: Path) -> None:
    """Every save keeps the checkpoint it replaces, and that checkpoint's state file,
    as the fallback for a corrupt one; older state files go."""
    store = CheckpointStore(tmp_path)
    store.save(_pos(1), "recentchange", None, state=b'{"n": 1}')
    # the very first checkpoint has no predecessor: a copy stands in for one
    assert store.load_previous() == store.load()
    for n in range(2, 4):
        store.save(_pos(n), "recentchange", None, state=b'{"n": %d}' % n)
    cp, prev = store.load(), store.load_previous()
    assert cp is not None and prev is not None
    assert (cp.last_event_id, prev.last_event_id) == (_pos(3), _pos(2))
    assert store.load_state(prev) == b'{"n": 2}' and store.load_state(cp) == b'{"n": 3}'
    assert len(list(tmp_path.glob("state-*.json"))) == 2
    # a new process (a restart) still keeps the state of the checkpoint it rotates out
    again = CheckpointStore(tmp_path)
    again.save(_pos(4), "recentchange", None, state=b'{"n": 4}')
    prev = again.load_previous()
    assert prev is not None and prev.last_event_id == _pos(3)
    assert again.load_state(prev) == b'{"n": 3}'
    assert len(list(tmp_path.glob("state-*.json"))) == 2
    assert again.reset() and again.load() is None and again.load_previous() is None


def test_state_file_names_never_repeat(tmp_path: Path) -> None:
    """Names are not a per-process counter: two processes (or a restart with the same
    pid, as in a container) never write the same state file name."""
    a, b = CheckpointStore(tmp_path / "a"), CheckpointStore(tmp_path / "b")
    names = set()
    for _ in range(5):
        for store in (a, b):
            cp = store.save(_pos(1), "recentchange", None, state=b"{}")
            names.add(cp.state_file)
    assert len(names) == 10


def test_corrupt_checkpoint_is_reported(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    store.path.write_text("{torn")
    with pytest.raises(CheckpointError, match="is not JSON"):
        store.load()  # the start resolver sets such a file aside (source/test_start.py)


def test_watermark_only_passes_a_finished_prefix() -> None:
    t = CommitTracker()
    a, b, c = t.begin("a"), t.begin("b"), t.begin("c")
    t.done(b, "tb")
    assert t.in_flight == 3
    assert t.watermark_id is None
    t.done(a, "ta")
    assert t.watermark_time == "tb"
    assert t.watermark_id == "b"
    d = t.begin(None)  # a batch without ids (replay) does not move the position
    t.done(d)
    assert t.watermark_id == "b"
    t.done(c, "tc")
    assert t.watermark_id == "c" and t.in_flight == 0


def test_a_batch_of_events_seen_before_keeps_the_last_known_time() -> None:
    """Defect (issue 20, item 12): a batch holding only re-delivered events has no event
    time of its own, and the watermark's time became None."""
    t = CommitTracker()
    a, b = t.begin("a"), t.begin("b")
    t.done(a, "2026-05-05T11:17:40Z")
    t.done(b, None)  # the resume overlap: the same event again, dropped as a duplicate
    assert (t.watermark_id, t.watermark_time) == ("b", "2026-05-05T11:17:40Z")


def test_a_save_without_an_event_time_keeps_the_one_it_replaces(tmp_path: Path) -> None:
    """Defect (issue 20, item 12): after a restart that only re-received duplicates the
    checkpoint was rewritten with ``"event_time": null``, and the next start had no time
    to pin a live-end entry to (``resuming from checkpoint event_time=None``)."""
    CheckpointStore(tmp_path).save(_pos(5), "recentchange", "2026-05-05T11:17:40Z")
    store = CheckpointStore(tmp_path)  # a restart: a new process, the file on disk
    store.save(_pos(5), "recentchange", None)
    cp = store.load()
    assert cp is not None and cp.event_time == "2026-05-05T11:17:40Z"
    store.save(_pos(6), "recentchange", None)  # and from what this process saved
    assert (store.load() or cp).event_time == "2026-05-05T11:17:40Z"
    store.save(_pos(7), "recentchange", "2026-05-05T11:18:00Z")
    assert (store.load() or cp).event_time == "2026-05-05T11:18:00Z"
    assert store.reset()
    store.save(_pos(1), "recentchange", None)
    assert (store.load() or cp).event_time is None, "after a reset nothing is known"


def test_state_dir_is_exclusive(tmp_path: Path) -> None:
    first, second = StateDirLock(tmp_path), StateDirLock(tmp_path)
    first.acquire()
    with pytest.raises(CheckpointError, match="in use"):
        second.acquire()
    first.release()
    second.acquire()
    second.release()


def test_a_handed_over_position_is_taken_unless_the_directory_has_a_newer_one(
    tmp_path: Path,
) -> None:
    """A standby taking over: it resumes from what the last active process handed over,
    unless this directory's own checkpoint is as new (this host was that process)."""
    store = CheckpointStore(tmp_path)
    store.save("[]", "kafka:en", "2026-11-30T10:00:00Z", b"mine")
    assert not store.adopt_if_newer('[{"x": 1}]', "kafka:en", "2026-11-30T09:00:00Z", b"old")
    cp = store.load()
    assert cp is not None and store.load_state(cp) == b"mine"
    assert not store.adopt_if_newer("[]", "kafka:en", None)  # the very same position
    assert store.adopt_if_newer('[{"x": 2}]', "kafka:en", "2026-11-30T11:00:00Z", b"new")
    cp = store.load()
    assert cp is not None and cp.last_event_id == '[{"x": 2}]'
    assert store.load_state(cp) == b"new"
