"""A local HTTP server that imitates the MediaWiki Action API (``api.php``) for content fetching.

Every wiki lives under ``/{server_name}/api.php`` on one server, so that
``ContentConfig(api_url=fake.api_url_template)`` points all wikis at it. It answers the two
requests rcwatch makes, in MediaWiki's own formats (formatversion 2, or 1 with
``legacy_format``):

- ``action=compare&fromrev=A&torev=B&prop=diff``: ``{"compare": {..., "body": "<tr>..."}}``
  with a diff table rendered from the two texts by ``render_diff``, in wikidiff2's markup
  (``diff-lineno`` rows, ``diff-context`` rows, ``diff-empty diff-side-deleted`` beside a
  wholly added line, ``ins``/``del`` ``diffchange diffchange-inline`` inside a changed line,
  ``mw-diff-movedpara-left``/``-right`` anchors on a paragraph moved unchanged);
- ``action=query&prop=revisions&revids=N&rvprop=content&rvslots=main``:
  ``query.pages[0].revisions[0].slots.main.content``; an unknown id is listed in
  ``query.badrevids``; a hidden revision's slot says ``texthidden`` instead of the text.

Errors are API error objects (HTTP 200, ``MediaWiki-API-Error`` header): ``nosuchrevid``,
``missingcontent`` (compare of a hidden revision), ``badvalue``. A missing or library-default
User-Agent gets 403, as Wikimedia's edge does.

Faults (``ApiFault``) are scripted and consumed one per request, in order (a fault may be
restricted to one wiki): HTTP 429 with ``Retry-After``, 503 (with or without it), 500, the
``maxlag`` error (HTTP 200, ``Retry-After`` and ``X-Database-Lag`` headers), ``ratelimited``,
any other API error code, a hang longer than the client's timeout, an abrupt connection drop,
and a non-JSON body. ``latency_seconds`` delays every answer (0.2 for the benchmark).

For assertions: ``requests`` logs every request (wiki, query parameters, headers, arrival
time), ``max_concurrent`` holds the high-water mark of requests in flight per wiki.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from aiohttp import web

__all__ = ["ApiFault", "ApiRequest", "FakeMediaWiki", "render_diff"]

_LIBRARY_AGENTS = ("python", "aiohttp", "curl/", "wget/", "go-http-client", "java/")

FaultKind = Literal[
    "http_429",
    "http_503",
    "http_500",
    "maxlag",
    "ratelimited",
    "api_error",
    "hang",
    "drop",
    "garbage",
]


@dataclass
class ApiFault:
    """What to do to one request instead of answering it.

    ``retry_after`` is the ``Retry-After`` header value (``None``: no header) for
    ``http_429``, ``http_503``, ``maxlag`` and ``ratelimited``; ``lag_seconds`` goes into the
    maxlag error and ``X-Database-Lag``; ``code`` is the error code of ``api_error``
    (``nosuchrevid``, ``permissiondenied``, ``missingtitle``, ...); ``hang_seconds`` is how
    long ``hang`` keeps the request open without answering. ``server_name``: only requests
    to that wiki consume the fault."""

    kind: FaultKind
    retry_after: str | None = None
    lag_seconds: int = 6
    code: str = "nosuchrevid"
    hang_seconds: float = 60.0
    server_name: str | None = None


@dataclass(frozen=True)
class ApiRequest:
    server_name: str
    params: Mapping[str, str]
    headers: Mapping[str, str]
    at: float  # time.monotonic() on arrival


@dataclass
class _Revision:
    text: str
    page_id: int
    title: str
    parent: int | None
    hidden: bool = False
    suppressed: bool = False


@dataclass
class _Wiki:
    revisions: dict[int, _Revision] = field(default_factory=dict)
    pages: dict[str, int] = field(default_factory=dict)  # title -> page id


def _esc(text: str) -> str:
    """HTML-escape as MediaWiki's diff does (htmlspecialchars with ENT_QUOTES)."""
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#039;")
    )


# -- the differ ---------------------------------------------------------------------------

_WORD = re.compile(r"\w+|\s+|[^\w\s]")
_INS = '<ins class="diffchange diffchange-inline">'
_DEL = '<del class="diffchange diffchange-inline">'


