"""Content fetching: the text an edit added (and removed), from the MediaWiki Action API.

What is asked for (one GET per attempt, ``format=json&formatversion=2&maxlag=N``):

- an edit with both revision ids: ``action=compare&fromrev=OLD&torev=NEW&prop=diff``; the
  diff table HTML (``compare.body``, or ``compare["*"]`` from older wikis) is reduced to the
  added and removed text by ``parse_diff``;
- a page creation (``type == "new"``, or an edit without an old revision):
  ``action=query&prop=revisions&revids=NEW&rvprop=content&rvslots=main``; the whole text is
  "added";
- anything else (log, categorize, no revision id, no wiki URL): ``Content("skipped",
  reason="unsupported")`` without a request.

Politeness (mw:API:Etiquette): the configured User-Agent on every request, ``maxlag``, at most
``per_host_concurrency`` requests in flight per wiki, at most ``max_requests_per_second`` over
all wikis (a token bucket), a per-request timeout, and retries with exponential backoff and
jitter. HTTP 429/503 ``Retry-After`` and the API's ``maxlag`` error (``Retry-After`` header,
else its ``lag``) are honoured as a minimum wait, and they also hold back every other request
to that wiki for that long. When the wait asked for does not fit in what is left of the
event's ``max_wait_seconds``, the fetch gives up at once with that reason instead of sleeping
into a timeout.

``max_wait_seconds`` starts when the event's first request is sent, not when the fetch is
asked for: a fetch queued behind ``per_host_concurrency`` or the token bucket (a catch-up
after downtime, a burst on one wiki) waits its turn, so a backlog gives the same text, and
the same alerts, as steady state. What bounds the queue is the caller: the runner holds at
most ``reorder_max_events`` events, and a full budget stops the reader (backpressure).

Outcomes (``Content.status`` / ``reason``):

==========  ==========================================================================
ok          ``added`` / ``removed`` hold the text (each cut to ``max_text_bytes``, on a
            UTF-8 character boundary; a cut text is still ``ok``)
missing     ``not_found`` (nosuchrevid, missingtitle, badrevids, missing page),
            ``deleted`` (revision-deleted or suppressed text: missingcontent, texthidden,
            permissiondenied), ``too_large`` (response over ``max_response_bytes``).
            Not retried; cached.
failed      ``timeout`` (``max_wait_seconds`` from the first request exceeded), or the
            last attempt's reason after ``max_attempts`` (``http_429``, ``http_5xx``,
            ``maxlag``, ``ratelimited``, ``timeout``, ``error``), or ``error`` for answers
            retrying cannot fix (other HTTP 4xx, unknown API error codes). Never cached.
skipped     ``unsupported`` or ``disabled``; no request, nothing counted.
==========  ==========================================================================

Metrics: ``content_requests{result}`` per HTTP request; ``content_retries{reason}`` per
retry; ``content_fetch_seconds`` per fetch that went to the network, from its first request
(retries included, the wait for its turn not);
``content_events{outcome}`` per ``ok`` result returned (``fetched`` from the network,
``cached`` from the cache or from another caller's request for the same revision);
``content_misses{reason}`` per ``missing`` or ``failed`` result returned (cached ones
included). ``archived``, ``missed`` and ``content_pending`` are the runner's.

Where requests go: the API URL is built from the event's ``server_name`` only after it is
vetted (``streams.fetch.wikihosts``: a DNS name in ``allowed_hosts``), into a fixed template
(``https://{server_name}/w/api.php``); ``server_url`` and ``server_script_path`` are never
used. Redirects are not followed (``failed``/``redirect``). When the host comes from the
event, its DNS answers must be public addresses (``failed``/``address_refused``). A
template with a fixed host (a local stand-in, a proxy) is the operator's choice and is
contacted as configured.

Logs carry the wiki, revision ids, HTTP status, API error code and reason, never page text,
titles or user names (nor the body of any response).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import string
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp
import orjson

from detectors.event import RecentChange
from sinks.metrics import Metrics
from sinks.retry import Backoff, parse_retry_after
from streams.fetch.wikihosts import AddressRefused, PublicAddressResolver, WikiHosts, proxy_hosts

__all__ = ["Content", "ContentConfig", "ContentFetcher", "parse_diff"]

log = logging.getLogger(__name__)


def _url_fields(template: str) -> frozenset[str]:
    return frozenset(name for _, name, _, _ in string.Formatter().parse(template) if name)


def _host_from_event(template: str) -> bool:
    """Whether the template's host part is the event's (vetted) ``server_name``."""
    return "{server_name}" in urlsplit(template).netloc


def _check_api_url(template: str) -> str | None:
    try:
        names = _url_fields(template)
    except ValueError as exc:
        return f"not a valid template: {exc}"
    if names - {"server_name"}:
        return (
            f"only {{server_name}} may be used (got {sorted(names)}): the API URL is built "
            "from the vetted host name alone, never from the event's server_url or "
            "server_script_path"
        )
    parts = urlsplit(template)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return "must be an http(s) URL"
    if _host_from_event(template):
        if parts.scheme != "https":
            return "a host taken from the event is only contacted over https"
        if re.fullmatch(r"\{server_name\}(?::[0-9]{1,5})?", parts.netloc) is None:
            return "{server_name} must be the whole host (optionally with a port)"
    elif "{server_name}" in parts.query or "{server_name}" in parts.fragment:
        return "{server_name} belongs in the host or the path"
    return None


WIKIMEDIA_HOSTS = (
    "*.wikipedia.org", "*.wikimedia.org", "*.wiktionary.org", "*.wikibooks.org",
    "*.wikinews.org", "*.wikiquote.org", "*.wikisource.org", "*.wikiversity.org",
    "*.wikivoyage.org", "*.wikidata.org", "www.mediawiki.org", "www.wikifunctions.org",
)  # fmt: skip


@dataclass(frozen=True)
class ContentConfig:
    """How politely and how long to fetch. Option names carry units."""

    enabled: bool = True
    # where a wiki's API lives; {server_name} is the event's host once vetted against
    # allowed_hosts. A fixed host points every wiki at one server (a proxy, the demo's
    # stand-in): "http://127.0.0.1:8080/{server_name}/api.php"
    api_url: str = field(
        default="https://{server_name}/w/api.php", metadata={"check": _check_api_url}
    )
    timeout_seconds: float = field(default=10.0, metadata={"gt": 0})  # per request
    max_wait_seconds: float = field(default=20.0, metadata={"gt": 0})  # from the first request
    max_attempts: int = field(default=4, metadata={"min": 1})
    backoff_initial_seconds: float = field(default=1.0, metadata={"gt": 0})
    backoff_max_seconds: float = field(default=30.0, metadata={"gt": 0})
    per_host_concurrency: int = field(default=4, metadata={"min": 1})
    max_requests_per_second: float = field(default=50.0, metadata={"gt": 0})  # all hosts
    maxlag_seconds: int = field(default=5, metadata={"min": 1})
    cache_entries: int = field(default=10_000, metadata={"min": 0})
    max_text_bytes: int = field(default=1 << 20, metadata={"min": 1024})
    # a larger response (a diff table of a huge page) is not read: missing/too_large
    max_response_bytes: int = field(default=8 << 20, metadata={"min": 1024})
    # circuit breaker: after this many consecutive timeouts, connection errors or 5xx from
    # one wiki, its fetches fail at once (reason circuit_open) for circuit_open_seconds,
    # so a wiki that is down costs no per-event waiting; 0 disables it
    circuit_failures: int = field(default=5, metadata={"min": 0})
    circuit_open_seconds: float = field(default=30.0, metadata={"gt": 0})
    # the wikis rcwatch trusts (the event's server_name, shell wildcards): content is
    # fetched only from them and alert links point only at them; an event naming any other
    # host is skipped, so a forged event cannot point the fetcher (or a link) elsewhere
    allowed_hosts: tuple[str, ...] = WIKIMEDIA_HOSTS


@dataclass(frozen=True, slots=True)
class Content:
    status: Literal["ok", "missing", "failed", "skipped"]
    added: str | None = None
    removed: str | None = None
    # for misses: "timeout", "http_429", "http_5xx", "maxlag", "ratelimited", "not_found",
    # "deleted", "error", "too_large", "unsupported" (no revision ids), "disabled"
    reason: str | None = None


_UNSUPPORTED = Content("skipped", reason="unsupported")
_CIRCUIT_LABELS = frozenset({"timeout", "error", "http_5xx"})  # a wiki that is down
_NOT_ALLOWED = Content("skipped", reason="host_not_allowed")
_REDIRECT = Content("failed", reason="redirect")
_ADDRESS_REFUSED = Content("failed", reason="address_refused")
_DISABLED = Content("skipped", reason="disabled")

# API error codes (action=compare and action=query) that retrying will not change
_NOT_FOUND_CODES = frozenset(
    {"nosuchrevid", "missingtitle", "badrevids", "nosuchpageid", "missingrev", "baddiff"}
)
_DELETED_CODES = frozenset(
    {"missingcontent", "permissiondenied", "texthidden", "suppressed", "revdeleted"}
)

_MAX_HOSTS = 10_000  # per-wiki politeness state kept at once

# diffs larger than this are parsed in a worker thread so the event loop keeps running
_THREAD_PARSE_CHARS = 256 * 1024


# -- diff parsing -------------------------------------------------------------------------


class _Cell:
    __slots__ = ("classes", "inline", "parts")

    def __init__(self, classes: frozenset[str]) -> None:
        self.classes = classes
        self.parts: list[str] = []  # all text of the cell
        self.inline: list[list[str]] = []  # one list per ins/del.diffchange element


class _DiffParser(HTMLParser):
    """Collects the rows of a diff table and classifies each one when it ends."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.added: list[str] = []
        self.removed: list[str] = []
        self._cells: list[_Cell] = []
        self._cell: _Cell | None = None
        self._in_row = False
        self._moved = False
        self._change_depth = 0  # nesting inside ins/del.diffchange

    # -- tags ---------------------------------------------------------------------------

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = _classes(attrs)
        if tag == "tr":
            self._end_row()
            self._in_row = True
            if _is_moved(classes):
                self._moved = True
        elif tag == "td":
            if not self._in_row:  # tolerate a missing <tr>
                self._in_row = True
            self._cell = _Cell(classes)
            self._cells.append(self._cell)
            if _is_moved(classes):
                self._moved = True
        elif tag in ("ins", "del"):
            if self._change_depth:
                self._change_depth += 1
            elif "diffchange" in classes and self._cell is not None:
                self._change_depth = 1
                self._cell.inline.append([])
        elif tag == "a" and _is_moved(classes):
            self._moved = True
        elif tag == "br" and self._cell is not None and self._change_depth == 0:
            self._cell.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._end_row()
        elif tag == "td":
            self._cell = None
            self._change_depth = 0
        elif tag in ("ins", "del") and self._change_depth:
            self._change_depth -= 1

    def handle_data(self, data: str) -> None:
        cell = self._cell
        if cell is None:
            return
        cell.parts.append(data)
        if self._change_depth and cell.inline:
            cell.inline[-1].append(data)

    def close(self) -> None:
        super().close()
        self._end_row()

    # -- rows ---------------------------------------------------------------------------

    def _end_row(self) -> None:
        if not self._in_row:
            return
        added_cell = removed_cell = None
        for cell in self._cells:
            if "diff-addedline" in cell.classes:
                added_cell = cell
            elif "diff-deletedline" in cell.classes:
                removed_cell = cell
        if self._moved or (added_cell is not None and removed_cell is not None):
            # a changed line, or a moved paragraph: only what changed inside it counts
            if added_cell is not None:
                _add_line(self.added, _inline_text(added_cell))
            if removed_cell is not None:
                _add_line(self.removed, _inline_text(removed_cell))
        elif added_cell is not None:
            _add_line(self.added, "".join(added_cell.parts))
        elif removed_cell is not None:
            _add_line(self.removed, "".join(removed_cell.parts))
        self._cells = []
        self._cell = None
        self._in_row = False
        self._moved = False
        self._change_depth = 0


