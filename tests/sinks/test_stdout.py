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


async def test_a_full_disk_never_prints_an_alert_twice(small_tmpfs: Path) -> None:
    """Defect: the alert was printed, then the ledger append failed, and the OSError made
    the runner send (print) it again on every retry while the disk stayed full. Now the
    sink reports the ledger problem (log, rcwatch_sink_ledger_errors_total) and the ids
    are written once there is room (a real tmpfs that fills up)."""
    from sinks.metrics import Metrics
    from tests.conftest import fill_up
    from tests.harness import metric_total

    out = io.StringIO()
    path = small_tmpfs / "ledger" / "s.ids"
    sink = StdoutSink("s", ledger_path=path, stream=out)
    metrics = Metrics()
    sink.bind_metrics(metrics)
    await sink.start()
    filler = fill_up(small_tmpfs)
    alerts = [make_alert(i) for i in range(200)]  # more ids than the free part of a page
    await sink.send(alerts)  # printed: must not raise, or the runner prints them again
    assert len(out.getvalue().splitlines()) == 200
    assert metric_total(metrics, "rcwatch_sink_ledger_errors", sink="s") == 200
    await sink.flush()  # still full: logged, not raised
    filler.unlink()
    await sink.flush()
    await sink.close()
    again = StdoutSink("s", ledger_path=path, stream=io.StringIO())
    await again.start()
    assert list(again.delivered_ids()) == [a.delivery_id for a in alerts]