def _word_diff(old: str, new: str) -> tuple[str, str]:
    """Both sides of a changed line with ``del``/``ins`` ``diffchange`` around the changes."""
    a, b = _WORD.findall(old), _WORD.findall(new)
    left: list[str] = []
    right: list[str] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        old_part, new_part = "".join(a[i1:i2]), "".join(b[j1:j2])
        if tag == "equal":
            left.append(_esc(old_part))
            right.append(_esc(new_part))
            continue
        if old_part:
            left.append(f"{_DEL}{_esc(old_part)}</del>")
        if new_part:
            right.append(f"{_INS}{_esc(new_part)}</ins>")
    return "".join(left), "".join(right)


def _cell_body(html: str) -> str:
    return f"<div>{html}</div>" if html else "<br />"


_MARK_DEL = '  <td class="diff-marker" data-marker="\u2212"></td>\n'
_MARK_ADD = '  <td class="diff-marker" data-marker="+"></td>\n'
_EMPTY_LEFT = '  <td colspan="2" class="diff-empty diff-side-deleted"></td>\n'
_EMPTY_RIGHT = '  <td colspan="2" class="diff-empty diff-side-added"></td>\n'


@dataclass
class _Row:
    kind: Literal["lineno", "context", "added", "deleted", "changed"]
    old: str = ""
    new: str = ""
    old_no: int = 0
    new_no: int = 0
    moved_to: str | None = None  # anchor of the other half of a moved paragraph
    anchor: str | None = None  # this half's anchor name


def render_diff(old_text: str, new_text: str, *, context_lines: int = 2) -> str:
    """A MediaWiki diff table body (what ``action=compare`` returns) for two texts.

    Lines of a replaced block are paired as changed lines when they are alike, otherwise
    shown as removed and added. A line removed in one place and added unchanged in another
    is shown as a moved paragraph, as wikidiff2 does."""
    a, b = old_text.split("\n"), new_text.split("\n")
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    rows: list[_Row] = []
    for group in matcher.get_grouped_opcodes(context_lines):
        rows.append(_Row("lineno", old_no=group[0][1] + 1, new_no=group[0][3] + 1))
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                rows.extend(_Row("context", a[i], b[j1 + k]) for k, i in enumerate(range(i1, i2)))
            elif tag == "delete":
                rows.extend(_Row("deleted", old=a[i], old_no=i + 1) for i in range(i1, i2))
            elif tag == "insert":
                rows.extend(_Row("added", new=b[j], new_no=j + 1) for j in range(j1, j2))
            else:
                rows.extend(_replace_rows(a, b, (i1, i2, j1, j2)))
    _mark_moves(rows)
    return "".join(_render_row(r) for r in rows)


def _replace_rows(a: list[str], b: list[str], span: tuple[int, int, int, int]) -> list[_Row]:
    i1, i2, j1, j2 = span
    out: list[_Row] = []
    i, j = i1, j1
    while i < i2 and j < j2:
        if difflib.SequenceMatcher(None, a[i], b[j], autojunk=False).ratio() >= 0.4:
            out.append(_Row("changed", a[i], b[j], i + 1, j + 1))
            i += 1
            j += 1
        else:
            out.append(_Row("deleted", old=a[i], old_no=i + 1))
            out.append(_Row("added", new=b[j], new_no=j + 1))
            i += 1
            j += 1
    out.extend(_Row("deleted", old=a[k], old_no=k + 1) for k in range(i, i2))
    out.extend(_Row("added", new=b[k], new_no=k + 1) for k in range(j, j2))
    return out


def _mark_moves(rows: list[_Row]) -> None:
    added: dict[str, list[_Row]] = {}
    for row in rows:
        if row.kind == "added" and row.new.strip():
            added.setdefault(row.new, []).append(row)
    for row in rows:
        if row.kind != "deleted" or not row.old.strip():
            continue
        targets = added.get(row.old)
        if not targets:
            continue
        target = targets.pop(0)
        row.anchor = f"movedpara_{row.old_no}_0_lhs"
        target.anchor = f"movedpara_{target.new_no}_0_rhs"
        row.moved_to = target.anchor
        target.moved_to = row.anchor


