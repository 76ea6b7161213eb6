"""``rcwatch config check|show`` and ``rcwatch rules list`` as an operator runs them."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import orjson

from tests.conftest import Processes, wait_for
from tests.streams.commands.test_cli import rcwatch


def _settings(tmp: Path, extra: str = "") -> Path:
    path = tmp / "rcwatch.yaml"
    path.write_text(
        "stream:\n"
        "  url: http://127.0.0.1:9/v2/stream/recentchange\n"
        "  user_agent: 'ops-test/1 (ops@example.org)'\n"
        "scope:\n"
        "  namespaces: [1, 3]\n"
        "sinks:\n"
        "  - {type: slack, name: chat, webhook_url: {env: OPS_TEST_SLACK}}\n" + extra
    )
    return path


def test_show_says_where_every_value_came_from_and_never_a_secret(tmp_path: Path) -> None:
    config = _settings(tmp_path)
    secret = "https://hooks.slack.example/T000/B000/very-secret-token"
    out = rcwatch("config", "show", "--config", str(config), env={"OPS_TEST_SLACK": secret})
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == f"# settings: {config} (--config)"
    assert f"scope.namespaces: [1, 3]  # {config}:5" in lines
    assert "scope.include_bots: true  # default" in lines
    assert f"sinks[0].webhook_url: {{env: OPS_TEST_SLACK}}  # {config}:7" in lines
    assert any(
        x.startswith("sinks[0].route.min_severity: low  # default (in the item") for x in lines
    )
    assert "very-secret-token" not in out.stdout + out.stderr


def test_check_lists_every_problem_with_where(tmp_path: Path) -> None:
    config = _settings(tmp_path, "detectors:\n  rules_paths: [rules]\n")
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text(
        "rules:\n  - id: own.x\n    title: X\n    category: privacy\n    severity: low\n"
        "    match: {field: summary, regex: '(?<=a)b'}\n"
    )
    assert "OPS_TEST_SLACK" not in os.environ
    out = rcwatch("config", "check", "--config", str(config))
    assert out.returncode == 2
    assert f"{rules / 'r.yaml'}:6: [rule own.x]" in out.stdout  # the rule, with its line
    assert "sinks[0].webhook_url" in out.stdout and "OPS_TEST_SLACK" in out.stdout
    (rules / "r.yaml").write_text(
        "rules:\n  - id: own.x\n    title: X\n    category: privacy\n    severity: low\n"
        "    match: {field: summary, regex: 'b'}\n"
        "    examples: {match: [{summary: b}]}\n"
    )
    ok = rcwatch(
        "config", "check", "--config", str(config), env={"OPS_TEST_SLACK": "https://x.example/h"}
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.strip().endswith("ok: the configuration is usable")


def test_the_shipped_settings_check_green_with_the_user_agent_run_is_given() -> None:
    """Issue 20, item 17: the shipped settings failed the check with exit 1 (the README
    says 2 for configuration problems), and only editing the file could turn it green."""
    shipped = str(Path(__file__).parents[3] / "config" / "rcwatch.yaml")
    out = rcwatch("config", "check", "--config", shipped)
    assert out.returncode == 2 and "stream.user_agent" in out.stdout
    ua = "rcwatch/0.1 (https://example.org/you; you@example.org)"
    ok = rcwatch("config", "check", "--config", shipped, "--user-agent", ua)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    shown = rcwatch("config", "show", "--config", shipped, "--user-agent", ua)
    assert f"stream.user_agent: {ua}  # --user-agent" in shown.stdout.splitlines()


def test_rules_list_shows_every_rule_disabled_ones_too(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text(
        "rules:\n  - id: own.off\n    title: Off for now\n    category: doxxing\n"
        "    severity: high\n    enabled: false\n    match: {field: summary, regex: 'x'}\n"
    )
    out = rcwatch("rules", "list", "--rules", str(rules), "--json")
    assert out.returncode == 0, out.stderr
    [row] = [orjson.loads(x) for x in out.stdout.splitlines()]
    assert row == {
        "id": "own.off", "category": "doxxing", "severity": "high", "enabled": False,
        "pattern": False, "title": "Off for now", "file": str(rules / "r.yaml"), "line": 2,
        "alerts": 0, "verdicts": {"true": 0, "false": 0, "unsure": 0}, "precision": None,
        "languages": [],
    }  # fmt: skip
    shipped = rcwatch("rules", "list")
    assert shipped.returncode == 0 and "harassment.personal-attack" in shipped.stdout


def test_alerts_from_the_store_verdicts_and_precision(tmp_path: Path) -> None:
    """The loop an on-call person closes: the demo raises alerts, `alerts list` shows them,
    `alerts verdict` marks one wrong, `rules list` shows the rule's measured precision."""
    state = tmp_path / "state"
    demo = rcwatch(
        "demo", "--speed", "50", "--state-dir", str(state), "--metrics-addr", "127.0.0.1:0"
    )
    assert demo.returncode == 0, demo.stderr
    config = tmp_path / "rcwatch.yaml"
    config.write_text(f"state_dir: {state}\n")
    listed = rcwatch("alerts", "list", "--config", str(config), "--json")
    assert listed.returncode == 0, listed.stderr
    alerts = [orjson.loads(x) for x in listed.stdout.splitlines()]
    jsonl = {orjson.loads(x)["id"] for x in (state / "alerts.jsonl").read_bytes().splitlines()}
    assert {a["id"] for a in alerts} == jsonl  # every alert raised is in the store, once
    assert "7700 900123" not in listed.stdout  # redacted, as in every non-private sink
    email = next(a for a in alerts if a["rule"] == "privacy.email-in-summary")
    only = rcwatch("alerts", "list", "--config", str(config), "--rule", "privacy.email-in-summary")
    assert only.returncode == 0 and len(only.stdout.splitlines()) == 2  # two such alerts
    verdict = rcwatch(
        "alerts", "verdict", email["id"][:10], "false", "--note", "a company address",
        "--config", str(config),
    )  # fmt: skip
    assert verdict.returncode == 0, verdict.stderr
    shown = rcwatch("alerts", "show", email["id"][:10], "--config", str(config))
    assert "verdict false" in shown.stdout and "a company address" in shown.stdout
    rules = rcwatch("rules", "list", "--config", str(config), "--json")
    row = next(
        r for r in map(orjson.loads, rules.stdout.splitlines())
        if r["id"] == "privacy.email-in-summary"
    )  # fmt: skip
    assert row["alerts"] == 2 and row["verdicts"]["false"] == 1 and row["precision"] == 0.0
    missing = rcwatch("alerts", "verdict", "ffffffffff", "true", "--config", str(config))
    assert missing.returncode == 1 and "no single alert" in missing.stderr