def _classes(attrs: list[tuple[str, str | None]]) -> frozenset[str]:
    for name, value in attrs:
        if name == "class" and value:
            return frozenset(value.split())
    return frozenset()


def _is_moved(classes: frozenset[str]) -> bool:
    return any(
        c.startswith(("mw-diff-movedpara-", "diff-paragraph-moved", "mw-diff-inline-moved"))
        for c in classes
    )


def _inline_text(cell: _Cell) -> str:
    fragments = ("".join(parts).strip() for parts in cell.inline)
    return " ".join(f for f in fragments if f)


def _add_line(lines: list[str], text: str) -> None:
    if text.strip():
        lines.append(text)


def parse_diff(html: str) -> tuple[str, str]:
    """(added, removed) text of a MediaWiki diff table (action=compare, prop=diff).

    Wholly added (removed) lines count in full; of a changed line only the text inside
    ``ins.diffchange`` (``del.diffchange``) counts, several pieces joined with a space.
    Context rows count as neither; moved paragraphs count only for what was changed inside
    them on the way. Entities are decoded, lines joined with newlines, blank lines dropped.
    """
    parser = _DiffParser()
    parser.feed(html)
    parser.close()
    return "\n".join(parser.added), "\n".join(parser.removed)


def _truncate(text: str, max_bytes: int) -> str:
    if len(text) * 4 <= max_bytes:  # cannot be over, whatever the characters
        return text
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    return data[:max_bytes].decode("utf-8", "ignore")