def _render_row(row: _Row) -> str:
    if row.kind == "lineno":
        return (
            "<tr>\n"
            f'  <td colspan="2" class="diff-lineno" id="mw-diff-left-l{row.old_no}">'
            f"Line {row.old_no}:</td>\n"
            f'  <td colspan="2" class="diff-lineno">Line {row.new_no}:</td>\n'
            "</tr>\n"
        )
    if row.kind == "context":
        return (
            "<tr>\n"
            '  <td class="diff-marker"></td>\n'
            f'  <td class="diff-context diff-side-deleted">{_cell_body(_esc(row.old))}</td>\n'
            '  <td class="diff-marker"></td>\n'
            f'  <td class="diff-context diff-side-added">{_cell_body(_esc(row.new))}</td>\n'
            "</tr>\n"
        )
    if row.kind == "changed":
        left, right = _word_diff(row.old, row.new)
        return (
            "<tr>\n"
            + _MARK_DEL
            + f'  <td class="diff-deletedline diff-side-deleted">{_cell_body(left)}</td>\n'
            + _MARK_ADD
            + f'  <td class="diff-addedline diff-side-added">{_cell_body(right)}</td>\n'
            + "</tr>\n"
        )
    if row.kind == "deleted":
        marker = _MARK_DEL
        body = _esc(row.old)
        if row.moved_to is not None:
            marker = (
                '  <td class="diff-marker"><a class="mw-diff-movedpara-left" '
                f'href="#{row.moved_to}">&#x26AB;</a></td>\n'
            )
            body = f'<a name="{row.anchor}"></a>{body}'
        return (
            "<tr>\n"
            + marker
            + f'  <td class="diff-deletedline diff-side-deleted">{_cell_body(body)}</td>\n'
            + _EMPTY_RIGHT
            + "</tr>\n"
        )
    marker = _MARK_ADD
    body = _esc(row.new)
    if row.moved_to is not None:
        marker = (
            '  <td class="diff-marker"><a class="mw-diff-movedpara-right" '
            f'href="#{row.moved_to}">&#x26AB;</a></td>\n'
        )
        body = f'<a name="{row.anchor}"></a>{body}'
    return (
        "<tr>\n"
        + _EMPTY_LEFT
        + marker
        + f'  <td class="diff-addedline diff-side-added">{_cell_body(body)}</td>\n'
        + "</tr>\n"
    )


# -- the server ---------------------------------------------------------------------------


