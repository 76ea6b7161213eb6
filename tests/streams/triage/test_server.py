"""The triage page's server over a real SQLite store, through real HTTP: authentication on
every request, CSRF-safe verdicts, the security headers, hostile alert fields escaped."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from sinks.serving import Limits
from sinks.store import AlertStore
from streams.settings import TriageConfig
from streams.triage.auth import COOKIE, LINK_SECONDS, Sessions
from streams.triage.pages import RuleText
from streams.triage.server import CSP, TriageServer
from tests.conftest import REPO
from tests.sinks.test_jsonl import make_alert

TOKEN = "s3cret-token-for-tests"
RULES = {
    "privacy.email": RuleText(
        "Email address", "privacy", "medium", True, "Looks for emails.\nIn summaries.",
        "Project mailing lists.",
    )
}  # fmt: skip


def _hostile(n: int) -> dict[str, object]:
    return dataclasses.replace(
        make_alert(n),
        title="<script>alert(1)</script>\u202eevil",
        diff_url="javascript:alert(1)",
        reason="<img src=x onerror=alert(1)>",
    ).to_dict()


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    path = tmp_path / "alerts.db"
    store = AlertStore(path)
    store.add([make_alert(1).to_dict(), _hostile(2)])
    store.close()
    return path


async def _serve(store_path: Path, **config: object) -> TriageServer:
    cfg = TriageConfig(enabled=True, addr="127.0.0.1:0", **config)  # type: ignore[arg-type]
    token = None if cfg.trusted_proxy_header else TOKEN
    server = TriageServer(cfg, str(store_path), RULES, token=token)
    await server.start()
    return server


@pytest.fixture
async def server(store_path: Path) -> AsyncIterator[TriageServer]:
    srv = await _serve(store_path)
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # unsafe: keep cookies for 127.0.0.1, as a browser does
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        yield s


async def _sign_in(http: aiohttp.ClientSession, server: TriageServer) -> None:
    async with http.post(server.url + "/login", data={"token": TOKEN, "next": "/rules"}) as r:
        assert r.status == 200 and r.url.path == "/rules"


async def _csrf(http: aiohttp.ClientSession, server: TriageServer, alert: str) -> str:
    async with http.get(f"{server.url}/alerts/{alert}") as r:
        page = await r.text()
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found, page
    return found.group(1)


def _verdicts(store_path: Path, alert: str) -> list[tuple[str, str | None, str | None]]:
    store = AlertStore(store_path)
    try:
        found = store.get(alert)
    finally:
        store.close()
    assert found is not None
    return [(v["verdict"], v["note"], v["by"]) for v in found["verdicts"]]


ALERT = make_alert(1).id


async def test_every_page_asks_who_is_there_and_every_answer_forbids_scripts(
    server: TriageServer, http: aiohttp.ClientSession
) -> None:
    for path in ("/", "/rules", f"/alerts/{ALERT}", "/?rule=x"):
        async with http.get(server.url + path, allow_redirects=False) as r:
            assert r.status == 303
            assert r.headers["Location"].startswith("/login?next=")
            assert r.headers["Content-Security-Policy"] == CSP
    async with http.post(f"{server.url}/alerts/{ALERT}/verdict", data={"verdict": "true"}) as r:
        assert r.status == 401
        assert r.headers["Content-Security-Policy"] == CSP
    async with http.get(server.url + "/login") as r:
        assert r.status == 200
        for name in ("X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy"):
            assert name in r.headers
        assert r.headers["Cache-Control"] == "no-store"
        assert "script-src" not in CSP and "default-src 'none'" in CSP
    assert _verdicts(server_path(server), ALERT) == []


def server_path(server: TriageServer) -> Path:
    return Path(server.store_target)


async def test_a_wrong_token_is_refused_and_many_are_throttled(
    server: TriageServer, http: aiohttp.ClientSession
) -> None:
    async with http.post(server.url + "/login", data={"token": "guess"}) as r:
        assert r.status == 401
        assert "That token is not right" in await r.text()
    async with http.get(server.url + "/", allow_redirects=False) as r:
        assert r.status == 303  # still not signed in
    for _ in range(20):
        async with http.post(server.url + "/login", data={"token": "guess"}):
            pass
    async with http.post(server.url + "/login", data={"token": TOKEN}) as r:
        assert r.status == 429  # even the right token waits a minute now


async def test_the_printed_link_signs_in_once_and_never_sends_the_browser_elsewhere(
    server: TriageServer, http: aiohttp.ClientSession
) -> None:
    link = server.sign_in_link() + "&next=//evil.example/x"
    assert TOKEN not in link
    async with http.get(link, allow_redirects=False) as r:
        assert r.status == 303
        assert r.headers["Location"] == "/"  # not //evil.example, and without the code
        cookie = r.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert TOKEN not in cookie
    async with http.get(server.url + "/") as r:
        assert r.status == 200 and r.url.path == "/"
    async with http.post(server.url + "/logout", allow_redirects=False) as r:
        assert r.status == 303
    async with http.get(server.url + "/", allow_redirects=False) as r:
        assert r.status == 303  # signed out


async def test_a_verdict_needs_its_forms_token_and_this_sites_origin(
    server: TriageServer, http: aiohttp.ClientSession, store_path: Path
) -> None:
    await _sign_in(http, server)
    url = f"{server.url}/alerts/{ALERT[:10]}/verdict"
    async with http.post(url, data={"verdict": "true"}) as r:
        assert r.status == 403  # no CSRF token
    async with http.post(url, data={"verdict": "true", "csrf": "0" * 64}) as r:
        assert r.status == 403  # a forged one
    csrf = await _csrf(http, server, ALERT)
    data = {"verdict": "true", "csrf": csrf}
    async with http.post(url, data=data, headers={"Origin": "https://evil.example"}) as r:
        assert r.status == 403  # right token, another site
    async with http.post(url, data={"verdict": "maybe", "csrf": csrf}) as r:
        assert r.status == 400
    assert _verdicts(store_path, ALERT) == []
    async with http.post(
        url, data={**data, "note": "ok\x1b[2J"}, headers={"Origin": server.url},
        allow_redirects=False,
    ) as r:  # fmt: skip
        assert r.status == 303
        assert r.headers["Location"] == f"/alerts/{ALERT}?done=true"
    assert _verdicts(store_path, ALERT) == [("true", "ok\\x1b[2J", "token")]
    # another session's form token is not this one's
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as other:
        await _sign_in(other, server)
        async with other.post(url, data={"verdict": "false", "csrf": csrf}) as r:
            assert r.status == 403
    # a script with the token in a header carries no ambient credential: no form token
    async with aiohttp.ClientSession() as script, script.post(
        url, data={"verdict": "unsure"}, headers={"Authorization": f"Bearer {TOKEN}"},
        allow_redirects=False,
    ) as r:  # fmt: skip
        assert r.status == 303
    assert [v for v, _, _ in _verdicts(store_path, ALERT)] == ["unsure", "true"]


async def test_hostile_alert_fields_are_text_never_markup_or_links(
    server: TriageServer, http: aiohttp.ClientSession
) -> None:
    await _sign_in(http, server)
    hostile = make_alert(2).id
    for path in ("/", f"/alerts/{hostile}"):
        async with http.get(server.url + path) as r:
            page = await r.text()
        assert "<script>" not in page and "<img" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "\u202e" not in page and "\\u202e" in page  # bidi override escaped
        assert "javascript:" not in page
    async with http.get(f"{server.url}/alerts/{ALERT}") as r:
        page = await r.text()
    assert "Looks for emails.\nIn summaries." in page  # the rule's text, lines kept
    assert "Project mailing lists." in page


async def test_filters_and_unknown_things(
    server: TriageServer, http: aiohttp.ClientSession
) -> None:
    await _sign_in(http, server)
    async with http.get(server.url + "/?verdict=none&min_severity=medium") as r:
        assert r.status == 200
        assert "2 shown" in await r.text()
    async with http.get(server.url + "/?verdict=true") as r:
        assert "0 shown" in await r.text()
    for bad in ("/?min_severity=urgent", "/?verdict=maybe", "/?category=spam"):
        async with http.get(server.url + bad) as r:
            assert r.status == 400, bad
    for missing in ("/alerts/ffffffffffff", "/alerts/not-hex", "/nowhere"):
        async with http.get(server.url + missing) as r:
            assert r.status == 404, missing
            assert r.headers["Content-Security-Policy"] == CSP
    async with http.get(server.url + "/rules") as r:
        page = await r.text()
    assert "privacy.email" in page and "<svg" in page
    counted = server.requests.labels("bad_request")._value.get()
    assert counted == 3


async def test_behind_an_authenticating_proxy_its_header_names_who_gave_the_verdict(
    store_path: Path, http: aiohttp.ClientSession
) -> None:
    server = await _serve(store_path, trusted_proxy_header="X-Forwarded-User")
    try:
        async with http.get(server.url + "/", allow_redirects=False) as r:
            assert r.status == 303  # no header: not through the proxy
        who = {"X-Forwarded-User": "Jane (WMF)"}
        async with http.get(f"{server.url}/alerts/{ALERT}", headers=who) as r:
            page = await r.text()
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
        assert csrf
        async with http.post(
            f"{server.url}/alerts/{ALERT}/verdict", headers=who,
            data={"verdict": "false", "csrf": csrf.group(1)}, allow_redirects=False,
        ) as r:  # fmt: skip
            assert r.status == 303
        async with http.post(
            f"{server.url}/alerts/{ALERT}/verdict", headers={"X-Forwarded-User": "Mallory"},
            data={"verdict": "true", "csrf": csrf.group(1)},
        ) as r:  # fmt: skip
            assert r.status == 403  # Jane's form is not Mallory's
    finally:
        await server.stop()
    assert _verdicts(store_path, ALERT) == [("false", None, "Jane (WMF)")]


def test_the_page_will_not_start_without_a_way_to_authenticate(store_path: Path) -> None:
    with pytest.raises(ValueError, match="every request is authenticated"):
        TriageServer(TriageConfig(enabled=True), str(store_path), {}, token=None)


async def test_another_site_can_neither_lock_anyone_out_nor_sign_a_browser_in(
    server: TriageServer, http: aiohttp.ClientSession
) -> None:
    """Defect: sign-in failures were counted globally and /login took any origin, so an
    <img src=.../login?token=x> on any web page locked everyone out."""
    cross = {"Sec-Fetch-Site": "cross-site"}
    for _ in range(25):
        async with http.get(f"{server.url}/login?code=guess", headers=cross) as r:
            assert r.status == 403
    async with http.post(
        server.url + "/login", data={"token": TOKEN}, headers={"Origin": "https://evil.example"}
    ) as r:
        assert r.status == 403  # login CSRF: a form elsewhere cannot sign this browser in
    await _sign_in(http, server)  # the owner still can


async def test_wrong_bearer_tokens_count_as_failed_sign_ins(
    server: TriageServer, http: aiohttp.ClientSession
) -> None:
    """Defect: a wrong Authorization header was never counted, so a token could be guessed
    without limit."""
    for _ in range(20):
        async with http.get(server.url + "/", headers={"Authorization": "Bearer guess"}) as r:
            assert r.status == 401
    async with http.get(server.url + "/", headers={"Authorization": f"Bearer {TOKEN}"}) as r:
        assert r.status == 429


def test_failures_are_counted_per_client() -> None:
    sessions = Sessions(TOKEN, None, 3600)
    for _ in range(20):
        sessions.failed("10.0.0.1")
    assert sessions.throttled("10.0.0.1") and not sessions.throttled("10.0.0.2")
    assert not sessions.throttled("10.0.0.1", now=10**9)  # a minute later


async def test_next_never_leads_to_another_host(
    server: TriageServer, http: aiohttp.ClientSession
) -> None:
    """Defect: /\\t/evil passed the check, and the tab is dropped on the way out: //evil."""
    for bad in ("/%09/evil.example", "//evil.example", "/\\evil.example", "https://evil.example",
                "/%0a/evil.example", "/%e2%80%ae/x"):  # fmt: skip
        async with http.get(f"{server.sign_in_link()}&next={bad}", allow_redirects=False) as r:
            assert r.status == 303
            assert r.headers["Location"] == "/", bad


