from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest

from sinks.archive import ArchiveStats, EventArchive, iter_lines


def _fill(archive: EventArchive, ids: range) -> None:
    for i in ids:
        archive.append(f"[{i}]", f"id-{i}", b'{"meta": {"id": "id-%d"}}' % i, i)


def _ids(directory: Path) -> list[str]:
    return [
        orjson.loads(line)["event_id"]
        for f in sorted(directory.glob("*.gz"))
        for line in iter_lines(f)
    ]


def test_lines_are_capture_wrappers_readable_by_gzip(tmp_path: Path) -> None:
    a = EventArchive(tmp_path)
    a.start()
    a.append('[{"offset": 1}]', "e1", '{"meta": {"id": "e1"}, "t": "é"}'.encode(), 5)
    a.close()
    [f] = a.files()
    [line] = gzip.decompress(f.read_bytes()).splitlines()
    d = orjson.loads(line)
    assert d == {
        "event_id": "e1",
        "id": '[{"offset": 1}]',
        "recv_ns": 5,
        "data": '{"meta": {"id": "e1"}, "t": "é"}',
    }


def test_rotation_and_retention(tmp_path: Path) -> None:
    a = EventArchive(tmp_path, rotate_bytes=2000, keep_files=3)
    a.start()
    for start in range(0, 200, 20):
        _fill(a, range(start, start + 20))
        a.flush()
    a.close()
    files = a.files()
    assert len(files) == 3 and a.files_opened > 3
    assert _ids(tmp_path)[-1] == "id-199"


