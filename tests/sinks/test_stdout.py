from __future__ import annotations

import io
from pathlib import Path

import pytest

from sinks.base import SinkError
from sinks.stdout import StdoutSink
from tests.sinks.test_jsonl import make_alert


async def test_readable_line_and_ledger(tmp_path: Path) -> None:
    out = io.StringIO()
    sink = StdoutSink("s", ledger_path=tmp_path / "ledger" / "s.ids", stream=out)
    await sink.start()
    await sink.send([make_alert(1)])
    await sink.close()
    line = out.getvalue()
    assert line.startswith("[MEDIUM] privacy.email enwiki Page 1 by Someone (registered)")
    assert "j***@e***.org in summary" in line
    again = StdoutSink("s", ledger_path=tmp_path / "ledger" / "s.ids", stream=io.StringIO())
    await again.start()
    assert list(again.delivered_ids()) == [make_alert(1).id]


async def test_json_format() -> None:
    out = io.StringIO()
    sink = StdoutSink("s", fmt="json", stream=out)
    await sink.send([make_alert(1)])
    assert '"rule":"privacy.email"' in out.getvalue()


async def test_closed_stream_is_reported() -> None:
    out = io.StringIO()
    out.close()
    with pytest.raises(SinkError) as err:
        await StdoutSink("s", stream=out).send([make_alert(1)])
    assert not err.value.retryable
