"""``rcwatch rules validate|test|backtest|scan`` as maintainers and external checks run them."""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.conftest import shared_data
from tests.streams.commands.test_cli import rcwatch

REPO = Path(__file__).resolve().parents[3]


def test_validate_shipped_rules() -> None:
    out = rcwatch("rules", "validate")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("ok: ")


def test_validate_reports_every_problem(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "rules:\n  - id: x\n    title: X\n    category: privacy\n    severity: low\n"
        "    match: {field: summary, regex: '(?<=a)b'}\n"
        "  - id: x\n    title: Y\n    category: privacy\n    severity: low\n"
        "    match: {field: sumary, regex: 'b'}\n"
    )
    out = rcwatch("rules", "validate", "--rules", str(tmp_path))
    assert out.returncode == 1
    assert f"{tmp_path}/a.yaml:6: [rule x] rules[0].match.regex: RE2 cannot compile" in out.stdout
    assert (
        f"{tmp_path}/a.yaml:11: [rule x] rules[1].match.field: unknown field 'sumary'" in out.stdout
    )
    assert "duplicate rule id" in out.stdout
    assert "needs at least one example" in out.stdout


def test_test_runs_every_example(tmp_path: Path) -> None:
    out = rcwatch("rules", "test")
    assert out.returncode == 0, out.stdout
    assert "examples of" in out.stdout and "passed" in out.stdout
    (tmp_path / "a.yaml").write_text(
        "rules:\n  - id: x\n    title: X\n    category: harassment\n    severity: low\n"
        "    match: {field: summary, keywords: [idiot]}\n"
        "    examples:\n      match:\n        - summary: fine\n      no_match:\n"
        "        - summary: idiot\n"
    )
    bad = rcwatch("rules", "test", "--rules", str(tmp_path))
    assert bad.returncode == 1
    assert f"{tmp_path}/a.yaml:9: [rule x] example should match but did not" in bad.stdout
    assert f"{tmp_path}/a.yaml:11: [rule x] example matched but should not" in bad.stdout


def test_backtest_over_recorded_history() -> None:
    sample = REPO / "streams" / "data" / "demo-events.ndjson.gz"
    out = rcwatch("rules", "backtest", str(sample), "--json")
    assert out.returncode == 0, out.stderr
    report = orjson.loads(out.stdout)
    assert report["events"] == 612
    by_id = {r["id"]: r for r in report["rules"]}
    assert by_id["privacy.email-in-summary"]["hits"] == 2
    assert by_id["privacy.email-in-title"]["hits"] == 1
    sample_hit = by_id["privacy.email-in-summary"]["samples"][0]
    assert "jane.roe" not in out.stdout and "j***@e***.org" in str(sample_hit["evidence"])
    assert all(r["cost_us_per_event"] is not None for r in report["rules"])
    table = rcwatch(
        "rules",
        "backtest",
        str(shared_data("recentchange", "rts-recentchange-60s-2026-05-05.ndjson")),
    )
    assert table.returncode == 0 and "2,476 events" in table.stdout


def test_scan_texts(tmp_path: Path) -> None:
    inputs = tmp_path / "in.txt"
    inputs.write_text(
        "you are a complete idiot\n"
        "thanks for the source\n"
        '{"text": "mail me at jane.roe@example.org"}\n'
        "\n"
        '{"text": "what a moron", "title": "User talk:Someone"}\n'
    )
    out = rcwatch("rules", "scan", str(inputs))
    assert out.returncode == 0, out.stderr
    lines = [orjson.loads(x) for x in out.stdout.splitlines()]
    assert [x["line"] for x in lines] == [1, 2, 3, 5]
    # the keyword variants (targeted-insult, incivility) are suppressed by the attack
    assert {f["rule"] for f in lines[0]["findings"]} == {"harassment.personal-attack"}
    assert lines[1]["findings"] == []
    assert lines[2]["findings"][0]["spans"][0]["redacted"] == "j***@e***.org"
    assert "jane.roe" not in out.stdout
    assert "harassment.personal-attack" in {f["rule"] for f in lines[3]["findings"]}
    summary = rcwatch("rules", "scan", "--field", "summary", str(inputs))
    first = orjson.loads(summary.stdout.splitlines()[0])
    assert [f["rule"] for f in first["findings"]] == ["harassment.insult-in-summary"]


