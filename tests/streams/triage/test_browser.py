"""The triage page as on-call staff use it: ``rcwatch demo --hold --triage``, a real
headless Chromium, a sign-in, an alert opened from the list, a verdict given with the
buttons; then the verdict is in the store, the metric, ``rules list`` and
``alerts export-labels``. The page runs under its own strict Content-Security-Policy: any
violation or script error the browser reports fails the test."""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest

from sinks.store import AlertStore
from tests.conftest import REPO, Processes, wait_for
from tests.sinks.endpoints import free_port
from tests.streams.triage.browser import Chromium, find_browser

pytestmark = pytest.mark.browser

JUDGED = "harassment.personal-attack"


@pytest.fixture
async def chromium(tmp_path: Path) -> AsyncIterator[Chromium]:
    binary = find_browser()
    if binary is None:
        if os.environ.get("RCWATCH_REQUIRE_BROWSER") == "1":
            pytest.fail("no Chromium found, and RCWATCH_REQUIRE_BROWSER=1 (CI installs it)")
        pytest.skip("no Chromium here: apt-get install chromium (CI does)")
    browser = Chromium(binary, tmp_path / "profile")
    try:
        await browser.start()
        yield browser
    finally:
        browser.stop()


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams", *args],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


async def test_a_verdict_given_in_a_browser_reaches_the_store_metric_rules_and_labels(
    chromium: Chromium, processes: Processes, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    triage_port, metrics_port = free_port(), free_port()
    demo = await processes.rcwatch(
        "demo", "--hold", "--triage", "--speed", "max", "--state-dir", str(state),
        "--triage-addr", f"127.0.0.1:{triage_port}",
        "--metrics-addr", f"127.0.0.1:{metrics_port}",
    )  # fmt: skip

    def stderr() -> str:
        return processes.stderr(demo)

    await wait_for(lambda: "alerts follow" in stderr() or demo.returncode is not None, 60,
                   "the demo to start")  # fmt: skip
    assert demo.returncode is None, stderr()
    login = re.search(r"triage page: http://\S+/login\?code=\S+ .* takes the token (\S+)\)",
                      stderr())  # fmt: skip
    api = re.search(r"--api-url '(\S+)'", stderr())
    assert login and api, stderr()
    base = f"http://127.0.0.1:{triage_port}"

    def judged_alert_stored() -> bool:
        if not (state / "alerts.db").exists():
            return False
        store = AlertStore(state / "alerts.db")
        try:
            return bool(store.query(rules=[JUDGED]))
        finally:
            store.close()

    await wait_for(judged_alert_stored, 60, f"the demo's {JUDGED} alert in the store")
    token = login.group(1)

    async with aiohttp.ClientSession() as http:
        page = await chromium.new_page(http)
        try:
            # not signed in: the list sends the browser to the sign-in form
            await page.goto(base + "/")
            await page.wait_until("location.pathname === '/login'", "the sign-in form")
            await page.type("input[name=token]", "not the token")
            await page.click("form[action='/login'] button")
            await page.wait_until(
                "document.body.innerText.includes('That token is not right')", "a refusal"
            )
            await page.type("input[name=token]", token)
            await page.click("form[action='/login'] button")
            await page.wait_until(
                f"location.pathname === '/' && document.body.innerText.includes('{JUDGED}')",
                "the alert list",
            )
            # the filters narrow the list; then the alert is opened from it
            await page.goto(base + f"/?rule={JUDGED}")
            await page.wait_until(
                "document.querySelectorAll('tbody tr').length === 1", "one alert listed"
            )
            await page.click("a[href^='/alerts/']")
            await page.wait_until(
                "location.pathname.startsWith('/alerts/') && "
                "document.body.innerText.includes('Known false positives')",
                "the alert's page",
            )
            alert_id = (await page.evaluate("location.pathname")).rpartition("/")[2]
            await page.type("input[name=note]", "quoting the attacker, not attacking")
            await page.click("button[value=false]")
            await page.wait_until(
                "document.body.innerText.includes('Verdict recorded: false')", "the verdict"
            )
            shot = await page.screenshot(tmp_path / "alert.png")
            await page.goto(base + "/rules")
            await page.wait_until(
                "document.querySelector('svg.chart') !== null", "the per-rule table"
            )
            rules_text = await page.evaluate("document.body.innerText")
            rules_shot = await page.screenshot(tmp_path / "rules.png")
            if os.environ.get("RCWATCH_SCREENSHOTS"):  # docs/img, refreshed by hand
                out = Path(os.environ["RCWATCH_SCREENSHOTS"])
                (out / "triage-alert.png").write_bytes(shot)
                (out / "triage-rules.png").write_bytes(rules_shot)
            console = page.console()
        finally:
            await page.close()

        width, height = _png_size(shot)
        assert width >= 800 and height >= 400
        assert not [c for c in console if "Content Security Policy" in c or "Error" in c], console
        assert re.search(rf"{re.escape(JUDGED)}\s.*\s0\.00", rules_text), rules_text

        # the store has it, with the note and who gave it
        store = AlertStore(state / "alerts.db")
        try:
            found = store.get(alert_id)
        finally:
            store.close()
        assert found is not None
        assert found["rule"] == JUDGED
        assert [(v["verdict"], v["note"], v["by"]) for v in found["verdicts"]] == [
            ("false", "quoting the attacker, not attacking", "token")
        ]
        # the metric
        async with http.get(f"http://127.0.0.1:{metrics_port}/metrics") as r:
            exposition = await r.text()
        assert f'rcwatch_alert_verdicts_total{{rule="{JUDGED}",verdict="false"}} 1.0' in exposition

    # rules list: measured precision 0 on one verdict
    listed = _cli("rules", "list", "--state-dir", str(state), "--json")
    assert listed.returncode == 0, listed.stderr
    row = next(orjson.loads(x) for x in listed.stdout.splitlines() if JUDGED in x)
    assert row["precision"] == 0.0 and row["verdicts"]["false"] == 1
    # export-labels: the text fetched again from the demo's wiki stand-in, label 0
    labels = tmp_path / "labels.csv"
    exported = _cli(
        "alerts", "export-labels", "--state-dir", str(state), "--api-url", api.group(1),
        "--out", str(labels),
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    lines = labels.read_text().splitlines()
    assert lines[0] == "text,label,alert_id"
    assert any(line.endswith(f",0,{alert_id}") for line in lines[1:]), lines