async def test_follow_prints_alerts_as_they_are_stored(
    tmp_path: Path, processes: Processes
) -> None:
    from sinks.store import AlertStore
    from tests.sinks.test_jsonl import make_alert

    state = tmp_path / "state"
    store = AlertStore(state / "alerts.db")
    old = make_alert(1)
    store.add([old.to_dict()])  # stored before: not printed without --backlog-seconds
    config = tmp_path / "rcwatch.yaml"
    config.write_text(f"state_dir: {state}\n")
    seen = tmp_path / "seen.jsonl"
    proc = await processes.rcwatch(
        "alerts", "follow", "--config", str(config), "--interval-seconds", "0.2", "--json",
        stdout=seen,
    )  # fmt: skip
    await wait_for(lambda: "following" in processes.stderr(proc), 60, "the follower")
    new = make_alert(2)
    store.add([new.to_dict()])
    await wait_for(lambda: new.id in seen.read_text(), 60, "the new alert printed")
    store.add([dataclasses.replace(new, count=2).to_dict()])  # an update is shown too
    await wait_for(lambda: seen.read_text().count(new.id) == 2, 60, "the update printed")
    assert old.id not in seen.read_text()
    assert proc.returncode is None, processes.stderr(proc)


def test_a_team_store_in_postgresql(tmp_path: Path, postgres_db: str) -> None:
    """store.postgres_dsn: the monitor indexes into the team's PostgreSQL, the commands
    read it there, and the DSN (a secret: it may hold a password) never shows."""
    config = tmp_path / "rcwatch.yaml"
    config.write_text("store: {postgres_dsn: {env: RCWATCH_TEST_STORE_DSN}}\n")
    env = {"RCWATCH_TEST_STORE_DSN": postgres_db}
    demo = rcwatch(
        "demo", "--speed", "50", "--config", str(config), "--state-dir", str(tmp_path / "s"),
        "--metrics-addr", "127.0.0.1:0", env=env,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stderr
    assert not (tmp_path / "s" / "alerts.db").exists()
    listed = rcwatch("alerts", "list", "--config", str(config), "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    ids = {orjson.loads(x)["id"] for x in listed.stdout.splitlines()}
    jsonl = {
        orjson.loads(x)["id"] for x in (tmp_path / "s" / "alerts.jsonl").read_bytes().splitlines()
    }
    assert ids == jsonl and ids
    shown = rcwatch("config", "show", "--config", str(config), env=env)
    assert "store.postgres_dsn: {env: RCWATCH_TEST_STORE_DSN}" in shown.stdout
    assert postgres_db not in shown.stdout + demo.stderr + listed.stderr


def test_check_refuses_a_triage_page_nobody_could_sign_in_to(tmp_path: Path) -> None:
    env = {"OPS_TEST_SLACK": "https://x.example/h"}
    config = _settings(tmp_path, "triage:\n  enabled: true\n")
    out = rcwatch("config", "check", "--config", str(config), env=env)
    assert out.returncode == 2
    assert "triage: enabled without token or trusted_proxy_header" in out.stdout
    config = _settings(tmp_path, "triage:\n  enabled: true\n  token: {env: OPS_TRIAGE}\n")
    out = rcwatch("config", "check", "--config", str(config), env=env)
    assert out.returncode == 2 and "triage.token: environment variable OPS_TRIAGE" in out.stdout
    out = rcwatch("config", "check", "--config", str(config), env={**env, "OPS_TRIAGE": "t0k"})
    assert out.returncode == 0, out.stdout
    # rcwatch run refuses to start it too, in one line
    run = rcwatch(
        "run", "--config", str(_settings(tmp_path, "triage:\n  enabled: true\n")),
        "--state-dir", str(tmp_path / "state"), env=env,
    )  # fmt: skip
    assert run.returncode == 2
    assert "every request is authenticated" in run.stderr and "Traceback" not in run.stderr
