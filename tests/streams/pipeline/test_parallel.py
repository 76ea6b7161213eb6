"""Replays and backtests on several worker processes give exactly what one process gives:
the same alerts (ids, rules, counts, severities, evidence), the same counts of events,
drops, hits and content, in the same order; on the recorded events, on every pattern
scenario, and on input with malformed lines, duplicates, canaries and text to evaluate.
A worker that dies ends the run with one clear line; Ctrl-C leaves no worker behind."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import orjson
import pytest

from detectors.event import RawEvent
from sinks.metrics import Metrics
from streams.app import build_monitor
from streams.settings import JsonlSinkConfig, Settings
from streams.source.replay import ReplaySource
from tests import scenarios as sc
from tests.conftest import REPO, Processes, wait_for


def _write(events: list[RawEvent], path: Path) -> Path:
    """Capture wrappers, the archive's format: the text of scenario edits rides along."""
    with path.open("wb") as f:
        for i, e in enumerate(events):
            line: dict[str, Any] = {
                "data": e.data.decode() if isinstance(e.data, bytes) else e.data
            }
            line["recv_ns"] = i
            if e.content is not None:
                line["content"] = e.content
            f.write(orjson.dumps(line) + b"\n")
    return path


def _everything() -> list[RawEvent]:
    """The recorded minute with every pattern scenario in it, and the awkward cases."""
    events = sc.recorded()
    every_scenario = [e for _, scenario in sc.scenarios() for e in scenario]
    raws = sc.inject(events, every_scenario, every=90)
    first = orjson.loads(events[0])
    canary = {**first, "meta": {**first["meta"], "domain": "canary", "id": "canary-1"}}
    awkward = [
        RawEvent(None, b"{not json", 0),  # malformed
        RawEvent(None, events[5], 0),  # a duplicate of an event already seen
        RawEvent(None, orjson.dumps(canary), 0),
        RawEvent(None, b'{"meta": {"id": "x"}, "title": 5}', 0),  # a wrong type
    ]
    # removed text with more email-like candidates than a recognizer examines: the budget
    # runs out, which is counted (rcwatch_detector_truncated_total) the same way anywhere
    edit = next(orjson.loads(e) for e in events if orjson.loads(e).get("type") == "edit")
    edit["meta"]["id"] = "many-candidates"
    many = " ".join(f"u{i}@ex.org" for i in range(1200))
    awkward.append(
        RawEvent(None, orjson.dumps(edit), 0,
                 {"status": "ok", "added": "hello", "removed": many, "reason": None})
    )  # fmt: skip
    # spread them: some land in the middle of a batch, some at its edges
    for i, extra in enumerate(awkward):
        raws.insert(300 * (i + 1) + i, extra)
    return raws