def test_restart_skips_events_already_archived(tmp_path: Path) -> None:
    a = EventArchive(tmp_path)
    a.start()
    _fill(a, range(10))
    a.flush()
    # a crash mid-write leaves a torn member after the good ones
    path = a.current_path
    assert path is not None
    _fill(a, range(10, 20))
    a._buf, pending = [], a._buf
    with path.open("ab") as f:
        member = gzip.compress(b"".join(pending))
        f.write(member[: len(member) // 2])
    b = EventArchive(tmp_path)
    b.start()
    _fill(b, range(0, 20))  # the restart re-receives everything after its checkpoint
    assert b.duplicates == 10
    b.close()
    ids = _ids(tmp_path)
    assert sorted(ids) == sorted(f"id-{i}" for i in range(20))


def test_torn_member_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "x.gz"
    # a torn member: its complete lines are kept, its partial last line is not
    path.write_bytes(gzip.compress(b"a\nb\n") + gzip.compress(b"c\nd\n")[:-8])
    stats = ArchiveStats()
    assert list(iter_lines(path, stats)) == [b"a", b"b", b"c", b"d"]
    assert stats.truncated
    body = b"".join(b"line %d\n" % i for i in range(5000))
    path.write_bytes(gzip.compress(b"a\n") + gzip.compress(body)[:200])
    stats = ArchiveStats()
    got = list(iter_lines(path, stats))
    assert stats.truncated and got[0] == b"a" and 1 < len(got) < 5001
    assert got[1:] == [b"line %d" % i for i in range(len(got) - 1)]


def test_plain_file_without_final_newline(tmp_path: Path) -> None:
    path = tmp_path / "x.ndjson"
    path.write_bytes(b"a\r\n\nb")
    assert list(iter_lines(path)) == [b"a", b"b"]


def test_restarts_within_one_second_remember_every_recent_file(tmp_path: Path) -> None:
    """File names sort by second and pid: the newest file is chosen by modification time,
    and several files seed the memory, so no re-delivered event is archived twice."""
    import os

    first = tmp_path / "events-20260505T111740Z-99999-0001.ndjson.gz"
    second = tmp_path / "events-20260505T111740Z-100000-0001.ndjson.gz"  # sorts first
    for path, ids in ((first, range(0, 10)), (second, range(10, 20))):
        a = EventArchive(tmp_path)
        _fill(a, ids)
        a.flush()
        a.close()
        assert a.current_path is not None
        a.current_path.rename(path)
    os.utime(first, ns=(1, 1))  # the older file
    os.utime(second, ns=(2, 2))
    again = EventArchive(tmp_path)
    again.start()
    _fill(again, range(0, 25))  # everything re-delivered, and 5 new
    again.close()
    assert again.duplicates == 20 and again.events_written == 5
    assert (os.stat(again.files()[-1]).st_mode & 0o777) == 0o600


def test_an_archive_line_with_an_undecodable_id_does_not_stop_a_start(tmp_path: Path) -> None:
    import gzip as gz

    bad = b'{"event_id":"\xff\xfe","id":null,"recv_ns":1,"data":"{}"}\n'
    good = b'{"event_id":"e1","id":null,"recv_ns":2,"data":"{}"}\n'
    (tmp_path / "events-20260505T111740Z-1-0001.ndjson.gz").write_bytes(gz.compress(bad + good))
    archive = EventArchive(tmp_path)
    archive.start()  # raised UnicodeDecodeError on every start before
    assert not archive.append(None, "e1", b"{}", 3), "e1 is remembered as archived"
    archive.close()


def test_a_torn_member_in_the_middle_hides_nothing_after_it(tmp_path: Path) -> None:
    """Defect: reading stopped at the first torn member, so every later member (a full
    disk episode, then days of events) was invisible to replay, backtests and the
    re-delivery memory. Readers now resume at the next member header."""
    path = tmp_path / "x.gz"
    body = b"".join(b"line %d\n" % i for i in range(3000))
    torn = gzip.compress(body)[:300]
    garbage = b"not gzip at all \x1f\x8b but no member either"
    path.write_bytes(gzip.compress(b"a\n") + torn + gzip.compress(b"b\nc\n") + garbage
                     + gzip.compress(b"d\n"))  # fmt: skip
    stats = ArchiveStats()
    got = list(iter_lines(path, stats))
    assert got[0] == b"a" and got[-3:] == [b"b", b"c", b"d"]
    assert got[1:-3] == [b"line %d" % i for i in range(len(got) - 4)], "no partial line"
    assert stats.truncated and stats.damaged_members == 2


def test_an_unreadable_archive_file_does_not_stop_a_start(tmp_path: Path) -> None:
    import os

    if os.geteuid() == 0:
        # root reads a 000 file anyway; a directory named like an archive file fails to open
        (tmp_path / "events-20260505T111740Z-1-0001.ndjson.gz").mkdir()
    else:
        bad = tmp_path / "events-20260505T111740Z-1-0001.ndjson.gz"
        bad.write_bytes(gzip.compress(b"{}\n"))
        bad.chmod(0)
    archive = EventArchive(tmp_path)
    archive.start()
    assert archive.unreadable == 1
    _fill(archive, range(3))
    archive.close()
    assert archive.events_written == 3


def test_a_member_cut_short_by_a_full_disk_is_cut_back(small_tmpfs: Path) -> None:
    """Defect: the part of a member written before ENOSPC stayed in the file and the
    retry wrote the whole member after it. Now the file is cut back to its last whole
    member, and every event is readable after the retry (a real tmpfs that fills up)."""
    import os

    from tests.conftest import fill_up

    def event(i: int) -> bytes:  # incompressible: one member is larger than what is left
        return orjson.dumps({"meta": {"id": f"ev-{i}"}, "noise": os.urandom(1500).hex()})

    archive = EventArchive(small_tmpfs / "archive")
    archive.start()
    archive.append(None, "ev-0", event(0), 0)
    archive.flush()
    assert archive.current_path is not None
    size = archive.current_path.stat().st_size
    filler = fill_up(small_tmpfs)
    with open(filler, "r+b") as f:  # leave ~8 KiB: the next member (~30 KiB) does not fit
        f.truncate(max(0, os.path.getsize(filler) - 8192))
    for i in range(1, 11):
        archive.append(None, f"ev-{i}", event(i), 0)
    with pytest.raises(OSError, match="No space left"):
        archive.flush()
    assert archive.current_path.stat().st_size == size, "the partial member was cut back"
    filler.unlink()
    archive.flush()  # the runner's retry at its next commit
    for i in range(11, 21):
        archive.append(None, f"ev-{i}", event(i), 0)
    archive.close()
    stats = ArchiveStats()
    ids = [orjson.loads(x)["event_id"] for p in archive.files() for x in iter_lines(p, stats)]
    assert ids == [f"ev-{i}" for i in range(21)] and not stats.truncated