class FakeMediaWiki:
    def __init__(
        self,
        *,
        latency_seconds: float = 0.0,
        legacy_format: bool = False,
        require_user_agent: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.latency_seconds = latency_seconds
        self.legacy_format = legacy_format  # answer as formatversion=1 whatever was asked
        self.require_user_agent = require_user_agent
        self.host = host
        self.port = port
        self.faults: list[ApiFault] = []
        self.requests: list[ApiRequest] = []
        self.active: dict[str, int] = {}
        self.max_concurrent: dict[str, int] = {}
        self._wikis: dict[str, _Wiki] = {}
        self._next_page_id = 1
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()

    # -- data -----------------------------------------------------------------------------

    def _wiki(self, server_name: str) -> _Wiki:
        return self._wikis.setdefault(server_name, _Wiki())

    def _page_id(self, wiki: _Wiki, title: str) -> int:
        if title not in wiki.pages:
            wiki.pages[title] = self._next_page_id
            self._next_page_id += 1
        return wiki.pages[title]

    def add_page(
        self, server_name: str, rev: int, text: str, *, title: str = "Example page"
    ) -> None:
        """A page creation: revision ``rev`` without a parent."""
        wiki = self._wiki(server_name)
        wiki.revisions[rev] = _Revision(text, self._page_id(wiki, title), title, None)

    def add_edit(
        self,
        server_name: str,
        old_rev: int,
        new_rev: int,
        old_text: str,
        new_text: str,
        *,
        title: str = "Example page",
    ) -> None:
        """Two revisions of one page (``old_rev`` is added too unless it exists)."""
        wiki = self._wiki(server_name)
        page_id = self._page_id(wiki, title)
        if old_rev not in wiki.revisions:
            wiki.revisions[old_rev] = _Revision(old_text, page_id, title, None)
        wiki.revisions[new_rev] = _Revision(new_text, page_id, title, old_rev)

    def hide_revision(self, server_name: str, rev: int, *, suppressed: bool = False) -> None:
        """Revision-delete (or suppress) the text of a revision."""
        revision = self._wiki(server_name).revisions[rev]
        revision.hidden = True
        revision.suppressed = suppressed

    def add_fault(self, kind: FaultKind, **options: Any) -> ApiFault:
        fault = ApiFault(kind, **options)
        self.faults.append(fault)
        return fault

    def requests_for(self, server_name: str) -> list[ApiRequest]:
        return [r for r in self.requests if r.server_name == server_name]

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url_template(self) -> str:
        """For ``ContentConfig.api_url``: every wiki's API on this server."""
        return f"{self.url}/{{server_name}}/api.php"

    async def start(self) -> None:
        self._stopping = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{server_name}/api.php", self._handle)
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:
            server = site._server
            sockets = getattr(server, "sockets", None) or []
            self.port = sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self._stopping.set()  # ends hanging requests
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeMediaWiki:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- protocol -------------------------------------------------------------------------

    def _next_fault(self, server_name: str) -> ApiFault | None:
        for i, fault in enumerate(self.faults):
            if fault.server_name is None or fault.server_name == server_name:
                return self.faults.pop(i)
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        server_name = request.match_info["server_name"]
        params = dict(request.query)
        if request.method == "POST":
            params.update({k: str(v) for k, v in (await request.post()).items()})
        self.requests.append(
            ApiRequest(server_name, params, dict(request.headers), time.monotonic())
        )
        active = self.active.get(server_name, 0) + 1
        self.active[server_name] = active
        self.max_concurrent[server_name] = max(self.max_concurrent.get(server_name, 0), active)
        try:
            if self.latency_seconds > 0:
                await asyncio.sleep(self.latency_seconds)
            ua = request.headers.get("User-Agent", "")
            if self.require_user_agent and (not ua or ua.lower().startswith(_LIBRARY_AGENTS)):
                return web.Response(
                    status=403,
                    text="Please set a user-agent and respect our robot policy "
                    "https://w.wiki/4wJS. See also T400119.\n",
                )
            fault = self._next_fault(server_name)
            if fault is not None:
                return await self._apply(request, fault)
            return self._answer(server_name, params)
        finally:
            self.active[server_name] -= 1

    async def _apply(self, request: web.Request, fault: ApiFault) -> web.StreamResponse:
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = fault.retry_after
        if fault.kind == "http_429":
            return web.Response(
                status=429, headers=headers, text="Too many requests. Please slow down.\n"
            )
        if fault.kind == "http_503":
            return web.Response(
                status=503,
                headers=headers,
                content_type="text/html",
                text="<!DOCTYPE html><html><head><title>Wikimedia Error</title></head>"
                "<body><p>Our servers are currently under maintenance or experiencing a "
                "technical issue.</p></body></html>",
            )
        if fault.kind == "http_500":
            return web.Response(status=500, content_type="text/html", text="Internal error\n")
        if fault.kind == "maxlag":
            headers["X-Database-Lag"] = str(fault.lag_seconds)
            return self._error(
                "maxlag",
                f"Waiting for 10.0.0.1: {fault.lag_seconds} seconds lagged.",
                headers,
                host="10.0.0.1",
                lag=fault.lag_seconds,
                type="db",
            )
        if fault.kind == "ratelimited":
            return self._error(
                "ratelimited",
                "As an anti-abuse measure, you are limited from performing this action too "
                "many times in a short space of time, and you have exceeded this limit. "
                "Please try again in a few minutes.",
                headers,
            )
        if fault.kind == "api_error":
            return self._error(fault.code, f"Simulated {fault.code} error.", headers)
        if fault.kind == "hang":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), fault.hang_seconds)
            return web.Response(status=504, text="hung\n")
        if fault.kind == "drop":  # the connection dies halfway through the answer
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})
            resp.content_length = 4096
            await resp.prepare(request)
            await resp.write(b'{"compare": {"fromid": 1, "body": "<tr>')
            transport = request.transport
            if transport is not None:
                transport.abort()
            return resp
        # garbage: a proxy's HTML page with status 200
        return web.Response(
            status=200, content_type="text/html", text="<html><body>upstream</body></html>"
        )

    def _json(self, data: Any, headers: Mapping[str, str] | None = None) -> web.Response:
        return web.Response(
            body=orjson.dumps(data),
            headers=dict(headers or {}),
            content_type="application/json",
            charset="utf-8",
        )

    def _error(
        self, code: str, info: str, headers: Mapping[str, str] | None = None, **extra: Any
    ) -> web.Response:
        error: dict[str, Any] = {"code": code, "info": info, **extra}
        docref = (
            "See https://en.wikipedia.org/w/api.php for API usage. Subscribe to the "
            "mediawiki-api-announce mailing list for notice of API deprecations and changes."
        )
        if self.legacy_format:
            error["*"] = docref
        else:
            error["docref"] = docref
        return self._json(
            {"error": error, "servedby": "mw-api-ext.fake.1"},
            {**(headers or {}), "MediaWiki-API-Error": code},
        )

    def _answer(self, server_name: str, params: Mapping[str, str]) -> web.Response:
        action = params.get("action")
        wiki = self._wikis.get(server_name, _Wiki())
        if action == "compare":
            return self._compare(wiki, params)
        if action == "query" and params.get("prop") == "revisions" and "revids" in params:
            return self._revisions(wiki, params)
        return self._error("badvalue", f'Unrecognized value for parameter "action": {action}.')

    def _compare(self, wiki: _Wiki, params: Mapping[str, str]) -> web.Response:
        revs: list[_Revision] = []
        for key in ("fromrev", "torev"):
            try:
                rev_id = int(params.get(key, ""))
            except ValueError:
                return self._error("badinteger", f'Invalid value for parameter "{key}".')
            revision = wiki.revisions.get(rev_id)
            if revision is None:
                return self._error("nosuchrevid", f"There is no revision with ID {rev_id}.")
            if revision.hidden:
                return self._error(
                    "missingcontent", f"Content for revision {rev_id} is not available."
                )
            revs.append(revision)
        old, new = revs
        body = render_diff(old.text, new.text)
        compare = {
            "fromid": old.page_id,
            "fromrevid": int(params["fromrev"]),
            "fromns": 0,
            "fromtitle": old.title,
            "toid": new.page_id,
            "torevid": int(params["torev"]),
            "tons": 0,
            "totitle": new.title,
        }
        if self.legacy_format or params.get("formatversion") != "2":
            compare["*"] = body
        else:
            compare["body"] = body
        return self._json({"compare": compare})

    def _revisions(self, wiki: _Wiki, params: Mapping[str, str]) -> web.Response:
        legacy = self.legacy_format or params.get("formatversion") != "2"
        rev_id = int(params["revids"]) if params["revids"].isdigit() else -1
        revision = wiki.revisions.get(rev_id)
        if revision is None:
            if legacy:
                return self._json(
                    {
                        "batchcomplete": "",
                        "query": {"badrevids": {str(rev_id): {"revid": rev_id, "missing": ""}}},
                    }
                )
            return self._json(
                {
                    "batchcomplete": True,
                    "query": {"badrevids": {str(rev_id): {"revid": rev_id, "missing": True}}},
                }
            )
        slot: dict[str, Any] = {}
        rev: dict[str, Any] = {"revid": rev_id, "parentid": revision.parent or 0}
        if revision.hidden:
            slot["texthidden"] = True if not legacy else ""
            if revision.suppressed:
                rev["suppressed"] = True if not legacy else ""
        else:
            slot.update(contentmodel="wikitext", contentformat="text/x-wiki")
            slot["*" if legacy else "content"] = revision.text
        rev["slots"] = {"main": slot}
        page = {"pageid": revision.page_id, "ns": 0, "title": revision.title, "revisions": [rev]}
        if legacy:
            return self._json(
                {"batchcomplete": "", "query": {"pages": {str(page["pageid"]): page}}}
            )
        return self._json({"batchcomplete": True, "query": {"pages": [page]}})
