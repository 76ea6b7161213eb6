"""The ledger of delivered ids: a torn or tampered file never stops a start."""

from __future__ import annotations

import os
from pathlib import Path

from sinks.dedup import Ledger


def test_lines_that_are_not_ids_are_moved_aside_and_counted(tmp_path: Path) -> None:
    """Defect: one line of invalid UTF-8 in a ledger raised UnicodeDecodeError on every
    start, so the monitor could not start until someone edited the file by hand."""
    path = tmp_path / "ledger" / "stdout.ids"
    path.parent.mkdir()
    path.write_bytes(b"a1\n\xff\xfe not utf-8\nb2~2\nwith space\n\x1b[2J\nc3\n")
    ledger = Ledger(path)
    assert ledger.open() == ["a1", "b2~2", "c3"]
    assert ledger.corrupt == 3
    [aside] = list(path.parent.glob("stdout.ids.corrupt-*"))
    assert aside.read_bytes().count(b"\n") == 3
    ledger.record(["d4"])
    ledger.close()
    again = Ledger(path)
    assert again.open() == ["a1", "b2~2", "c3", "d4"] and again.corrupt == 0
    again.close()
    assert (os.stat(path).st_mode & 0o777) == 0o600


def test_a_new_ledger_directory_is_private(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "state" / "ledger" / "stdout.ids")
    ledger.open()
    ledger.close()
    assert (os.stat(tmp_path / "state" / "ledger").st_mode & 0o777) == 0o700


def test_a_full_disk_neither_tears_nor_drops_recorded_ids(small_tmpfs: Path) -> None:
    """Defect: record() ignored short writes: on a disk filling up part of the ids landed,
    the last one torn, the next append glued onto it, and 38 of 51 ids were gone after a
    restart (alerts delivered again). Now a failed append is cut back and its ids wait in
    memory until there is room (a real tmpfs that fills up)."""
    import pytest

    from tests.conftest import fill_up

    ledger = Ledger(small_tmpfs / "stdout.ids")
    ledger.open()
    first = [f"{i:024x}" for i in range(150)]  # most of one 4 KiB page
    ledger.record(first)
    filler = fill_up(small_tmpfs)  # no page left; the ledger's page has ~350 bytes
    batch = [f"{i:024x}" for i in range(1000, 1050)]  # 1,250 bytes: does not fit
    with pytest.raises(OSError, match="No space left"):
        ledger.record(batch)
    assert ledger.pending == len(batch)
    lines = (small_tmpfs / "stdout.ids").read_bytes().split(b"\n")
    assert lines[-1] == b"" and all(len(x) == 24 for x in lines[:-1]), "no torn id"
    filler.unlink()
    ledger.record(["f" * 24])  # room again: the waiting ids go first
    assert ledger.pending == 0
    ledger.close()
    known = Ledger(small_tmpfs / "stdout.ids").open()
    assert known == [*first, *batch, "f" * 24]
