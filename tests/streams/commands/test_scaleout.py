"""A stage that stands by: a stop or a lost lease that came while it was setting up still
reaches it once it runs."""

from __future__ import annotations

from streams.commands.scaleout import _Standby


class _Stage:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def stop(self) -> None:
        self.calls.append("stop")

    def fence(self) -> None:
        self.calls.append("fence")

    def health(self) -> tuple[bool, dict[str, object]]:
        return True, {"state": "active"}


async def test_a_signal_during_the_set_up_stops_the_stage_once_it_runs() -> None:
    role, stage = _Standby("ingest"), _Stage()
    assert role.health() == (True, {"role": "ingest", "state": "standby"})
    role.stop()
    role.activate(stage.stop, stage.health, stage.fence)
    assert stage.calls == ["stop"]
    assert role.health() == (True, {"state": "active"})


async def test_a_lease_lost_during_the_set_up_fences_and_stops_the_stage() -> None:
    """Defect (review): a lease lost while the ingest read the positions topic stopped
    nothing, and the ingest then ran beside the new holder."""
    role, stage = _Standby("detect"), _Stage()
    role.lost()
    assert not role.stopping.is_set()  # lost is not a stop request: the exit says why
    role.activate(stage.stop, stage.health, stage.fence)
    assert stage.calls == ["fence", "stop"]


async def test_a_lease_lost_while_running_fences_before_it_stops() -> None:
    role, stage = _Standby("detect"), _Stage()
    role.activate(stage.stop, stage.health, stage.fence)
    assert stage.calls == []
    role.lost()
    assert stage.calls == ["fence", "stop"]
