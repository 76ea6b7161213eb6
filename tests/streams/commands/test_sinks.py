"""``rcwatch sinks status|test|redrive`` against real local endpoints."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from sinks.delivery import DeliveryConfig, SpooledSink, sink_state_dir
from sinks.memory import MemoryTransport
from streams.commands.cli import main
from tests.privatedata import SECRETS, private_alerts
from tests.sinks.endpoints import HttpReceiver


def _config(tmp_path: Path, base: str) -> Path:
    path = tmp_path / "rcwatch.yaml"
    path.write_text(
        f"""\
state_dir: {tmp_path / "state"}
sinks:
  - type: jsonl
    name: file
  - type: webhook
    name: hook
    url: {base}/hook/with-token-in-path
    hmac_key: {{env: RCWATCH_TEST_HMAC}}
    route: {{categories: [privacy], min_severity: high}}
"""
    )
    return path


async def test_test_command_reaches_the_target_and_reports_refusals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RCWATCH_TEST_HMAC", "k3y")
    receiver = HttpReceiver()
    base = await receiver.start()
    try:
        config = _config(tmp_path, base)
        # main() runs its own event loop: run it in a thread beside this one
        import asyncio

        code = await asyncio.to_thread(main, ["sinks", "test", "hook", "--config", str(config)])
        out = capsys.readouterr().out
        assert code == 0, out
        assert out.startswith("OK   hook")
        assert len(receiver.requests) == 1
        assert orjson.loads(receiver.requests[0].body)["alerts"][0]["rule"] == "rcwatch.test"
        receiver.faults = [403]
        code = await asyncio.to_thread(main, ["sinks", "test", "hook", "--config", str(config)])
        out = capsys.readouterr().out
        assert code == 1 and "HTTP 403" in out and "refused" in out
        assert "with-token-in-path" not in out  # a URL path can carry a token: never shown
    finally:
        await receiver.stop()


async def test_status_and_redrive_bring_dead_letters_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    monkeypatch.setenv("RCWATCH_TEST_HMAC", "k3y")
    config = _config(tmp_path, "http://127.0.0.1:9")
    alerts = private_alerts()
    state = sink_state_dir(tmp_path / "state", "hook")
    # a run whose target refused everything: the alerts are dead letters
    transport = MemoryTransport()
    transport.reject = True
    sink = SpooledSink("hook", transport, state_dir=state, config=DeliveryConfig())
    await sink.start()
    await sink.send(alerts)  # the first is refused at once, the rest from the spool
    assert await sink.wait_drained(5)
    await sink.close()
    assert sink.dead_lettered == len(alerts)

    code = await asyncio.to_thread(main, ["sinks", "status", "--config", str(config)])
    out = capsys.readouterr().out
    assert code == 0
    assert f"dead letters {len(alerts)}" in out
    assert "severity >= high" in out and "categories privacy" in out
    assert "with-token-in-path" not in out
    for secret in SECRETS:
        assert secret not in out

    code = await asyncio.to_thread(main, ["sinks", "redrive", "hook", "--config", str(config)])
    assert code == 0 and f"{len(alerts)} dead-lettered alerts queued" in capsys.readouterr().out
    assert not (state / "dead-letter.ndjson").exists()

    # the next start puts them back in the spool and delivers them, in order
    transport.reject = False
    again = SpooledSink("hook", transport, state_dir=state, config=DeliveryConfig())
    await again.start()
    assert await again.wait_drained(5)
    await again.close()
    assert [p["id"] for p in transport.received] == [a.id for a in alerts]

    code = await asyncio.to_thread(main, ["sinks", "redrive", "hook", "--config", str(config)])
    assert code == 0 and "no dead letters" in capsys.readouterr().out
    code = await asyncio.to_thread(main, ["sinks", "redrive", "nope", "--config", str(config)])
    assert code == 2