async def test_a_name_the_page_does_not_answer_to_is_refused(
    server: TriageServer, http: aiohttp.ClientSession
) -> None:
    """DNS rebinding: a page under evil.example resolving to 127.0.0.1 reaches the port
    with Host: evil.example."""
    async with http.get(server.url + "/login", headers={"Host": "evil.example"}) as r:
        assert r.status == 421
        assert r.headers["Content-Security-Policy"] == CSP
    async with http.get(f"http://localhost:{server.port}/login") as r:
        assert r.status == 200


async def test_behind_a_proxy_the_public_origin_is_this_site(
    store_path: Path, http: aiohttp.ClientSession
) -> None:
    """Defect: posts were compared with Host, which a proxy rewrites: every verdict got 403,
    and the cookie was not Secure behind TLS termination."""
    server = await _serve(store_path, public_origin="https://triage.example.org")
    try:
        public = {"Host": "triage.example.org"}
        async with http.get(server.sign_in_link(), headers=public, allow_redirects=False) as r:
            assert r.status == 303 and "Secure" in r.headers["Set-Cookie"]
            session = r.headers["Set-Cookie"].split(";")[0]
        # the proxy speaks https to the browser: the Secure cookie comes back through it
        public = {**public, "Cookie": session}
        async with http.get(f"{server.url}/alerts/{ALERT}", headers=public) as r:
            csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', await r.text())
        assert csrf
        origin = {**public, "Origin": "https://triage.example.org"}
        data = {"verdict": "true", "csrf": csrf.group(1)}
        async with http.post(
            f"{server.url}/alerts/{ALERT}/verdict", headers=origin, data=data,
            allow_redirects=False,
        ) as r:  # fmt: skip
            assert r.status == 303
        wrong = {**public, "Origin": f"http://127.0.0.1:{server.port}"}
        async with http.post(f"{server.url}/alerts/{ALERT}/verdict", headers=wrong, data=data) as r:
            assert r.status == 403
    finally:
        await server.stop()
    assert [v for v, _, _ in _verdicts(store_path, ALERT)] == ["true"]