def test_test_scan_and_backtest_run_the_same_rules_disabled_ones_included(tmp_path: Path) -> None:
    """Defect: scan skipped disabled rules while test and backtest ran them, so the
    maintainer's workflow (write disabled, test, backtest, scan, enable) broke at scan."""
    (tmp_path / "draft.yaml").write_text(
        "rules:\n  - id: draft.word\n    title: Draft\n    category: harassment\n"
        "    severity: low\n    enabled: false\n"
        "    match: {field: added_text, keywords: [flibbertigibbet]}\n"
        "    examples:\n      match:\n        - added_text: a flibbertigibbet\n"
    )
    texts = tmp_path / "in.txt"
    texts.write_text("what a flibbertigibbet\n")
    scan = rcwatch("rules", "scan", "--rules", str(tmp_path), str(texts))
    assert scan.returncode == 0, scan.stderr
    findings = orjson.loads(scan.stdout)["findings"]
    assert [(f["rule"], f["enabled"]) for f in findings] == [("draft.word", False)]
    assert "rules: 1 ran (1 of them disabled)" in scan.stderr
    quiet = rcwatch("rules", "scan", "--only-enabled", "--rules", str(tmp_path), str(texts))
    assert orjson.loads(quiet.stdout)["findings"] == []
    test = rcwatch("rules", "test", "--rules", str(tmp_path))
    assert test.returncode == 0 and "rules: 1 ran (1 of them disabled)" in test.stderr
    sample = REPO / "streams" / "data" / "demo-events.ndjson.gz"
    backtest = rcwatch("rules", "backtest", "--rules", str(tmp_path), str(sample))
    assert "rules: 1 ran (1 of them disabled)" in backtest.stdout


def test_rules_list_works_without_a_reachable_store(tmp_path: Path) -> None:
    """The rule tools work without the alert store; a team store that cannot be reached
    ended ``rules list`` in a traceback that named the DSN."""
    config = tmp_path / "rcwatch.yaml"
    config.write_text("store:\n  postgres_dsn: {env: RCWATCH_TEST_DOWN_DSN}\n")
    dsn = "host=127.0.0.1 port=1 dbname=x user=u password=hunter2 connect_timeout=2"
    out = rcwatch("rules", "list", "--config", str(config), env={"RCWATCH_TEST_DOWN_DSN": dsn})
    assert out.returncode == 0, out.stderr
    assert "privacy.email-in-summary" in out.stdout
    assert "Traceback" not in out.stderr and "hunter2" not in out.stdout + out.stderr


def test_rules_list_says_which_languages_are_judged_and_which_not(tmp_path: Path) -> None:
    """Issue 21, item 4: coverage per language, and the languages nobody judges."""
    (tmp_path / "de.yaml").write_text(
        "rules:\n"
        "  - id: harassment.de.test\n"
        "    title: Beleidigung\n"
        "    category: harassment\n"
        "    severity: medium\n"
        "    match:\n"
        "      all:\n"
        "        - {field: added_text, language: [de]}\n"
        "        - {field: added_text, keywords: [vollidiot]}\n"
        "    examples:\n"
        "      match: [{wiki: dewiki, title: 'Diskussion:X', added_text: 'du vollidiot'}]\n"
        "      no_match: [{wiki: frwiki, title: 'Discussion:X', added_text: 'du vollidiot'}]\n"
    )
    listed = rcwatch("rules", "list", "--rules", str(tmp_path))
    assert listed.returncode == 0, listed.stderr
    assert "harassment.de.test" in listed.stdout and " de  " in listed.stdout
    judged, missing = listed.stderr.splitlines()[-2:]
    assert judged.startswith("languages judged: ") and "de (1 rules" in judged
    assert missing.startswith("not covered") and " it," in missing and " de," not in missing
    tested = rcwatch("rules", "test", "--rules", str(tmp_path))
    assert tested.returncode == 0, tested.stdout + tested.stderr
