"""The delivery layer with hostile state: a record no transport can send is set aside on its
own, never with the batch around it."""

from __future__ import annotations

from pathlib import Path

import orjson

from sinks.delivery import DeliveryConfig, SpooledSink, read_dead_letters
from sinks.memory import MemoryTransport
from sinks.metrics import Metrics
from tests.harness import metric_total


def _alert(i: int) -> dict[str, object]:
    return {"id": f"a{i}", "rule": "r", "category": "privacy", "severity": "low", "count": 1}


async def test_one_bad_record_at_the_head_of_the_spool_is_set_aside_alone(
    tmp_path: Path,
) -> None:
    """Defect: an undecodable record at the head of a 100-alert spool failed the whole chunk
    and all 100 went to dead letters."""
    state = tmp_path / "sink"
    state.mkdir()
    records = [{"alert": {"garbage": True}}] + [{"alert": _alert(i)} for i in range(100)]
    (state / "redrive-1.ndjson").write_bytes(
        b"".join(orjson.dumps({**r, "reason": "x", "attempts": 1}) + b"\n" for r in records)
    )
    transport = MemoryTransport()
    metrics = Metrics()
    sink = SpooledSink(
        "s", transport, state_dir=state, config=DeliveryConfig(max_attempts=2), metrics=metrics
    )
    await sink.start()
    try:
        assert await sink.wait_drained(10)
    finally:
        await sink.close()
    assert [p["id"] for p in transport.received] == [f"a{i}" for i in range(100)]
    dead = read_dead_letters(state / "dead-letter.ndjson")
    assert [d["reason"] for d in dead] == ["undecodable"]
    assert metric_total(metrics, "rcwatch_sink_dead_letters", reason="undecodable") == 1


async def test_a_record_that_stops_decoding_in_the_spool_is_set_aside_alone(
    tmp_path: Path,
) -> None:
    state = tmp_path / "sink"
    transport = MemoryTransport()
    transport.down = True
    sink = SpooledSink("s", transport, state_dir=state, config=DeliveryConfig())
    await sink.start()
    from tests.sinks.test_jsonl import make_alert

    await sink.send([make_alert(i) for i in range(5)])  # the target is down: spooled
    await sink.close()
    spool = state / "spool.ndjson"
    lines = spool.read_bytes().splitlines()
    spool.write_bytes(b"\n".join([lines[0][:10] + b"\xff" + lines[0][10:], *lines[1:]]) + b"\n")
    transport.down = False
    again = SpooledSink("s", transport, state_dir=state, config=DeliveryConfig())
    await again.start()
    try:
        assert await again.wait_drained(10)
    finally:
        await again.close()
    assert len(transport.received) == 4
    assert (state / "spool.corrupt").exists(), "the torn record is kept for inspection"