async def test_a_failure_inside_is_one_line_and_still_under_the_policy(
    tmp_path: Path, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """Defect: an unexpected error (the store unreachable) answered 500 without the
    security headers, and logged a traceback."""
    server = TriageServer(
        TriageConfig(enabled=True, addr="127.0.0.1:0"), str(tmp_path), RULES, token=TOKEN
    )  # a directory where the database should be: it cannot be opened
    await server.start()
    try:
        async with http.get(server.url + "/", headers={"Authorization": f"Bearer {TOKEN}"}) as r:
            assert r.status == 500
            assert r.headers["Content-Security-Policy"] == CSP
            assert r.headers["Cache-Control"] == "no-store"
    finally:
        await server.stop()
    failed = [r for r in caplog.records if r.getMessage() == "triage request failed"]
    assert failed and all(r.exc_info is None for r in caplog.records)


async def test_a_sign_in_link_works_once_and_the_token_never_signs_in_from_an_address(
    server: TriageServer, http: aiohttp.ClientSession
) -> None:
    """Defect: the printed link carried the token itself, good for the whole run and kept
    in browser history: anyone reading the history later signed in with it."""
    link = server.sign_in_link()
    assert TOKEN not in link
    async with http.get(link, allow_redirects=False) as r:
        assert r.status == 303 and "code=" not in r.headers["Location"]
        assert COOKIE in r.headers["Set-Cookie"]
    async with aiohttp.ClientSession() as later:  # the same link, from the history
        async with later.get(link, allow_redirects=False) as r:
            assert r.status == 401 and "Set-Cookie" not in r.headers
            assert "has been used, or has expired" in await r.text()
        async with later.get(f"{server.url}/login?token={TOKEN}", allow_redirects=False) as r:
            assert r.status == 400 and "Set-Cookie" not in r.headers
            assert "never goes in an address" in await r.text()
    async with http.get(server.url + "/") as r:  # the one who used it is signed in
        assert r.status == 200


def test_a_sign_in_link_expires() -> None:
    sessions = Sessions(TOKEN, None, 3600)
    code = sessions.link_code()
    assert not sessions.redeem(code, now=time.monotonic() + LINK_SECONDS + 1)
    assert not sessions.redeem(code)  # spent by the late try too
    assert sessions.redeem(sessions.link_code()) and not sessions.redeem("")


async def test_wrong_tokens_through_the_proxy_lock_out_neither_sessions_nor_other_clients(
    store_path: Path, http: aiohttp.ClientSession
) -> None:
    """Defect: wrong tokens were counted per connecting address, which behind a reverse
    proxy is the proxy's, and counted before a session was looked at: 20 wrong Bearer
    tokens from anyone made every signed-in person get 429."""
    server = await _serve(store_path, trusted_proxy_client_header="X-Forwarded-For")
    try:
        await _sign_in(http, server)
        # the attacker, through the proxy (which appends the address it saw)
        attacker = {"X-Forwarded-For": "10.9.9.9, 198.51.100.7"}
        async with aiohttp.ClientSession() as guesser:
            for spoofed in range(25):  # what it puts before the proxy's entry changes nothing
                headers = {"Authorization": "Bearer guess"}
                headers["X-Forwarded-For"] = f"10.0.0.{spoofed}, 198.51.100.7"
                async with guesser.get(server.url + "/", headers=headers) as r:
                    assert r.status in (401, 429)
            assert r.status == 429
        async with http.get(server.url + "/") as r:  # the session: never throttled
            assert r.status == 200 and r.url.path == "/"
        with_token = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession() as script:  # another client's script
            other = {**with_token, "X-Forwarded-For": "203.0.113.5"}
            async with script.get(server.url + "/", headers=other) as r:
                assert r.status == 200
            async with script.get(server.url + "/", headers={**with_token, **attacker}) as r:
                assert r.status == 429  # the guesser waits, even with the right token
    finally:
        await server.stop()


async def test_without_a_client_header_wrong_tokens_still_never_lock_out_a_session(
    server: TriageServer, http: aiohttp.ClientSession
) -> None:
    """The issue's own case: every request from one address (the proxy's)."""
    await _sign_in(http, server)
    async with aiohttp.ClientSession() as attacker:
        for _ in range(25):
            headers = {"Authorization": "Bearer guess"}
            async with attacker.get(server.url + "/", headers=headers) as r:
                assert r.status in (401, 429)
    async with http.get(server.url + "/", allow_redirects=False) as r:
        assert r.status == 200


async def test_the_page_closes_silent_clients_and_bodies_that_never_arrive(
    store_path: Path,
) -> None:
    """Defect: the page's server never timed out a slow or silent client (sinks.serving
    now serves it, as it serves /metrics)."""
    limits = Limits(max_connections=4, header_seconds=0.5, idle_seconds=0.5, request_seconds=0.5)
    server = TriageServer(
        TriageConfig(enabled=True, addr="127.0.0.1:0"), str(store_path), RULES, token=TOKEN,
        limits=limits,
    )  # fmt: skip
    await server.start()
    clients = []
    try:
        for _ in range(6):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /login HTT")
            clients.append((reader, writer))
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        clients.append((reader, writer))
        host = f"127.0.0.1:{server.port}".encode()
        writer.write(b"POST /login HTTP/1.1\r\nHost: " + host + b"\r\nContent-Length: 99\r\n"
                     b"Content-Type: application/x-www-form-urlencoded\r\n\r\ntoken=")  # fmt: skip
        answers = await asyncio.wait_for(asyncio.gather(*(_to_close(r) for r, _ in clients)), 10)
        assert server.open_connections == 0
    finally:
        for _, writer in clients:
            writer.close()
        await server.stop()
    assert answers[-1].startswith(b"HTTP/1.1 408")
    closed = {
        reason: server.connections_closed.labels(reason)._value.get()
        for reason in ("evicted", "header_timeout", "request_timeout")
    }
    assert closed == {"evicted": 3, "header_timeout": 3, "request_timeout": 1}


async def _to_close(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.read()
    except ConnectionResetError:
        return b""


def test_the_demo_prints_a_one_time_link_and_never_the_token_in_an_address(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "streams", "demo", "--triage", "--speed", "max",
         "--state-dir", str(tmp_path / "state"), "--triage-addr", "127.0.0.1:0",
         "--metrics-addr", "127.0.0.1:0"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    line = re.search(r"triage page: (\S+) \(.*takes the token (\S+)\)", done.stderr)
    assert line, done.stderr
    link, token = line.groups()
    assert "/login?code=" in link and token not in link and "token=" not in link