async def _replay(
    path: Path, tmp: Path, workers: int
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    out = tmp / f"alerts-{workers}.jsonl"
    settings = Settings(state_dir=str(tmp / "state"), sinks=(JsonlSinkConfig(path=str(out)),))
    metrics = Metrics()
    monitor = build_monitor(
        settings, ReplaySource([path]), metrics=metrics, archive=False, workers=workers
    )
    summary = await monitor.run()
    alerts = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    for a in alerts:
        a.pop("detected_at")  # the wall clock
    counts: dict[str, Any] = {
        "events": summary.events,
        "processed": summary.processed,
        "dropped": dict(summary.dropped),
        "by_rule": dict(summary.alerts_by_rule),
    }
    for family in metrics.registry.collect():
        if family.name in (
            "rcwatch_rule_hits", "rcwatch_events_dropped", "rcwatch_content_events",
            "rcwatch_detector_truncated", "rcwatch_alerts", "rcwatch_alerts_repeated",
        ):  # fmt: skip
            for s in family.samples:
                if s.name.endswith("_total"):
                    counts[f"{s.name}{sorted(s.labels.items())}"] = s.value
    return alerts, counts


async def test_workers_give_the_alerts_and_counts_of_one_process(tmp_path: Path) -> None:
    path = _write(_everything(), tmp_path / "events.ndjson")
    one = await _replay(path, tmp_path, 1)
    alerts, counts = one
    # the input exercises what it should: every pattern rule fires, and every drop reason
    fired = {a["rule"] for a in alerts}
    assert {rule for rule, _ in sc.scenarios()} <= fired, fired
    assert {"malformed", "duplicate", "canary"} <= set(counts["dropped"]), counts["dropped"]
    assert any(k.startswith("rcwatch_content_events_total") for k in counts)
    for workers in (2, 3):
        assert await _replay(path, tmp_path, workers) == one, f"{workers} workers differ"


async def test_the_demo_sample_alike(tmp_path: Path) -> None:
    from streams.commands.demo import load_sample

    path = _write([RawEvent(None, e, 0) for e in load_sample()], tmp_path / "demo.ndjson")
    one = await _replay(path, tmp_path, 1)
    assert one[0], "the demo sample raises alerts"
    assert await _replay(path, tmp_path, 2) == one


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams", *args],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_replay_and_backtest_commands_agree_across_worker_counts(tmp_path: Path) -> None:
    path = _write(_everything(), tmp_path / "events.ndjson")
    replays = []
    for workers in ("1", "2"):
        out = tmp_path / f"r{workers}.jsonl"
        done = _cli("replay", str(path), "--workers", workers, "--quiet", "--no-progress",
                    "--alerts-jsonl", str(out))  # fmt: skip
        assert done.returncode == 0, done.stderr
        replays.append([
            {k: v for k, v in orjson.loads(x).items() if k != "detected_at"}
            for x in out.read_bytes().splitlines()
        ])  # fmt: skip
    assert replays[0] and replays[0] == replays[1]
    backtests = []
    for workers in ("1", "2"):
        done = _cli("rules", "backtest", str(path), "--workers", workers, "--json",
                    "--cost-every", "0")  # fmt: skip
        assert done.returncode == 0, done.stderr
        report = orjson.loads(done.stdout)
        report.pop("seconds")
        backtests.append(report)
    assert backtests[0] == backtests[1]
    assert sum(r["hits"] for r in backtests[0]["rules"]) >= len({a["rule"] for a in replays[0]})


def test_bad_worker_counts_are_usage_errors() -> None:
    for bad in ("0", "-2", "many", "1000"):
        done = _cli("replay", "x.ndjson", "--workers", bad)
        assert done.returncode == 2 and "--workers" in done.stderr, done.stderr


def _children(pid: int) -> set[int]:
    kids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            kids.add(int(entry.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


async def _slow_parallel_replay(
    processes: Processes, tmp_path: Path, *, new_session: bool = False
) -> tuple[Any, set[int]]:
    path = _write(_everything(), tmp_path / "events.ndjson")
    # paced (the recorded minute at 2x real time): it is still running when the test acts
    proc = await processes.rcwatch(
        "replay", str(path), "--workers", "2", "--speed", "2", "--quiet", "--no-progress",
        new_session=new_session,
    )  # fmt: skip
    workers: set[int] = set()

    def forked() -> bool:
        workers.update(_children(proc.pid))
        return len(workers) >= 2 or proc.returncode is not None

    await wait_for(forked, 60, "the replay's two worker processes")
    assert proc.returncode is None, processes.stderr(proc)
    return proc, workers


async def test_ctrl_c_stops_a_parallel_replay_and_leaves_no_worker(
    processes: Processes, tmp_path: Path
) -> None:
    proc, workers = await _slow_parallel_replay(processes, tmp_path)
    proc.send_signal(signal.SIGINT)
    await wait_for(lambda: proc.returncode is not None, 60, "the replay to stop")
    # 0: stopped once running; 130: stopped while starting (the documented exit codes)
    assert proc.returncode in (0, 130), processes.stderr(proc)
    assert "Traceback" not in processes.stderr(proc)
    await wait_for(lambda: not any(_alive(w) for w in workers), 30, "the workers to end")


async def test_a_worker_that_dies_ends_the_replay_in_one_line(
    processes: Processes, tmp_path: Path
) -> None:
    proc, workers = await _slow_parallel_replay(processes, tmp_path)
    os.kill(min(workers), signal.SIGKILL)
    started = time.monotonic()
    await wait_for(lambda: proc.returncode is not None, 60, "the replay to give up")
    err = processes.stderr(proc)
    assert proc.returncode == 1, err
    assert "a worker process died" in err and "Traceback" not in err, err
    assert time.monotonic() - started < 60
    await wait_for(lambda: not any(_alive(w) for w in workers), 30, "the other worker to end")


def test_a_pool_is_for_two_workers_or_more() -> None:
    from streams.pipeline.parallel import DetectionPool

    with pytest.raises(ValueError, match="2 workers or more"):
        DetectionPool(None, 1)  # type: ignore[arg-type]


async def test_a_stop_sent_to_the_whole_process_group_is_a_clean_stop(
    processes: Processes, tmp_path: Path
) -> None:
    """Defect: the workers died of a SIGTERM to the group (systemd's stop, kill -- -PGID)
    and the replay ended as if a worker had crashed (exit 1)."""
    proc, workers = await _slow_parallel_replay(processes, tmp_path, new_session=True)
    os.killpg(proc.pid, signal.SIGTERM)
    await wait_for(lambda: proc.returncode is not None, 60, "the replay to stop")
    err = processes.stderr(proc)
    # 0: stopped once running; 143: stopped while starting (the documented exit codes)
    assert proc.returncode in (0, 143) and "worker process died" not in err, err
    assert "Traceback" not in err
    await wait_for(lambda: not any(_alive(w) for w in workers), 30, "the workers to end")


async def test_workers_do_not_outlive_a_parent_killed_with_minus_9(
    processes: Processes, tmp_path: Path
) -> None:
    """Defect: each worker held the task pipe's write end, so none saw end-of-file: they
    lived on under init after the parent was killed."""
    proc, workers = await _slow_parallel_replay(processes, tmp_path)
    proc.kill()
    await proc.wait()
    await wait_for(lambda: not any(_alive(w) for w in workers), 30, "the orphans to die")


async def test_a_worker_death_still_closes_the_sinks_and_the_pool(tmp_path: Path) -> None:
    """Defect: the worker's error escaped the run before its final commit and close: the
    sinks were neither flushed nor closed, the pool not shut down."""
    from sinks.base import Sink
    from sinks.jsonl import JsonlSink

    closed: list[str] = []

    class Watched(JsonlSink):
        async def close(self) -> None:
            closed.append(self.name)
            await super().close()

    path = _write(_everything() * 3, tmp_path / "events.ndjson")
    sinks: list[Sink] = [Watched("w", tmp_path / "out.jsonl")]
    monitor = build_monitor(
        Settings(), ReplaySource([path], speed=4.0), metrics=Metrics(), archive=False,
        workers=2, sinks=sinks,
    )  # fmt: skip
    pool = monitor.pipeline.pool
    assert pool is not None
    run = asyncio.ensure_future(monitor.run())
    await wait_for(lambda: monitor.pipeline.events > 0, 60, "the replay to start")
    os.kill(pool.pids[0], signal.SIGKILL)
    with pytest.raises(BrokenProcessPool):
        await asyncio.wait_for(run, 60)
    assert closed == ["w"]
    await wait_for(lambda: not any(_alive(p) for p in pool.pids), 30, "the pool to be gone")


def test_a_pool_refuses_a_rules_reloader(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no reloader"):
        build_monitor(
            Settings(), ReplaySource([tmp_path / "x"]), metrics=Metrics(), archive=False,
            workers=2, reloader=True,
        )  # fmt: skip
