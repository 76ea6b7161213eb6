from __future__ import annotations

from pathlib import Path

import pytest

from streams.checkpoint import CheckpointError, CheckpointStore, CommitTracker, StateDirLock


def test_save_load_and_reset(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "state")
    assert store.load() is None
    store.save('[{"topic":"t","partition":0,"offset":5}]', "recentchange", "2026-05-05T11:17:40Z")
    cp = store.load()
    assert cp is not None and cp.last_event_id.endswith('"offset":5}]')
    assert cp.streams == "recentchange" and cp.updated_at
    assert not list((tmp_path / "state").glob("*.tmp")), "temp file left behind"
    assert store.reset() and store.load() is None and not store.reset()


def test_corrupt_checkpoint_is_reported(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    store.path.write_text("{torn")
    with pytest.raises(CheckpointError, match="is not JSON"):
        store.load()  # the start resolver sets such a file aside (tests/streams/test_start.py)


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


def test_state_dir_is_exclusive(tmp_path: Path) -> None:
    first, second = StateDirLock(tmp_path), StateDirLock(tmp_path)
    first.acquire()
    with pytest.raises(CheckpointError, match="in use"):
        second.acquire()
    first.release()
    second.acquire()
    second.release()