# -- politeness ---------------------------------------------------------------------------


class _TokenBucket:
    """``rate`` requests per second over all hosts, bursts of up to ``capacity``.

    Waiters queue on a lock and sleep exactly until their token is due: no polling."""

    def __init__(self, rate: float, capacity: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self._tokens = capacity
        self._last: float | None = None
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        loop = asyncio.get_running_loop()
        async with self._lock:
            self._refill(loop.time())
            if self._tokens < 1.0:
                await asyncio.sleep((1.0 - self._tokens) / self.rate)
                self._refill(loop.time())
            self._tokens -= 1.0

    def _refill(self, now: float) -> None:
        if self._last is not None:
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now


class _Host:
    """One wiki: its concurrency slots and how long the server asked us to stay away."""

    __slots__ = ("failures", "hold_reason", "not_before", "open_until", "semaphore")

    def __init__(self, concurrency: int) -> None:
        self.semaphore = asyncio.Semaphore(concurrency)
        self.not_before = 0.0  # loop time
        self.hold_reason = "error"
        self.failures = 0  # consecutive failures that a retry might fix (circuit breaker)
        self.open_until = 0.0  # loop time: until then, fail at once without a request

    def hold(self, until: float, reason: str) -> None:
        if until > self.not_before:
            self.not_before = until
            self.hold_reason = reason


# -- requests -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Plan:
    kind: Literal["compare", "revision"]
    url: str
    params: Mapping[str, str]
    host: str
    key: tuple[str, int]
    wiki: str
    rev_old: int | None
    rev_new: int


@dataclass(frozen=True, slots=True)
class _Outcome:
    """One HTTP request: its ``content_requests`` label and either a final result or a retry."""

    label: str
    content: Content | None = None  # None: retry
    wait_seconds: float | None = None  # the server's minimum wait before the retry
    status: int | None = None
    code: str | None = None  # API error code


class _Attempts:
    __slots__ = ("count", "last", "sending", "sent_at")

    def __init__(self) -> None:
        self.count = 0
        self.sending = False
        self.last: _Outcome | None = None
        self.sent_at: float | None = None  # loop time of the first request


class ContentFetcher:
    """Fetches content for changes; ``fetch`` never raises and returns within
    ``max_wait_seconds`` of sending its first request. Before that it waits its turn
    behind the politeness limits for as long as that takes (the caller bounds how many
    fetches it starts: the runner's held-event budget). Create and use it inside one event
    loop."""

    def __init__(
        self,
        config: ContentConfig,
        metrics: Metrics,
        *,
        user_agent: str,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        problem = _check_api_url(config.api_url)
        if problem is not None:
            raise ValueError(f"content api_url {config.api_url!r}: {problem}")
        self.hosts = WikiHosts(config.allowed_hosts)
        # a host taken from the event must resolve to public addresses
        self._guard_addresses = _host_from_event(config.api_url)
        self.config = config
        self.metrics = metrics
        self.user_agent = user_agent
        self._session = session
        self._own_session = session is None
        self._headers = {"User-Agent": user_agent, "Accept": "application/json"}
        self._timeout = aiohttp.ClientTimeout(total=config.timeout_seconds)
        self._hosts: dict[str, _Host] = {}
        self._bucket = _TokenBucket(
            config.max_requests_per_second, max(1.0, config.max_requests_per_second / 10)
        )
        self._cache: OrderedDict[tuple[str, int], Content] = OrderedDict()
        self._inflight: dict[tuple[str, int], asyncio.Task[Content]] = {}
        self._closed = False

    # -- public ---------------------------------------------------------------------------

    async def fetch(self, change: RecentChange) -> Content:
        """Never raises (cancellation of the caller excepted); returns within
        ``max_wait_seconds`` of its first request."""
        try:
            return await self._fetch(change)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            result = Content("failed", reason="error")  # the shared request was cancelled
        except Exception as exc:
            log.warning(
                "content fetch failed unexpectedly",
                extra={"fields": {**_ids(change), "error": type(exc).__name__}},
            )
            result = Content("failed", reason="error")
        self._count_returned(result, "fetched")
        return result

    async def close(self) -> None:
        self._closed = True
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._inflight.clear()
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def cache_size(self) -> int:
        return len(self._cache)

    # -- plan, cache, de-duplication ------------------------------------------------------

    async def _fetch(self, change: RecentChange) -> Content:
        if not self.config.enabled:
            return _DISABLED
        host = self.hosts.vetted(change.server_name)
        if host is None:
            return _NOT_ALLOWED
        plan = self._plan(change, host)
        if plan is None:
            return _UNSUPPORTED
        cached = self._cache_get(plan.key)
        if cached is not None:
            self._count_returned(cached, "cached")
            return cached
        task = self._inflight.get(plan.key)
        leader = task is None
        if task is None:
            if self._closed:
                raise RuntimeError("ContentFetcher is closed")
            task = asyncio.create_task(self._fetch_network(plan))
            self._inflight[plan.key] = task
            task.add_done_callback(functools.partial(self._forget, plan.key))
        # shield: a caller that gives up does not cancel the request others wait for
        result = await asyncio.shield(task)
        self._count_returned(result, "fetched" if leader else "cached")
        return result

    def _forget(self, key: tuple[str, int], task: asyncio.Task[Content]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]

    def _plan(self, change: RecentChange, host: str) -> _Plan | None:
        rev_new = change.rev_new
        if not rev_new or change.type not in ("edit", "new"):
            return None
        url = self.config.api_url.format(server_name=host)
        wiki = change.wiki or host
        common = {
            "format": "json",
            "formatversion": "2",
            "maxlag": str(self.config.maxlag_seconds),
        }
        rev_old = change.rev_old or None
        if change.type == "edit" and rev_old is not None:
            params = {
                "action": "compare",
                "fromrev": str(rev_old),
                "torev": str(rev_new),
                "prop": "diff",
                **common,
            }
            kind: Literal["compare", "revision"] = "compare"
        else:
            params = {
                "action": "query",
                "prop": "revisions",
                "revids": str(rev_new),
                "rvprop": "content",
                "rvslots": "main",
                **common,
            }
            kind = "revision"
        return _Plan(kind, url, params, host, (wiki, rev_new), wiki, rev_old, rev_new)

    def _cache_get(self, key: tuple[str, int]) -> Content | None:
        content = self._cache.get(key)
        if content is not None:
            self._cache.move_to_end(key)
        return content

    def _cache_put(self, key: tuple[str, int], content: Content) -> None:
        limit = self.config.cache_entries
        if limit <= 0 or content.status not in ("ok", "missing"):
            return
        self._cache[key] = content
        self._cache.move_to_end(key)
        while len(self._cache) > limit:
            self._cache.popitem(last=False)

    def _count_returned(self, content: Content, outcome: str) -> None:
        if content.status == "ok":
            self.metrics.content_events.labels(outcome).inc()
        elif content.status in ("missing", "failed"):
            self.metrics.content_misses.labels(content.reason or "error").inc()

    # -- network --------------------------------------------------------------------------

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = None
            if self._guard_addresses:
                connector = aiohttp.TCPConnector(
                    resolver=PublicAddressResolver(exempt=proxy_hosts(dict(os.environ)))
                )
            self._session = aiohttp.ClientSession(connector=connector, trust_env=True)
        return self._session

    def _host(self, name: str) -> _Host:
        host = self._hosts.get(name)
        if host is None:
            if len(self._hosts) >= _MAX_HOSTS:  # bounded whatever hosts events name
                self._forget_idle_hosts()
            host = self._hosts[name] = _Host(self.config.per_host_concurrency)
        return host

    def _forget_idle_hosts(self) -> None:
        now = asyncio.get_running_loop().time()
        idle = [
            name
            for name, h in self._hosts.items()
            if not h.semaphore.locked()
            and h.semaphore._value == self.config.per_host_concurrency
            and h.not_before <= now
            and h.open_until <= now
        ]
        for name in idle[: max(1, len(self._hosts) // 2)]:
            del self._hosts[name]

    async def _fetch_network(self, plan: _Plan) -> Content:
        loop = asyncio.get_running_loop()
        attempts = _Attempts()
        # no deadline while the fetch waits its turn behind the politeness limits (a
        # backlog must not time fetches out before they are sent): ``max_wait_seconds``
        # starts with the first request (``_attempt_loop`` sets it)
        deadline = asyncio.timeout(None)
        try:
            async with deadline:
                result = await self._attempt_loop(plan, deadline, attempts)
        except TimeoutError:
            if attempts.sending:  # the deadline cut a request short
                self.metrics.content_requests.labels("timeout").inc()
            result = Content("failed", reason="timeout")
        if attempts.sent_at is not None:
            self.metrics.content_fetch_seconds.observe(loop.time() - attempts.sent_at)
        self._cache_put(plan.key, result)
        if result.status == "failed":
            last = attempts.last
            log.warning(
                "content fetch failed",
                extra={
                    "fields": {
                        "wiki": plan.wiki,
                        "rev_old": plan.rev_old,
                        "rev_new": plan.rev_new,
                        "reason": result.reason,
                        "attempts": attempts.count,
                        "status": last.status if last else None,
                        "code": last.code if last else None,
                    }
                },
            )
        elif result.status == "missing":
            log.debug(
                "content missing",
                extra={
                    "fields": {
                        "wiki": plan.wiki,
                        "rev_old": plan.rev_old,
                        "rev_new": plan.rev_new,
                        "reason": result.reason,
                    }
                },
            )
        return result

    async def _attempt_loop(
        self, plan: _Plan, limit: asyncio.Timeout, attempts: _Attempts
    ) -> Content:
        cfg = self.config
        loop = asyncio.get_running_loop()
        backoff = Backoff(cfg.backoff_initial_seconds, cfg.backoff_max_seconds)
        host = self._host(plan.host)
        while True:
            if host.open_until > loop.time():
                return Content("failed", reason="circuit_open")
            async with host.semaphore:
                deadline = limit.when() or loop.time() + cfg.max_wait_seconds
                if host.not_before > deadline:  # the wiki asked us to stay away for longer
                    return Content("failed", reason=host.hold_reason)
                if host.not_before > loop.time():
                    await asyncio.sleep(host.not_before - loop.time())
                await self._bucket.acquire()
                if attempts.sent_at is None:  # the deadline starts with the first request
                    attempts.sent_at = loop.time()
                    limit.reschedule(attempts.sent_at + cfg.max_wait_seconds)
                attempts.count += 1
                attempts.sending = True  # still set if the deadline cuts the request short
                outcome = await self._request(plan)
                attempts.sending = False
            attempts.last = outcome
            self.metrics.content_requests.labels(outcome.label).inc()
            if outcome.content is not None:
                host.failures = 0
                return outcome.content
            if outcome.label in _CIRCUIT_LABELS and cfg.circuit_failures:
                host.failures += 1
                if host.failures >= cfg.circuit_failures and host.open_until <= loop.time():
                    host.open_until = loop.time() + cfg.circuit_open_seconds
                    log.warning(
                        "wiki API keeps failing; content from it is skipped for a while",
                        extra={
                            "fields": {
                                "wiki": plan.wiki,
                                "reason": outcome.label,
                                "seconds": cfg.circuit_open_seconds,
                            }
                        },
                    )
                    return Content("failed", reason=outcome.label)
            if outcome.wait_seconds is not None:  # holds back every request to this wiki
                host.hold(loop.time() + outcome.wait_seconds, outcome.label)
            if attempts.count >= cfg.max_attempts:
                return Content("failed", reason=outcome.label)
            delay = backoff.next_delay()
            if outcome.wait_seconds is not None:
                delay = max(delay, outcome.wait_seconds)
            if loop.time() + delay >= (limit.when() or 0.0):
                return Content("failed", reason=outcome.label)  # no time left to wait
            self.metrics.content_retries.labels(outcome.label).inc()
            log.info(
                "content request retried",
                extra={
                    "fields": {
                        "wiki": plan.wiki,
                        "rev_new": plan.rev_new,
                        "reason": outcome.label,
                        "status": outcome.status,
                        "attempt": attempts.count,
                        "delay_seconds": round(delay, 3),
                    }
                },
            )
            await asyncio.sleep(delay)

    async def _request(self, plan: _Plan) -> _Outcome:
        session = self._get_session()
        try:
            async with session.get(
                plan.url,
                params=plan.params,
                headers=self._headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as resp:
                status = resp.status
                if 300 <= status < 400:  # never followed: the target is not vetted
                    return _Outcome("redirect", _REDIRECT, status=status)
                if status == 429 or status >= 500:
                    label = "http_429" if status == 429 else "http_5xx"
                    wait = parse_retry_after(resp.headers.get("Retry-After"))
                    return _Outcome(label, wait_seconds=wait, status=status)
                if status != 200:
                    return _Outcome("error", Content("failed", reason="error"), status=status)
                body = await _read_limited(resp, self.config.max_response_bytes)
                headers = resp.headers
        except TimeoutError:
            return _Outcome("timeout")
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, AddressRefused):
                return _Outcome("address_refused", _ADDRESS_REFUSED)
            return _Outcome("error")
        except aiohttp.ClientError:
            return _Outcome("error")
        if body is None:
            return _Outcome("error", Content("missing", reason="too_large"), status=200)
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _Outcome("error", status=200)  # a proxy's error page; may heal
        if not isinstance(data, dict):
            return _Outcome("error", status=200)
        return await self._interpret(plan, data, headers)

    async def _interpret(
        self, plan: _Plan, data: dict[str, Any], headers: Mapping[str, str]
    ) -> _Outcome:
        error = data.get("error")
        if isinstance(error, dict):
            return self._api_error(error, headers)
        if plan.kind == "compare":
            compare = data.get("compare")
            html = None
            if isinstance(compare, dict):
                html = compare.get("body", compare.get("*"))
            if not isinstance(html, str):
                return _Outcome("error", Content("failed", reason="error"), status=200)
            if len(html) > _THREAD_PARSE_CHARS:
                added, removed = await asyncio.to_thread(parse_diff, html)
            else:
                added, removed = parse_diff(html)
            return _Outcome("ok", self._ok(added, removed), status=200)
        return self._revision(data)

    def _api_error(self, error: dict[str, Any], headers: Mapping[str, str]) -> _Outcome:
        code = str(error.get("code", ""))
        retry_after = parse_retry_after(headers.get("Retry-After"))
        if code == "maxlag":
            wait = retry_after
            if wait is None:
                lag = error.get("lag")
                wait = float(lag) if isinstance(lag, (int, float)) else None
            if wait is None:
                wait = float(self.config.maxlag_seconds)
            return _Outcome("maxlag", wait_seconds=wait, status=200, code=code)
        if code == "ratelimited":
            return _Outcome("ratelimited", wait_seconds=retry_after, status=200, code=code)
        if code in _NOT_FOUND_CODES:
            content = Content("missing", reason="not_found")
            return _Outcome("not_found", content, status=200, code=code)
        if code in _DELETED_CODES:
            content = Content("missing", reason="deleted")
            return _Outcome("not_found", content, status=200, code=code)
        if code.startswith("internal_api_error"):
            return _Outcome("error", status=200, code=code[:60])  # a server-side exception
        return _Outcome("error", Content("failed", reason="error"), status=200, code=code[:60])

    def _revision(self, data: dict[str, Any]) -> _Outcome:
        query = data.get("query")
        if not isinstance(query, dict):
            return _Outcome("error", Content("failed", reason="error"), status=200)
        not_found = _Outcome("not_found", Content("missing", reason="not_found"), status=200)
        deleted = _Outcome("not_found", Content("missing", reason="deleted"), status=200)
        if query.get("badrevids"):
            return not_found
        pages = query.get("pages")
        if isinstance(pages, dict):  # formatversion=1: keyed by page id
            pages = list(pages.values())
        if not isinstance(pages, list) or not pages or not isinstance(pages[0], dict):
            return not_found
        page = pages[0]
        if "missing" in page or "invalid" in page:
            return not_found
        revisions = page.get("revisions")
        if not isinstance(revisions, list) or not revisions or not isinstance(revisions[0], dict):
            return not_found
        rev = revisions[0]
        slots = rev.get("slots")
        slot = slots.get("main") if isinstance(slots, dict) else rev
        if not isinstance(slot, dict):
            return not_found
        if "texthidden" in slot or "texthidden" in rev:
            return deleted
        text = slot.get("content", slot.get("*"))
        if not isinstance(text, str):
            return not_found  # textmissing, missing slot
        return _Outcome("ok", self._ok(text, ""), status=200)

    def _ok(self, added: str, removed: str) -> Content:
        limit = self.config.max_text_bytes
        return Content("ok", added=_truncate(added, limit), removed=_truncate(removed, limit))


async def _read_limited(resp: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """The body, or None when it is longer than ``limit`` bytes (the rest is not read)."""
    length = resp.content_length
    if length is not None and length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _ids(change: RecentChange) -> dict[str, Any]:
    return {
        "wiki": change.wiki or change.server_name,
        "rev_old": change.rev_old,
        "rev_new": change.rev_new,
    }
