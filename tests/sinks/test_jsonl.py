from __future__ import annotations

import dataclasses
from pathlib import Path

import orjson
import pytest

from sinks.alert import Alert, Evidence, alert_id
from sinks.base import SinkError
from sinks.jsonl import JsonlSink


def make_alert(n: int, rule: str = "privacy.email") -> Alert:
    return Alert(
        id=alert_id(rule, "enwiki", f"rev:{n}"),
        rule=rule,
        category="privacy",
        severity="medium",
        wiki="enwiki",
        title=f"Page {n}",
        page_url=None,
        diff_url=None,
        performer="Someone",
        performer_kind="registered",
        event_id=f"e{n}",
        event_time="2026-05-05T11:17:40Z",
        detected_at="2026-05-05T11:17:41Z",
        reason="email address in the edit summary",
        evidence=(Evidence("summary", "email", "j***@e***.org", 0.9),),
    )


async def test_appends_and_remembers_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "out" / "alerts.jsonl"
    sink = JsonlSink("j", path)
    await sink.start()
    await sink.send([make_alert(1), make_alert(2)])
    await sink.flush()
    await sink.close()
    again = JsonlSink("j", path)
    await again.start()
    assert list(again.delivered_ids()) == [make_alert(1).id, make_alert(2).id]
    await again.send([make_alert(3)])
    await again.close()
    assert len(path.read_bytes().splitlines()) == 3


async def test_torn_last_line_is_repaired(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    full = make_alert(1).to_json() + b"\n"
    path.write_bytes(full + make_alert(2).to_json()[:40])
    sink = JsonlSink("j", path)
    await sink.start()
    assert list(sink.delivered_ids()) == [make_alert(1).id]
    assert sink.repaired_bytes == 40
    await sink.send([make_alert(2)])
    await sink.close()
    assert path.read_bytes() == full + make_alert(2).to_json() + b"\n"


async def test_only_the_tail_is_scanned(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    path.write_bytes(b"".join(make_alert(i).to_json() + b"\n" for i in range(100)))
    sink = JsonlSink("j", path, scan_tail_bytes=2000)
    await sink.start()
    known = list(sink.delivered_ids())
    assert 0 < len(known) < 100 and known[-1] == make_alert(99).id
    await sink.close()


async def test_unwritable_path_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "dir.jsonl").mkdir()
    with pytest.raises(SinkError, match="cannot open") as err:
        await JsonlSink("j", tmp_path / "dir.jsonl").start()
    assert not err.value.retryable


async def test_undecodable_lines_in_the_alert_file_do_not_stop_a_start(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    good = make_alert(1)
    path.write_bytes(b"\xff\xfe garbage\n" + good.to_json() + b"\n{torn")
    sink = JsonlSink("j", path)
    await sink.start()
    assert list(sink.delivered_ids()) == [good.delivery_id]
    await sink.close()
    assert not path.read_bytes().endswith(b"{torn"), "the torn last line was cut"


async def test_a_full_disk_never_leaves_a_torn_line_nor_doubles_an_alert(
    small_tmpfs: Path,
) -> None:
    """Defect: a write cut short by a full disk was left in place and the runner's retry
    appended the whole batch after it: a corrupt line mid-file, the alert once unreadable
    (lost for good once the checkpoint passed it) or written twice."""
    from tests.conftest import fill_up

    path = small_tmpfs / "alerts.jsonl"
    sink = JsonlSink("j", path)
    await sink.start()
    await sink.send([make_alert(0)])
    filler = fill_up(small_tmpfs)
    big = dataclasses.replace(make_alert(1), reason="x" * 20_000)  # more than the page left
    before = path.read_bytes()
    with pytest.raises(SinkError):
        await sink.send([big])
    assert path.read_bytes() == before, "the partial line was cut back"
    filler.unlink()
    await sink.send([big])  # the runner's retry, once there is room again
    await sink.close()
    lines = path.read_bytes().splitlines()
    assert [orjson.loads(x)["id"] for x in lines] == [make_alert(0).id, big.id]
