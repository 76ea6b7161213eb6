"""``rcwatch alerts verdict``: what a verdict given on the command line says about its judge."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from sinks.store import AlertStore
from streams.commands.cli import main
from tests.sinks.test_jsonl import make_alert


def test_a_verdict_names_the_account_that_ran_the_command_not_what_user_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect: the judge was ``$USER``, so anyone could give a verdict as anyone just by
    setting it."""
    store = AlertStore(tmp_path / "alerts.db")
    alert = make_alert(1).id
    store.add([make_alert(1).to_dict()])
    store.close()
    monkeypatch.setenv("USER", "Jane (WMF)")
    monkeypatch.setenv("LOGNAME", "Jane (WMF)")
    assert main(["alerts", "verdict", alert[:12], "false", "--state-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == f"{alert}: false"
    store = AlertStore(tmp_path / "alerts.db")
    try:
        found = store.get(alert)
    finally:
        store.close()
    assert found is not None
    [verdict] = found["verdicts"]
    try:
        account = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        account = f"uid {os.getuid()}"
    assert verdict["by"] == f"cli:{account}"
