"""The on-disk spool: order, compaction, crash and disk-full repair, read-only inspection."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from sinks.spool import Spool, SpoolFull


def _records(n: int, start: int = 0, pad: int = 700) -> list[dict[str, Any]]:
    return [
        {"alert": {"id": f"a{i}", "rule": "r", "category": "privacy", "severity": "low",
                   "reason": "x" * pad}}
        for i in range(start, start + n)
    ]  # fmt: skip


def _ids(records: list[dict[str, Any]]) -> list[str]:
    return [r["alert"]["id"] for r in records]


def _open(path: Path, max_bytes: int = 64 << 20) -> Spool:
    s = Spool(path, max_bytes=max_bytes)
    s.open()
    return s


def test_order_survives_compaction_and_restarts(tmp_path: Path) -> None:
    spool = _open(tmp_path)
    spool.append(_records(3000))  # ~2.1 MB: popping half of it compacts the file
    seen: list[str] = []
    while len(spool) > 1200:
        batch = spool.peek(100)
        seen += _ids(batch)
        spool.pop(len(batch))
    assert spool.path.stat().st_size < 1_500_000, "the consumed part was compacted away"
    spool.append(_records(10, start=3000))
    spool.close()
    again = _open(tmp_path)  # a restart resumes at the first record not yet popped
    while len(again):
        batch = again.peek(250)
        seen += _ids(batch)
        again.pop(len(batch))
    assert seen == [f"a{i}" for i in range(3010)]
    assert again.path.stat().st_size == 0
    assert not list(tmp_path.glob("*.tmp"))


def test_torn_last_record_is_cut_and_corrupt_ones_moved_aside(tmp_path: Path) -> None:
    spool = _open(tmp_path)
    spool.append(_records(3, pad=10))
    spool.close()
    lines = spool.path.read_bytes().splitlines(keepends=True)
    spool.path.write_bytes(lines[0] + b"not json\n" + lines[1] + lines[2] + b'{"alert": {"id"')
    again = _open(tmp_path)
    assert _ids(again.peek(10)) == ["a0", "a1", "a2"]
    assert again.corrupt == 1
    assert (tmp_path / "spool.corrupt").read_bytes() == b"not json\n"


def test_a_failed_write_leaves_no_half_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk mid-append (simulated: the OS call is the one thing we cannot make fail
    on demand here) rolls the file back; later appends and a restart see whole records."""
    spool = _open(tmp_path)
    spool.append(_records(2, pad=10))
    real_write = os.write
    calls = {"n": 0}

    def short_then_full(fd: int, data: bytes | memoryview) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            return real_write(fd, bytes(data)[:7])  # part of the first record
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", short_then_full)
    with pytest.raises(OSError, match="No space"):
        spool.append(_records(2, start=2, pad=10))
    monkeypatch.undo()
    spool.append(_records(1, start=4, pad=10))
    assert _ids(spool.peek(10)) == ["a0", "a1", "a4"]
    spool.close()
    assert _ids(_open(tmp_path).peek(10)) == ["a0", "a1", "a4"]


def test_cap_refuses_whole_batches_but_an_empty_spool_takes_any(tmp_path: Path) -> None:
    spool = _open(tmp_path, max_bytes=4096)
    spool.append(_records(10))  # larger than the cap, but the spool was empty
    with pytest.raises(SpoolFull):
        spool.append(_records(1, start=10))
    assert len(spool) == 10


def test_attempts_are_kept_per_record_across_restarts(tmp_path: Path) -> None:
    spool = _open(tmp_path)
    spool.append(_records(2, pad=10))
    spool.record_failure(2)
    spool.append(_records(2, start=2, pad=10))
    assert spool.record_failure(4) == [2, 2, 1, 1]
    spool.close()
    again = _open(tmp_path)
    assert again.attempts(4) == [2, 2, 1, 1]
    again.pop(1)
    assert again.attempts(3) == [2, 1, 1]


def test_inspect_reads_without_changing_anything(tmp_path: Path) -> None:
    spool = _open(tmp_path)
    spool.append(_records(3, pad=10))
    spool.pop(1)
    spool.close()
    with spool.path.open("ab") as f:
        f.write(b'{"alert": {"id": "being-writ')  # a live writer's half-written record
    before = spool.path.read_bytes()
    assert Spool.inspect(tmp_path) == (2, len(orjson.dumps(_records(1, pad=10)[0])) * 2 + 2)
    assert spool.path.read_bytes() == before
    assert Spool.inspect(tmp_path / "nothing-here") == (0, 0)


def test_a_crash_while_moving_corrupt_records_aside_loses_nothing(tmp_path: Path) -> None:
    """The rewrite keeps the consumed part, so the old state still points at the right
    record if the process dies before the new state is saved."""
    spool = _open(tmp_path)
    spool.append(_records(6, pad=10))
    spool.pop(3)
    spool.close()
    lines = spool.path.read_bytes().splitlines(keepends=True)
    spool.path.write_bytes(b"".join(lines[:4]) + b"garbage\n" + b"".join(lines[4:]))
    old_state = spool.state_path.read_bytes()
    _open(tmp_path).close()  # quarantines, rewrites, saves a new state...
    spool.state_path.write_bytes(old_state)  # ...which the crash lost
    assert _ids(_open(tmp_path).peek(10)) == ["a3", "a4", "a5"]
