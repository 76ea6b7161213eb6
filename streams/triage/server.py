"""The triage page's HTTP server (aiohttp), over the alert store.

Every request but the sign-in page and the style sheet must be authenticated
(``streams.triage.auth``); every verdict post must carry its form's CSRF token. Every
response forbids scripts, framing, plugins and other origins
(``Content-Security-Policy: default-src 'none'; style-src 'self'; ...``), is never cached
and sends no Referer to another site (a diff link must not tell a wiki where triage
lives). Nothing is
logged per request. It is served within ``sinks.serving``'s connection cap and deadlines
(slow or silent clients are closed; the page never holds more than the cap).

The store is reached from one thread of its own, so a slow database never stalls the
monitor's event loop, and SQLite's one-thread-per-connection rule holds.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter

from sinks.alert import printable
from sinks.serving import Limits, Listener
from sinks.store import VERDICTS, AlertStore, describe_store
from streams.settings import TriageConfig
from streams.triage import pages
from streams.triage.auth import BAD_TOKEN, COOKIE, Identity, Sessions

__all__ = ["CSP", "TriageServer"]

log = logging.getLogger("rcwatch.triage")

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # same-origin: a diff link tells the wiki nothing, and a post keeps its Origin header
    # (under no-referrer browsers send "Origin: null", which the origin check refuses)
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
}
_ALERT_ID = re.compile(r"[0-9a-f]{6,64}")
_OPEN = frozenset({"/login", "/static/triage.css", "/favicon.ico"})
_OUTCOMES = (
    "ok", "unauthenticated", "forbidden", "not_found", "bad_request", "signed_in",
    "sign_in_failed", "verdict", "throttled", "unknown_host", "error",
)  # fmt: skip
_CLOSED = ("header_timeout", "idle_timeout", "request_timeout", "evicted", "refused")
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
_MAX_NOTE = 500

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _safe_next(value: str | None) -> str:
    """Only a path of this site: never another host (``//evil``, ``/\\evil``, and ``/\t/evil``,
    which URL parsers turn into ``//evil`` by dropping the tab)."""
    if (
        not value
        or len(value) > 500
        or not value.startswith("/")
        or any(not 0x21 <= ord(c) <= 0x7E or c == "\\" for c in value)
    ):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or value.startswith("//"):
        return "/"
    return value


class TriageServer:
    def __init__(
        self,
        config: TriageConfig,
        store_target: str,
        rules: Mapping[str, pages.RuleText],
        *,
        token: str | None,
        registry: CollectorRegistry | None = None,
        retention_days: int = 90,
        limits: Limits | None = None,
    ) -> None:
        if token is None and config.trusted_proxy_header is None:
            raise ValueError(
                "the triage page needs triage.token or triage.trusted_proxy_header: "
                "every request is authenticated"
            )
        self.config = config
        self.store_target = store_target
        self.retention_days = retention_days
        self.rules = dict(rules)
        self.sessions = Sessions(token, config.trusted_proxy_header, config.session_hours * 3600)
        self.host, _, port = config.addr.rpartition(":")
        self.host = self.host.strip("[]")
        self.port = int(port)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="rcwatch-triage")
        self._store: AlertStore | None = None
        self.limits = limits
        self._listener: Listener | None = None
        self.public = config.public_origin.rstrip("/") if config.public_origin else None
        self._hosts: frozenset[str] = frozenset()  # set at start, once the port is known
        self.requests = Counter(
            "rcwatch_triage_requests",
            "Requests to the triage page, by outcome",
            ["outcome"],
            registry=registry,
        )
        for outcome in _OUTCOMES:
            self.requests.labels(outcome)
        self.connections_closed = Counter(
            "rcwatch_triage_connections_closed",
            "Connections the triage page closed on its own, by reason (header_timeout, "
            "idle_timeout, request_timeout, evicted: room made at the cap, refused: the cap "
            "reached with every connection inside a request)",
            ["reason"],
            registry=registry,
        )
        for reason in _CLOSED:
            self.connections_closed.labels(reason)

    # -- the store, from its own thread ------------------------------------------------

    def _open(self) -> AlertStore:
        if self._store is None:
            self._store = AlertStore(self.store_target, self.retention_days)
        return self._store

    async def _db(self, fn: Callable[[AlertStore], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(self._open()))

    def _close_store(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    # -- life ----------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024, middlewares=[self._guard])
        app.router.add_get("/static/triage.css", self._css)
        app.router.add_get("/favicon.ico", self._no_icon)
        app.router.add_get("/login", self._login_form)
        app.router.add_post("/login", self._login)
        app.router.add_post("/logout", self._logout)
        app.router.add_get("/", self._alerts)
        app.router.add_get("/alerts/{id}", self._alert)
        app.router.add_post("/alerts/{id}/verdict", self._verdict)
        app.router.add_get("/rules", self._rules)
        return app

    async def start(self) -> None:
        closed = self.connections_closed
        listener = Listener(
            self.app(), self.host, self.port, self.limits,
            closed=lambda reason: closed.labels(reason).inc(),
        )  # fmt: skip
        await listener.start()
        self._listener = listener
        self.port = listener.port
        self._hosts = self._allowed_hosts()

    @property
    def open_connections(self) -> int:
        return 0 if self._listener is None else self._listener.open_connections

    def sign_in_link(self) -> str:
        """A link that signs one browser in, once, within ``LINK_SECONDS`` (the token never
        goes in an address, where history and proxies keep it)."""
        return f"{self.url}/login?code={self.sessions.link_code()}"

    def _allowed_hosts(self) -> frozenset[str]:
        """The Host values this page answers to: the address it serves (and its loopback
        names), and the public origin's host. Anything else is refused, so a DNS-rebinding
        page cannot reach it under a name of its own."""
        hosts = set()
        names = {self.host}
        if self.host in _LOOPBACK or self.host in ("0.0.0.0", "::"):
            names |= {"127.0.0.1", "localhost", "::1"}
        for name in names:
            shown = f"[{name}]" if ":" in name else name
            hosts.add(f"{shown}:{self.port}")
        if self.public is not None:
            hosts.add(urlsplit(self.public).netloc)
        return frozenset(h.lower() for h in hosts)

    async def stop(self) -> None:
        if self._listener is not None:
            await self._listener.stop()
            self._listener = None
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close_store)
        self._executor.shutdown(wait=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # -- every request -------------------------------------------------------------------

    def _identify(self, request: web.Request) -> Identity | None:
        """By what no one can guess (a session, the proxy's header): never throttled."""
        header = self.sessions.proxy_header
        return self.sessions.identify(
            request.cookies.get(COOKIE), request.headers.get(header) if header else None
        )

    def _client(self, request: web.Request) -> str:
        """Whose wrong tokens these are: the address the trusted proxy names (the last in
        its header: the one it added), else the address that connected."""
        header = self.config.trusted_proxy_client_header
        if header is not None:
            named = request.headers.get(header, "").rpartition(",")[2].strip()
            if named:
                return printable(named, 64)
        return request.remote or "?"

    def _who(self, request: web.Request) -> Identity:
        """Who is asking, in a handler (the guard has let only the authenticated in)."""
        identity = self._identify(request) or self.sessions.bearer(
            request.headers.get("Authorization")
        )
        if identity is None or identity is BAD_TOKEN:
            raise web.HTTPUnauthorized(text="sign in first")
        return identity

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            if (request.host or "").lower() not in self._hosts:
                self.requests.labels("unknown_host").inc()
                raise web.HTTPMisdirectedRequest(text="not a name this page answers to")
            if request.method == "POST" and not self._same_origin(request):
                self.requests.labels("forbidden").inc()
                raise web.HTTPForbidden(text="a post from another site")
            if request.path not in _OPEN:
                # a session or the proxy's user first: someone else's wrong tokens never
                # lock them out; only a token (which can be guessed) waits out a throttle
                identity = self._identify(request)
                authorization = request.headers.get("Authorization")
                if identity is None and authorization is not None:
                    client = self._client(request)
                    if self.sessions.throttled(client):
                        self.requests.labels("throttled").inc()
                        raise web.HTTPTooManyRequests(text="too many wrong tokens; wait a minute")
                    identity = self.sessions.bearer(authorization)
                    if identity is BAD_TOKEN:
                        self.sessions.failed(client)
                        self.requests.labels("sign_in_failed").inc()
                        raise web.HTTPUnauthorized(text="wrong token")
                if identity is None:
                    self.requests.labels("unauthenticated").inc()
                    if request.method == "GET":
                        raise web.HTTPSeeOther(
                            "/login?" + urlencode({"next": request.path_qs[:500]})
                        )
                    raise web.HTTPUnauthorized(text="sign in first")
            response = await handler(request)
        except web.HTTPException as exc:
            response = exc
            if exc.status == 404:
                self.requests.labels("not_found").inc()
            elif exc.status == 400:
                self.requests.labels("bad_request").inc()
        except Exception as exc:  # the store unreachable, a bug: one line, no traceback
            self.requests.labels("error").inc()
            log.error(
                "triage request failed",
                extra={"fields": {"path": request.path[:100], "error": type(exc).__name__}},
            )
            response = web.HTTPInternalServerError(text="something went wrong; see the log")
        for name, value in _HEADERS.items():
            response.headers[name] = value
        if isinstance(response, web.HTTPException):
            raise response
        return response

    def _origin(self, request: web.Request) -> str:
        """This site's origin as the browser sees it: the public one when it came through
        the proxy, else the address it used."""
        if self.public is not None and request.host.lower() == urlsplit(self.public).netloc:
            return self.public
        return f"http://{request.host}"

    def _same_origin(self, request: web.Request) -> bool:
        origin = request.headers.get("Origin")
        if origin is None:
            return True  # an old browser or a script: the CSRF token decides
        return origin.rstrip("/").lower() == self._origin(request).lower()

    @staticmethod
    def _cross_site(request: web.Request) -> bool:
        """A request another site started (an <img>, a form elsewhere), as the browser
        says. None of the page's own requests is."""
        return request.headers.get("Sec-Fetch-Site", "same-origin") in ("cross-site", "same-site")

    # -- pages ---------------------------------------------------------------------------

    @staticmethod
    def _html(body: str, status: int = 200) -> web.Response:
        return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")

    async def _css(self, request: web.Request) -> web.Response:
        return web.Response(text=pages.CSS, content_type="text/css", charset="utf-8")

    def _signed_in(self, request: web.Request, next_path: str) -> web.Response:
        self.requests.labels("signed_in").inc()
        response = web.HTTPSeeOther(_safe_next(next_path))
        secure = request.secure or self._origin(request).startswith("https:")
        response.set_cookie(
            COOKIE, self.sessions.open(), httponly=True, samesite="Strict", path="/",
            secure=secure, max_age=int(self.config.session_hours * 3600),
        )  # fmt: skip
        for name, value in _HEADERS.items():
            response.headers[name] = value
        raise response

    def _refused(self, request: web.Request, next_path: str, *, link: bool = False) -> web.Response:
        self.requests.labels("sign_in_failed").inc()
        self.sessions.failed(self._client(request))
        failed = "link" if link else "token"
        return self._html(pages.login_page(failed=failed, next_path=next_path), status=401)

    def _may_sign_in(self, request: web.Request) -> None:
        """A sign-in another site started is refused before it is counted (no lock-out by
        a web page, no sign-in into a session of its choosing); a client with too many
        wrong tokens waits."""
        if self._cross_site(request):
            self.requests.labels("forbidden").inc()
            raise web.HTTPForbidden(text="sign in from this page, or from the printed link")
        if self.sessions.throttled(self._client(request)):
            self.requests.labels("throttled").inc()
            raise web.HTTPTooManyRequests(text="too many wrong tokens; wait a minute")

    async def _no_icon(self, request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def _login_form(self, request: web.Request) -> web.Response:
        next_path = _safe_next(request.query.get("next"))
        code = request.query.get("code")
        if code is not None:  # a sign-in link: once, in time; the code leaves the address
            self._may_sign_in(request)
            if self.sessions.redeem(code):
                return self._signed_in(request, next_path)
            return self._refused(request, next_path, link=True)
        if "token" in request.query:  # the token never signs in from an address
            self.requests.labels("bad_request").inc()
            page = pages.login_page(failed="token_in_address", next_path=next_path)
            return self._html(page, status=400)
        return self._html(pages.login_page(failed=None, next_path=next_path))

    async def _login(self, request: web.Request) -> web.Response:
        form = await request.post()  # its deadline: sinks.serving's request_seconds
        next_path = _safe_next(str(form.get("next") or "/"))
        self._may_sign_in(request)
        if self.sessions.token_ok(str(form.get("token") or "")):
            return self._signed_in(request, next_path)
        return self._refused(request, next_path)

    async def _logout(self, request: web.Request) -> web.Response:
        self.sessions.close(request.cookies.get(COOKIE))
        response = web.HTTPSeeOther("/login")
        response.del_cookie(COOKIE, path="/")
        raise response

    async def _alerts(self, request: web.Request) -> web.Response:
        q = request.query
        filters: dict[str, str | None] = {
            k: (q.get(k) or None) for k in ("rule", "category", "min_severity", "wiki", "verdict")
        }
        if filters["min_severity"] not in (None, *pages.SEVERITIES):
            raise web.HTTPBadRequest(text="unknown severity")
        if filters["verdict"] not in (None, "none", *VERDICTS):
            raise web.HTTPBadRequest(text="unknown verdict")
        if filters["category"] not in (None, *pages.CATEGORIES):
            raise web.HTTPBadRequest(text="unknown category")

        def read(store: AlertStore) -> tuple[list[dict[str, Any]], list[str]]:
            rows = store.query(
                rules=[filters["rule"]] if filters["rule"] else (),
                categories=[filters["category"]] if filters["category"] else (),
                min_severity=filters["min_severity"],
                wikis=[filters["wiki"]] if filters["wiki"] else (),
                verdict=filters["verdict"],
                limit=self.config.page_alerts,
            )
            return rows, sorted(set(self.rules) | set(store.rule_stats()))

        rows, rule_ids = await self._db(read)
        self.requests.labels("ok").inc()
        identity = self._who(request)
        where = describe_store(self.store_target)
        return self._html(
            pages.alerts_page(rows, filters, rule_ids, user=identity.user, where=where)
        )

    def _alert_id(self, request: web.Request) -> str:
        alert_id = request.match_info["id"]
        if _ALERT_ID.fullmatch(alert_id) is None:
            raise web.HTTPNotFound(text="no such alert")
        return alert_id

    async def _alert(self, request: web.Request) -> web.Response:
        alert_id = self._alert_id(request)
        found = await self._db(lambda s: s.get(alert_id))
        if found is None:
            raise web.HTTPNotFound(text="no such alert")
        identity = self._who(request)
        done = request.query.get("done")
        flash = f"Verdict recorded: {done}." if done in VERDICTS else None
        self.requests.labels("ok").inc()
        return self._html(
            pages.alert_page(
                found,
                self.rules.get(str(found.get("rule"))),
                csrf=self.sessions.csrf(identity),
                user=identity.user,
                flash=flash,
            )
        )

    async def _verdict(self, request: web.Request) -> web.Response:
        alert_id = self._alert_id(request)
        identity = self._who(request)
        form = await request.post()
        if not self.sessions.csrf_ok(identity, str(form.get("csrf") or "")):
            self.requests.labels("forbidden").inc()
            raise web.HTTPForbidden(text="this form has expired or is not yours: reload the page")
        verdict = str(form.get("verdict") or "")
        if verdict not in VERDICTS:
            raise web.HTTPBadRequest(text=f"a verdict is one of {', '.join(VERDICTS)}")
        note = printable(str(form.get("note") or "").strip(), _MAX_NOTE) or None

        def record(store: AlertStore) -> str | None:
            try:
                return store.verdict(alert_id, verdict, note, identity.user)
            except KeyError:
                return None

        full_id = await self._db(record)
        if full_id is None:
            raise web.HTTPNotFound(text="no such alert")
        self.requests.labels("verdict").inc()
        log.info(
            "verdict recorded",
            extra={"fields": {"alert_id": full_id, "verdict": verdict, "by": identity.user}},
        )
        raise web.HTTPSeeOther(f"/alerts/{full_id}?done={verdict}")

    async def _rules(self, request: web.Request) -> web.Response:
        days = self.config.chart_days

        def read(
            store: AlertStore,
        ) -> tuple[dict[str, dict[str, int]], tuple[list[str], dict[str, list[int]]]]:
            return store.rule_stats(), store.hits_by_day(days)

        stats, (dates, hits) = await self._db(read)
        identity = self._who(request)
        self.requests.labels("ok").inc()
        return self._html(pages.rules_page(self.rules, stats, dates, hits, user=identity.user))
