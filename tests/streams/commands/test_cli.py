"""The command line as users and external checks call it, in real subprocesses."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import re
import signal
import subprocess
import sys
import urllib.request
from functools import partial
from pathlib import Path

import orjson
import pytest

from streams.source.checkpoint import CheckpointStore
from streams.standins.sse_server import EventStreamsServer
from tests.conftest import Processes, wait_for
from tests.harness import TEST_UA, alert_ids, archived_ids, event_ids, expected_alert_ids

REPO = Path(__file__).resolve().parents[3]


def rcwatch(
    *args: str, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        check=False,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize(
    ("command", "options"),
    [
        (
            "run",
            [
                "--config",
                "--stream-url",
                "--since",
                "--state-dir",
                "--archive",
                "--alerts-jsonl",
                "--metrics-addr",
                "--user-agent",
                "--reset-checkpoint",
            ],
        ),
        ("replay", ["--config", "--speed", "--alerts-jsonl"]),
        ("demo", ["--speed", "--hold", "--triage", "--triage-addr"]),
        ("triage", ["--addr", "--state-dir", "--metrics-addr", "--config"]),
    ],
)
def test_help_names_every_option(command: str, options: list[str]) -> None:
    out = rcwatch(command, "--help")
    assert out.returncode == 0
    for option in options:
        assert option in out.stdout


@pytest.mark.parametrize(
    ("words", "options"),
    [
        (["alerts", "list"], ["--rule", "--category", "--min-severity", "--wiki", "--since",
                              "--json", "--state-dir"]),
        (["alerts", "follow"], ["--backlog-seconds", "--state-dir"]),
        (["alerts", "show"], ["--json", "--state-dir"]),
        (["alerts", "verdict"], ["--note", "--state-dir"]),
        (["alerts", "export-labels"], ["--out", "--rule", "--category", "--api-url",
                                       "--state-dir"]),
        (["rules", "list"], ["--json", "--state-dir"]),
        (["rules", "backtest"], ["--state-dir"]),
    ],
)  # fmt: skip
def test_subcommand_help_names_every_option(words: list[str], options: list[str]) -> None:
    out = rcwatch(*words, "--help")
    assert out.returncode == 0, out.stderr
    for option in options:
        assert option in out.stdout


def test_config_errors_exit_2_and_list_every_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("stream:\n  urll: x\nscope:\n  types: 5\n")
    out = rcwatch("run", "--config", str(bad))
    assert out.returncode == 2
    assert f"{bad}:2: stream.urll: unknown key" in out.stderr
    assert f"{bad}:4: scope.types: expected a list" in out.stderr


def test_placeholder_user_agent_is_refused_before_connecting(tmp_path: Path) -> None:
    out = rcwatch("run", "--state-dir", str(tmp_path))
    assert out.returncode == 2
    assert "User-Agent" in out.stderr and "--user-agent" in out.stderr


def test_bad_since_is_a_usage_error(tmp_path: Path) -> None:
    out = rcwatch(
        "run",
        "--state-dir",
        str(tmp_path),
        "--since",
        "soonish",
        "--user-agent",
        TEST_UA,
        "--stream-url",
        "http://127.0.0.1:9/v2/stream/recentchange",
    )
    assert out.returncode == 2 and "since" in out.stderr


def test_replay_prints_alerts_and_summary(tmp_path: Path) -> None:
    sample = REPO / "streams" / "data" / "demo-events.ndjson.gz"
    jsonl = tmp_path / "alerts.jsonl"
    out = rcwatch("replay", str(sample), "--alerts-jsonl", str(jsonl))
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("[MEDIUM] privacy.email") == 3
    assert "jane.roe" not in out.stdout and "j***@e***.org" in out.stdout
    assert "events: 612" in out.stderr
    assert "privacy.email-in-summary: 2" in out.stderr and "privacy.email-in-title: 1" in out.stderr
    events = [x for x in gzip.decompress(sample.read_bytes()).splitlines() if x]
    assert set(alert_ids(jsonl)) == expected_alert_ids(events)
    again = rcwatch("replay", str(sample), "--alerts-jsonl", str(jsonl), "--quiet")
    assert again.returncode == 0 and again.stdout == ""
    assert len(alert_ids(jsonl)) == 3, "a second replay must not duplicate alert ids"


def test_demo_runs_offline(tmp_path: Path) -> None:
    out = rcwatch(
        "demo", "--speed", "50", "--state-dir", str(tmp_path), "--metrics-addr", "127.0.0.1:0"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("privacy.email") == 3
    assert "metrics: http://127.0.0.1:" in out.stderr
    lines = [orjson.loads(x) for x in (tmp_path / "alerts.jsonl").read_bytes().splitlines()]
    rules = {a["rule"] for a in lines}
    # metadata rules, and rules on the text fetched from the local API, and a pattern
    assert {
        "privacy.email-in-summary",
        "privacy.email-in-title",
        "harassment.personal-attack",
        "pattern.brigading",
        "doxxing.i-know-where-you-live",
        "doxxing.personal-data-on-others-page",
    } <= rules
    deliveries = [a["id"] if a["count"] == 1 else f"{a['id']}~{a['count']}" for a in lines]
    assert len(deliveries) == len(set(deliveries))
    pile_on = [a for a in lines if a["rule"] == "harassment.personal-attack"]
    assert [a["count"] for a in pile_on] == [1, 2, 3] and len({a["id"] for a in pile_on}) == 1
    assert "7700 900123" not in out.stdout and "7700 900123" not in str(lines)
    assert CheckpointStore(tmp_path).load() is not None
    # issue 20, item 14: the demo names its state directory, and the alerts are there
    assert f"browse them: rcwatch alerts list --state-dir {tmp_path}" in out.stderr
    listed = rcwatch("alerts", "list", "--state-dir", str(tmp_path))
    assert listed.returncode == 0, listed.stderr
    # one row per alert: the summary counts them the same way, updates apart
    assert f"alerts: {len(listed.stdout.splitlines())} (and 2 updates" in out.stderr


async def test_forbidden_user_agent_exits_3(
    es_server: EventStreamsServer, tmp_path: Path, processes: Processes
) -> None:
    proc = await processes.rcwatch(
        "run", "--stream-url", es_server.url, "--state-dir", str(tmp_path), "--user-agent",
        "python-requests/2.31", "--metrics-addr", "127.0.0.1:0", "--since", "10m",
    )  # fmt: skip
    assert await asyncio.wait_for(proc.wait(), 30) == 3
    err = processes.stderr(proc)
    assert "HTTP 403" in err and "User-Agent" in err


async def test_kill_9_and_restart_lose_nothing_and_duplicate_nothing(
    sample_events: list[bytes], tmp_path: Path, processes: Processes
) -> None:
    server = EventStreamsServer()
    await server.start()
    half = len(sample_events) // 2
    server.publish(sample_events[:half])  # the rest only once the first run is dead
    state = tmp_path / "state"
    # this test is about the stream path; content fetching has its own tests
    config = tmp_path / "rcwatch.yaml"
    config.write_text("content: {enabled: false}\n")
    args = (
        "run", "--stream-url", server.url, "--state-dir", str(state), "--user-agent", TEST_UA,
        "--since", "10m", "--metrics-addr", "127.0.0.1:0", "--log-level", "warning",
        "--config", str(config),
    )  # fmt: skip
    store = CheckpointStore(state)
    try:
        first = await processes.rcwatch(*args)
        # kill -9 in the middle: after a checkpoint and two alerts
        await wait_for(
            lambda: store.load() is not None and len(alert_ids(state / "alerts.jsonl")) >= 2,
            60,
            "a checkpoint and two alerts",
        )
        first.kill()
        await first.wait()
        killed_at = store.load()
        server.publish(sample_events[half:])
        second = await processes.rcwatch(*args)
        await wait_for(
            lambda: (cp := store.load()) is not None and server.caught_up(cp.last_event_id),
            60,
            "the restarted run to reach the end",
        )
        second.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(second.wait(), 30) == 0, processes.stderr(second)
    finally:
        await server.stop()

    assert killed_at is not None, "the killed run had written a checkpoint"
    resumed = [r.get("Last-Event-ID") for r in server.requests]
    assert resumed[-1] is not None, "the restart resumed from the checkpoint"
    archived = archived_ids(state / "archive")
    assert sorted(k for k in archived if k) == sorted(event_ids(sample_events))
    assert max(archived.values()) == 1
    alerts = alert_ids(state / "alerts.jsonl")
    assert len(alerts) == len(set(alerts))
    assert set(alerts) == expected_alert_ids(sample_events)
    lines = (state / "alerts.jsonl").read_bytes().splitlines()
    assert all(orjson.loads(x)["evidence"] for x in lines)


async def test_demo_can_deliver_to_the_configured_remote_sinks(tmp_path: Path) -> None:
    """`rcwatch demo --keep-sinks`: a stack's queues and webhooks tried end to end offline."""
    import asyncio

    from tests.sinks.endpoints import HttpReceiver

    receiver = HttpReceiver()
    base = await receiver.start()
    try:
        config = tmp_path / "rcwatch.yaml"
        rules = REPO / "config" / "rules"
        config.write_text(
            f"detectors: {{rules_paths: [{rules}]}}\n"
            "sinks:\n"
            f"  - {{type: webhook, name: hook, url: '{base}/hook', hmac_key: {{env: DEMO_KEY}},"
            " route: {min_severity: high}}\n"
        )
        out = await asyncio.to_thread(
            rcwatch,
            "demo", "--speed", "max", "--keep-sinks", "--config", str(config),
            "--state-dir", str(tmp_path / "state"), "--metrics-addr", "127.0.0.1:0",
            env={"DEMO_KEY": "k"},
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert "sink hook: every routed alert delivered" in out.stderr
        lines = [
            orjson.loads(x) for x in (tmp_path / "state" / "alerts.jsonl").read_bytes().splitlines()
        ]
        high = [a["id"] for a in lines if a["severity"] in ("high", "critical")]
        got = [a["id"] for r in receiver.requests for a in orjson.loads(r.body)["alerts"]]
        assert high and got == high  # routed by severity, each once
    finally:
        await receiver.stop()


def _handles_sigterm(pid: int) -> bool:
    """Whether the process has installed its own SIGTERM handler (rcwatch's entry point does
    so first thing): read from /proc, so the test knows rcwatch's code is running."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next(
        int(line.split()[1], 16) for line in status.splitlines() if line.startswith("SigCgt")
    )
    return bool(caught & (1 << (signal.SIGTERM - 1)))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_a_signal_at_any_moment_of_start_up_exits_cleanly(
    sig: signal.Signals, tmp_path: Path, processes: Processes
) -> None:
    """Defect: SIGINT during start-up printed a Python traceback. The signal is sent at
    moments spread over the start-up (imports, settings, state, the first connection
    attempts), each to a fresh process, counted from the moment rcwatch's own entry point
    runs (before that, the interpreter itself is starting, and Python prints what it
    prints). Every one must end with one line about it and exit status 130 or 143, or 0
    when the monitor was already running and stopped gracefully."""
    unreachable = "http://127.0.0.1:9/v2/stream/recentchange"
    statuses = set()
    for n, delay in enumerate((0.0, 0.05, 0.15, 0.3, 0.5, 0.8, 1.2, 2.0)):
        proc = await processes.rcwatch(
            "run", "--stream-url", unreachable, "--state-dir", str(tmp_path / f"s{n}"),
            "--user-agent", TEST_UA, "--metrics-addr", "127.0.0.1:0", "--log-level", "error",
        )  # fmt: skip
        await wait_for(partial(_handles_sigterm, proc.pid), 30, "rcwatch's entry point")
        if delay:
            await asyncio.sleep(delay)  # the moment is the point of this test
        proc.send_signal(sig)
        status = await asyncio.wait_for(proc.wait(), 30)
        err = processes.stderr(proc)
        assert "Traceback" not in err and "Error" not in err, f"after {delay} s:\n{err}"
        assert status in (0, 130, 143), f"after {delay} s: exit {status}\n{err}"
        if status:
            expected = "rcwatch: interrupted" if sig == signal.SIGINT else "rcwatch: terminated"
            assert err.strip().endswith(expected), err
        statuses.add(status)
    assert statuses & {130, 143}, "no signal arrived during start-up: the test proves nothing"


async def test_a_second_signal_while_a_sink_is_stuck_exits_cleanly_and_says_so(
    sample_events: list[bytes], tmp_path: Path, processes: Processes
) -> None:
    """Defect: a second SIGTERM while a sink was stuck printed a CancelledError traceback."""
    stuck = asyncio.Event()
    release = asyncio.Event()

    async def black_hole(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stuck.set()  # a request arrived and will never be answered
        await release.wait()
        writer.close()

    hole = await asyncio.start_server(black_hole, "127.0.0.1", 0)
    port = hole.sockets[0].getsockname()[1]
    server = EventStreamsServer(sample_events[:100])  # the email at 60 raises an alert
    await server.start()
    config = tmp_path / "rcwatch.yaml"
    config.write_text(
        "content: {enabled: false}\n"
        "sinks:\n"
        f"  - {{type: webhook, name: hook, url: 'http://127.0.0.1:{port}/hook',"
        " hmac_key: {env: HOOK_KEY}, delivery: {timeout_seconds: 600}}\n"
    )
    try:
        proc = await processes.rcwatch(
            "run", "--stream-url", server.url, "--state-dir", str(tmp_path / "state"),
            "--user-agent", TEST_UA, "--since", "10m", "--metrics-addr", "127.0.0.1:0",
            "--config", str(config), env={"HOOK_KEY": "k"},
        )  # fmt: skip
        await asyncio.wait_for(stuck.wait(), 60)
        proc.send_signal(signal.SIGTERM)
        await wait_for(
            lambda: "stopping: finishing" in processes.stderr(proc), 30, "the first stop"
        )
        proc.send_signal(signal.SIGTERM)
        status = await asyncio.wait_for(proc.wait(), 60)
    finally:
        release.set()
        hole.close()
        await server.stop()
    err = processes.stderr(proc)
    assert status == 143, err  # 128 + SIGTERM
    assert "Traceback" not in err and "CancelledError" not in err, err
    assert err.strip().endswith(
        "rcwatch: stopped without waiting for the sinks; events after the last checkpoint "
        "(and spooled alerts) are processed by the next run"
    )


@pytest.mark.parametrize("where", ["state", "alerts"])
def test_an_unwritable_state_directory_or_alert_file_is_one_clear_line(
    where: str, read_only_dir: Path, tmp_path: Path
) -> None:
    """Defect: a read-only state directory gave an OSError traceback and exit 1."""
    state = read_only_dir / "state" if where == "state" else tmp_path / "state"
    extra = ["--alerts-jsonl", str(read_only_dir / "alerts.jsonl")] if where == "alerts" else []
    out = rcwatch(
        "run", "--state-dir", str(state), "--user-agent", TEST_UA, "--metrics-addr",
        "127.0.0.1:0", "--stream-url", "http://127.0.0.1:9/v2/stream/recentchange", *extra,
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("rcwatch: ") and "Read-only file system" in last


@pytest.mark.parametrize("how", ["shutdown-timeout", "second-sigterm"])
async def test_stopping_while_a_sink_is_stuck_loses_no_alert(
    how: str,
    sample_events: list[bytes],
    tmp_path: Path,
    small_tmpfs: Path,
    processes: Processes,
) -> None:
    """Review finding: stopped while a batch's alerts were being delivered (the alert file on
    a full disk), the final checkpoint saved the position before that batch with pattern
    state that already held it, so the restart dropped its events as duplicates and the
    alert was never delivered."""
    from tests.conftest import fill_up

    server = EventStreamsServer()
    await server.start()
    state = tmp_path / "state"
    alerts = small_tmpfs / "alerts.jsonl"
    config = tmp_path / "rcwatch.yaml"
    timeout = 2 if how == "shutdown-timeout" else 600
    # checkpoints are rare: the batches before the stuck one are done, but not checkpointed
    config.write_text(
        "content: {enabled: false}\n"
        f"pipeline: {{shutdown_timeout_seconds: {timeout}, checkpoint_interval_seconds: 300}}\n"
    )
    args = (
        "run", "--stream-url", server.url, "--state-dir", str(state), "--user-agent", TEST_UA,
        "--metrics-addr", "127.0.0.1:0", "--config", str(config), "--alerts-jsonl", str(alerts),
    )  # fmt: skip
    store = CheckpointStore(state)

    def caught_up() -> bool:
        cp = store.load()
        return cp is not None and server.caught_up(cp.last_event_id)

    def processed(proc: asyncio.subprocess.Process) -> float:
        found = re.search(r"metrics served url=(\S+)", processes.stderr(proc))
        if found is None:
            return 0.0
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(found.group(1), timeout=5) as r:
                text = r.read().decode()
            done = re.search(r"^rcwatch_events_processed_total (\S+)$", text, re.M)
            return float(done.group(1)) if done else 0.0
        return 0.0

    try:
        first = await processes.rcwatch(*args)
        await wait_for(lambda: server.connections >= 1, 60, "connected")
        server.publish(sample_events[:55])
        await wait_for(lambda: processed(first) >= 55, 60, "the first part processed")
        filler = fill_up(small_tmpfs)  # the alert file's disk is full
        server.publish(sample_events[55:100])  # the email at 60 raises an alert
        await wait_for(lambda: "sink failed" in processes.stderr(first), 60, "the stuck sink")
        first.send_signal(signal.SIGTERM)
        if how == "second-sigterm":
            await wait_for(
                lambda: "stopping: finishing" in processes.stderr(first), 30, "the first stop"
            )
            first.send_signal(signal.SIGTERM)
        await asyncio.wait_for(first.wait(), 60)
        filler.unlink()  # the operator frees the disk and starts rcwatch again
        second = await processes.rcwatch(*args)
        await wait_for(lambda: processed(second) >= 1, 60, "the second run to start")
        await wait_for(lambda: alerts.exists() and b"email" in alerts.read_bytes(), 30, "alert")
        second.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(second.wait(), 60) == 0, processes.stderr(second)
        assert caught_up()
    finally:
        await server.stop()
    rules = [orjson.loads(x)["rule"] for x in alerts.read_bytes().splitlines() if x]
    assert rules.count("privacy.email-in-summary") == 1


def test_help_loads_nothing_but_the_parser() -> None:
    """``rcwatch --help`` must answer at once: no HTTP client, detectors, sinks or YAML
    (bench/cli_startup.py measures the time)."""
    probe = (
        "import sys\n"
        "from streams.commands.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = ('aiohttp', 'detectors', 'sinks', 'yaml', 'orjson', 'prometheus_client', 're2')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert "rules" in out.stdout and out.stdout.strip().splitlines()[-1] == "[]", out.stdout


def test_a_reader_that_goes_away_ends_the_command_quietly() -> None:
    """Defect: `rcwatch rules list | head -1` printed 'rcwatch: Broken pipe' and exited 2,
    as if the configuration were wrong."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams", "rules", "list"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the first line is written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, err
    assert "Broken pipe" not in err and "Traceback" not in err, err
