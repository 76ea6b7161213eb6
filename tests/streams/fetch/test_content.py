"""Content fetching against a real local server imitating the MediaWiki Action API.

The diff fixtures are written in MediaWiki's own diff table markup (wikidiff2, as Wikipedia
serves it from ``action=compare``, and the older PHP engine's one-line form that small wikis
still return); the texts in them are made up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from detectors.event import RecentChange, decode_object
from sinks.metrics import Metrics
from streams.fetch.content import Content, ContentConfig, ContentFetcher, parse_diff
from streams.standins.fake_mediawiki import FakeMediaWiki, render_diff

UA = "rcwatch-tests/0.1 (https://example.org/rcwatch; tests@example.org)"
EN = "en.wikipedia.org"
DE = "de.wikipedia.org"

# -- fixtures in MediaWiki's markup -------------------------------------------------------

# wikidiff2: a changed line, a wholly added line, a wholly removed line, a removed blank line
WIKIDIFF2_CHANGES = """\
<tr>
  <td colspan="2" class="diff-lineno" id="mw-diff-left-l12">Line 12:</td>
  <td colspan="2" class="diff-lineno">Line 12:</td>
</tr>
<tr>
  <td class="diff-marker"></td>
  <td class="diff-context diff-side-deleted"><div>== Early life ==</div></td>
  <td class="diff-marker"></td>
  <td class="diff-context diff-side-added"><div>== Early life ==</div></td>
</tr>
<tr>
  <td class="diff-marker" data-marker="−"></td>
  <td class="diff-deletedline diff-side-deleted"><div>She was born in \
<del class="diffchange diffchange-inline">Leeds</del> and studied \
<del class="diffchange diffchange-inline">law</del>.</div></td>
  <td class="diff-marker" data-marker="+"></td>
  <td class="diff-addedline diff-side-added"><div>She was born in \
<ins class="diffchange diffchange-inline">York</ins> and studied \
<ins class="diffchange diffchange-inline">medicine at Durham </ins>.</div></td>
</tr>
<tr>
  <td colspan="2" class="diff-empty diff-side-deleted"></td>
  <td class="diff-marker" data-marker="+"></td>
  <td class="diff-addedline diff-side-added"><div>Her office number is 020 7946 0958.</div></td>
</tr>
<tr>
  <td class="diff-marker" data-marker="−"></td>
  <td class="diff-deletedline diff-side-deleted"><div>An outdated sentence.</div></td>
  <td colspan="2" class="diff-empty diff-side-added"></td>
</tr>
<tr>
  <td class="diff-marker" data-marker="−"></td>
  <td class="diff-deletedline diff-side-deleted"><br /></td>
  <td colspan="2" class="diff-empty diff-side-added"></td>
</tr>
<tr>
  <td class="diff-marker"></td>
  <td class="diff-context diff-side-deleted"><div>== Career ==</div></td>
  <td class="diff-marker"></td>
  <td class="diff-context diff-side-added"><div>== Career ==</div></td>
</tr>
"""

# wikidiff2: one paragraph moved unchanged, one moved and edited on the way
WIKIDIFF2_MOVED = """\
<tr>
  <td colspan="2" class="diff-lineno" id="mw-diff-left-l3">Line 3:</td>
  <td colspan="2" class="diff-lineno">Line 3:</td>
</tr>
<tr>
  <td class="diff-marker"><a class="mw-diff-movedpara-left" \
href="#movedpara_9_0_rhs">&#x26AB;</a></td>
  <td class="diff-deletedline diff-side-deleted"><div><a name="movedpara_3_0_lhs"></a>\
The bridge opened in 1932.</div></td>
  <td colspan="2" class="diff-empty diff-side-added"></td>
</tr>
<tr>
  <td class="diff-marker"><a class="mw-diff-movedpara-left" \
href="#movedpara_10_0_rhs">&#x26AB;</a></td>
  <td class="diff-deletedline diff-side-deleted"><div><a name="movedpara_4_0_lhs"></a>\
It carries <del class="diffchange diffchange-inline">four</del> lanes.</div></td>
  <td colspan="2" class="diff-empty diff-side-added"></td>
</tr>
<tr>
  <td class="diff-marker"></td>
  <td class="diff-context diff-side-deleted"><div>== History ==</div></td>
  <td class="diff-marker"></td>
  <td class="diff-context diff-side-added"><div>== History ==</div></td>
</tr>
<tr>
  <td colspan="2" class="diff-empty diff-side-deleted"></td>
  <td class="diff-marker"><a class="mw-diff-movedpara-right" \
href="#movedpara_3_0_lhs">&#x26AB;</a></td>
  <td class="diff-addedline diff-side-added"><div><a name="movedpara_9_0_rhs"></a>\
The bridge opened in 1932.</div></td>
</tr>
<tr>
  <td colspan="2" class="diff-empty diff-side-deleted"></td>
  <td class="diff-marker"><a class="mw-diff-movedpara-right" \
href="#movedpara_4_0_lhs">&#x26AB;</a></td>
  <td class="diff-addedline diff-side-added"><div><a name="movedpara_10_0_rhs"></a>\
It carries <ins class="diffchange diffchange-inline">six</ins> lanes.</div></td>
</tr>
"""

# the older PHP diff engine, one row per line as small wikis return it in compare["*"]:
# entities, an added line beside a bare colspan cell, a changed line with two insertions
LEGACY_ENTITIES = (
    '<tr><td colspan="2" class="diff-lineno" id="mw-diff-left-l1">Line 1:</td>\n'
    '<td colspan="2" class="diff-lineno">Line 1:</td></tr>\n'
    '<tr><td class="diff-marker">−</td><td class="diff-deletedline"><div>'
    "&#039;&#039;&#039;Example&#039;&#039;&#039; is a "
    '<del class="diffchange diffchange-inline">town</del>.</div></td>'
    '<td class="diff-marker">+</td><td class="diff-addedline"><div>'
    "&#039;&#039;&#039;Example&#039;&#039;&#039; is a "
    '<ins class="diffchange diffchange-inline">&quot;village&quot; &amp; parish</ins>'
    '.<ins class="diffchange diffchange-inline">&lt;ref&gt;Census&lt;/ref&gt;</ins>'
    "</div></td></tr>\n"
    '<tr><td colspan="2">\u00a0</td><td class="diff-marker">+</td>'
    '<td class="diff-addedline"><div>Contact: a&#64;example.org &lt;b&gt;</div></td></tr>\n'
    '<tr><td colspan="2" class="diff-side-deleted"></td><td class="diff-marker">+</td>'
    '<td class="diff-addedline diff-side-added"><div>\u00a0</div></td></tr>\n'
)


def test_changed_added_and_removed_lines() -> None:
    added, removed = parse_diff(WIKIDIFF2_CHANGES)
    assert added == "York medicine at Durham\nHer office number is 020 7946 0958."
    assert removed == "Leeds law\nAn outdated sentence."


def test_moved_paragraphs_count_only_what_changed_inside_them() -> None:
    added, removed = parse_diff(WIKIDIFF2_MOVED)
    assert added == "six"
    assert removed == "four"


def test_entities_and_the_legacy_markup() -> None:
    added, removed = parse_diff(LEGACY_ENTITIES)
    assert added == '"village" & parish <ref>Census</ref>\nContact: a@example.org <b>'
    assert removed == "town"


def test_context_only_diff_is_empty() -> None:
    context_rows = WIKIDIFF2_CHANGES.split("<tr>")[1:3]
    assert parse_diff("<tr>".join(["", *context_rows])) == ("", "")
    assert parse_diff("") == ("", "")


def test_the_fake_servers_diffs_parse_back() -> None:
    old = "== A ==\nThe cat sat on the mat.\nk1\nk2\nMoved line\nk3\nk4\nk5\nGone line\nend"
    new = "== A ==\nThe dog sat on the red mat.\nk1\nk2\nk3\nk4\nMoved line\nk5\nend\nNew <b> & 'q'"
    html = render_diff(old, new)
    assert "mw-diff-movedpara-left" in html and "diff-lineno" in html
    assert "&#039;q&#039;" in html
    assert parse_diff(html) == ("dog red\nNew <b> & 'q'", "cat\nGone line")


# -- helpers ------------------------------------------------------------------------------


def change(
    kind: str = "edit",
    *,
    old: int | None = 100,
    new: int | None = 101,
    server_name: str = EN,
    wiki: str = "enwiki",
    title: str = "Example page",
    user: str = "Example editor",
) -> RecentChange:
    d: dict[str, Any] = {
        "meta": {
            "id": f"id-{server_name}-{new}",
            "dt": "2026-05-05T11:17:42Z",
            "stream": "mediawiki.recentchange",
            "domain": server_name,
        },
        "type": kind,
        "namespace": 1,
        "title": title,
        "user": user,
        "bot": False,
        "server_url": f"https://{server_name}",
        "server_name": server_name,
        "server_script_path": "/w",
        "wiki": wiki,
    }
    if old is not None or new is not None:
        d["revision"] = {k: v for k, v in (("old", old), ("new", new)) if v is not None}
    return decode_object(d)


def count(metrics: Metrics, name: str, **labels: str) -> float:
    suffix = "" if name.endswith("_count") else "_total"
    return metrics.registry.get_sample_value(f"rcwatch_{name}{suffix}", labels) or 0.0


Factory = Callable[..., tuple[ContentFetcher, Metrics]]


@pytest.fixture
async def wiki() -> AsyncIterator[FakeMediaWiki]:
    async with FakeMediaWiki() as fake:
        yield fake


@pytest.fixture
async def make_fetcher(wiki: FakeMediaWiki) -> AsyncIterator[Factory]:
    made: list[ContentFetcher] = []

    def make(
        fake: FakeMediaWiki | None = None, *, user_agent: str = UA, **overrides: Any
    ) -> tuple[ContentFetcher, Metrics]:
        settings: dict[str, Any] = {
            "api_url": (fake or wiki).api_url_template,
            "timeout_seconds": 2.0,
            "max_wait_seconds": 10.0,
            "backoff_initial_seconds": 0.01,
            "backoff_max_seconds": 0.05,
            "max_requests_per_second": 1000.0,
            **overrides,
        }
        metrics = Metrics()
        fetcher = ContentFetcher(ContentConfig(**settings), metrics, user_agent=user_agent)
        made.append(fetcher)
        return fetcher, metrics

    yield make
    for fetcher in made:
        await fetcher.close()


# -- what is fetched ----------------------------------------------------------------------


async def test_edit_fetches_the_compare_diff(wiki: FakeMediaWiki, make_fetcher: Factory) -> None:
    wiki.add_edit(
        EN,
        100,
        101,
        "Intro.\nShe lives in Leeds.\nOld line.",
        "Intro.\nShe lives in York.\nOld line.\nCall me on 020 7946 0958",
    )
    fetcher, metrics = make_fetcher()
    result = await fetcher.fetch(change())
    assert result == Content("ok", added="York\nCall me on 020 7946 0958", removed="Leeds")
    [request] = wiki.requests
    assert request.server_name == EN
    assert request.params == {
        "action": "compare",
        "fromrev": "100",
        "torev": "101",
        "prop": "diff",
        "format": "json",
        "formatversion": "2",
        "maxlag": "5",
    }
    assert request.headers["User-Agent"] == UA
    assert count(metrics, "content_requests", result="ok") == 1
    assert count(metrics, "content_events", outcome="fetched") == 1
    assert count(metrics, "content_fetch_seconds_count") == 1


async def test_page_creation_fetches_the_revision_text(
    wiki: FakeMediaWiki, make_fetcher: Factory
) -> None:
    wiki.add_page(EN, 200, "A new page.\nWith two lines.")
    wiki.add_page(EN, 201, "Created by an edit event without a parent.")
    fetcher, _ = make_fetcher()
    assert await fetcher.fetch(change("new", old=None, new=200)) == Content(
        "ok", added="A new page.\nWith two lines.", removed=""
    )
    assert await fetcher.fetch(change("edit", old=0, new=201)) == Content(
        "ok", added="Created by an edit event without a parent.", removed=""
    )
    assert wiki.requests[0].params == {
        "action": "query",
        "prop": "revisions",
        "revids": "200",
        "rvprop": "content",
        "rvslots": "main",
        "format": "json",
        "formatversion": "2",
        "maxlag": "5",
    }
    assert wiki.requests[1].params["revids"] == "201"


async def test_formatversion_1_answers_are_understood(make_fetcher: Factory) -> None:
    async with FakeMediaWiki(legacy_format=True) as old_wiki:
        old_wiki.add_edit(EN, 100, 101, "a\nb", "a\nb\nc added")
        old_wiki.add_page(EN, 300, "whole text")
        fetcher, _ = make_fetcher(old_wiki)
        assert await fetcher.fetch(change()) == Content("ok", added="c added", removed="")
        assert await fetcher.fetch(change("new", old=None, new=300)) == Content(
            "ok", added="whole text", removed=""
        )
        assert await fetcher.fetch(change("new", old=None, new=999)) == Content(
            "missing", reason="not_found"
        )


@pytest.mark.parametrize(
    "event",
    [
        change("log", old=None, new=None),
        change("categorize", old=100, new=101),
        change("edit", old=None, new=None),
        change("new", old=None, new=None),
    ],
    ids=["log", "categorize", "edit-without-revision", "new-without-revision"],
)
async def test_unsupported_events_are_skipped_without_a_request(
    wiki: FakeMediaWiki, make_fetcher: Factory, event: RecentChange
) -> None:
    fetcher, metrics = make_fetcher()
    assert await fetcher.fetch(event) == Content("skipped", reason="unsupported")
    assert wiki.requests == []
    assert count(metrics, "content_misses", reason="unsupported") == 0


async def test_hosts_outside_the_allowlist_are_not_contacted(
    wiki: FakeMediaWiki, make_fetcher: Factory
) -> None:
    """A forged event naming another host must not make the fetcher call it."""
    wiki.add_edit("evil.example.com", 100, 101, "a", "b")
    fetcher, _ = make_fetcher()
    got = await fetcher.fetch(change(server_name="evil.example.com"))
    assert got == Content("skipped", reason="host_not_allowed")
    assert wiki.requests == []
    wiki.add_edit(EN, 100, 101, "a", "b")
    assert (await fetcher.fetch(change())).status == "ok"
    opened, _ = make_fetcher(allowed_hosts=("*",))
    assert (await opened.fetch(change(server_name="evil.example.com"))).status == "ok"


async def test_disabled_fetcher_makes_no_request(
    wiki: FakeMediaWiki, make_fetcher: Factory
) -> None:
    wiki.add_edit(EN, 100, 101, "a", "b")
    fetcher, _ = make_fetcher(enabled=False)
    assert await fetcher.fetch(change()) == Content("skipped", reason="disabled")
    assert wiki.requests == []


async def test_long_texts_are_cut_on_a_character_boundary(
    wiki: FakeMediaWiki, make_fetcher: Factory
) -> None:
    wiki.add_page(EN, 200, "é" * 3000)  # 6000 bytes
    fetcher, _ = make_fetcher(max_text_bytes=1025)
    result = await fetcher.fetch(change("new", old=None, new=200))
    assert result.status == "ok" and result.added == "é" * 512


async def test_oversized_response_is_not_read(wiki: FakeMediaWiki, make_fetcher: Factory) -> None:
    wiki.add_page(EN, 200, "x" * 5000)
    fetcher, metrics = make_fetcher(max_response_bytes=2048)
    assert await fetcher.fetch(change("new", old=None, new=200)) == Content(
        "missing", reason="too_large"
    )
    assert len(wiki.requests) == 1
    assert count(metrics, "content_misses", reason="too_large") == 1


# -- faults -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "options", "label"),
    [
        ("http_500", {}, "http_5xx"),
        ("http_503", {}, "http_5xx"),
        ("http_429", {"retry_after": "0"}, "http_429"),
        ("maxlag", {"retry_after": "0"}, "maxlag"),
        ("ratelimited", {}, "ratelimited"),
        ("api_error", {"code": "internal_api_error_DBQueryError"}, "error"),
        ("drop", {}, "error"),
        ("garbage", {}, "error"),
        ("hang", {}, "timeout"),
    ],
)
async def test_transient_faults_are_retried(
    wiki: FakeMediaWiki,
    make_fetcher: Factory,
    kind: Any,
    options: dict[str, Any],
    label: str,
) -> None:
    wiki.add_edit(EN, 100, 101, "one", "one\ntwo")
    wiki.add_fault(kind, **options)
    fetcher, metrics = make_fetcher(timeout_seconds=0.3)
    assert await fetcher.fetch(change()) == Content("ok", added="two", removed="")
    assert len(wiki.requests) == 2
    assert count(metrics, "content_requests", result=label) == 1
    assert count(metrics, "content_requests", result="ok") == 1
    assert count(metrics, "content_retries", reason=label) == 1
    assert count(metrics, "content_misses", reason=label) == 0
    for request in wiki.requests:  # also on retries
        assert request.headers["User-Agent"] == UA
        assert request.params["maxlag"] == "5"


async def test_exhausted_attempts_fail_and_are_not_cached(
    wiki: FakeMediaWiki, make_fetcher: Factory
) -> None:
    wiki.add_edit(EN, 100, 101, "one", "one\ntwo")
    for _ in range(3):
        wiki.add_fault("http_500")
    fetcher, metrics = make_fetcher(max_attempts=3)
    assert await fetcher.fetch(change()) == Content("failed", reason="http_5xx")
    assert len(wiki.requests) == 3
    assert count(metrics, "content_requests", result="http_5xx") == 3
    assert count(metrics, "content_retries", reason="http_5xx") == 2
    assert count(metrics, "content_misses", reason="http_5xx") == 1
    assert count(metrics, "content_fetch_seconds_count") == 1
    # a failure is not cached: the next fetch asks again
    assert (await fetcher.fetch(change())).status == "ok"
    assert len(wiki.requests) == 4


@pytest.mark.parametrize(
    ("code", "expected", "label"),
    [
        ("nosuchrevid", Content("missing", reason="not_found"), "not_found"),
        ("missingtitle", Content("missing", reason="not_found"), "not_found"),
        ("permissiondenied", Content("missing", reason="deleted"), "not_found"),
        ("missingcontent", Content("missing", reason="deleted"), "not_found"),
        ("badvalue", Content("failed", reason="error"), "error"),
    ],
)
async def test_final_api_errors_are_not_retried(
    wiki: FakeMediaWiki, make_fetcher: Factory, code: str, expected: Content, label: str
) -> None:
    wiki.add_edit(EN, 100, 101, "one", "two")
    wiki.add_fault("api_error", code=code)
    fetcher, metrics = make_fetcher()
    assert await fetcher.fetch(change()) == expected
    assert len(wiki.requests) == 1
    assert count(metrics, "content_requests", result=label) == 1
    assert count(metrics, "content_retries") == 0
    assert count(metrics, "content_misses", reason=expected.reason or "") == 1


async def test_missing_and_hidden_revisions(wiki: FakeMediaWiki, make_fetcher: Factory) -> None:
    wiki.add_edit(EN, 100, 101, "one", "two")
    wiki.hide_revision(EN, 101)
    wiki.add_page(EN, 200, "suppressed text")
    wiki.hide_revision(EN, 200, suppressed=True)
    fetcher, metrics = make_fetcher()
    assert await fetcher.fetch(change()) == Content("missing", reason="deleted")  # compare
    assert await fetcher.fetch(change(old=100, new=555)) == Content("missing", reason="not_found")
    assert await fetcher.fetch(change("new", old=None, new=200)) == Content(
        "missing", reason="deleted"
    )
    assert await fetcher.fetch(change("new", old=None, new=777)) == Content(
        "missing", reason="not_found"
    )  # badrevids
    assert len(wiki.requests) == 4
    assert count(metrics, "content_requests", result="not_found") == 4
    # missing results are cached, and counted as misses each time they are returned
    assert await fetcher.fetch(change()) == Content("missing", reason="deleted")
    assert len(wiki.requests) == 4
    assert count(metrics, "content_misses", reason="deleted") == 3


async def test_refused_user_agent_is_not_retried(
    wiki: FakeMediaWiki, make_fetcher: Factory
) -> None:
    wiki.add_edit(EN, 100, 101, "one", "two")
    fetcher, metrics = make_fetcher(user_agent="python-requests/2.32")
    assert await fetcher.fetch(change()) == Content("failed", reason="error")
    assert len(wiki.requests) == 1
    assert count(metrics, "content_requests", result="error") == 1


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("http_429", {"retry_after": "1"}),
        ("http_503", {"retry_after": "1"}),
        ("maxlag", {"retry_after": "1", "lag_seconds": 6}),
        ("maxlag", {"retry_after": None, "lag_seconds": 1}),  # no header: wait the lag
    ],
    ids=["429", "503", "maxlag-retry-after", "maxlag-lag"],
)
async def test_the_servers_wait_is_honoured_for_the_whole_wiki(
    wiki: FakeMediaWiki, make_fetcher: Factory, kind: Any, options: dict[str, Any]
) -> None:
    wiki.add_edit(EN, 100, 101, "one", "one\ntwo")
    wiki.add_edit(EN, 102, 103, "three", "three\nfour")
    wiki.add_edit(DE, 100, 101, "eins", "eins\nzwei")
    wiki.add_fault(kind, server_name=EN, **options)
    fetcher, _ = make_fetcher()
    started = time.monotonic()
    first = asyncio.create_task(fetcher.fetch(change()))
    while not wiki.requests:
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.05)  # the refusal is in; now other requests come
    second = asyncio.create_task(fetcher.fetch(change(old=102, new=103)))
    other_wiki = await fetcher.fetch(change(server_name=DE, wiki="dewiki"))
    assert other_wiki == Content("ok", added="zwei", removed="")
    assert (await first).added == "two"
    assert (await second).added == "four"
    assert time.monotonic() - started >= 1.0
    refused_at = wiki.requests_for(EN)[0].at
    later = wiki.requests_for(EN)[1:]
    assert len(later) == 2
    assert all(r.at - refused_at >= 0.99 for r in later)
    assert wiki.requests_for(DE)[0].at - refused_at < 0.99  # another wiki is not held


async def test_a_wait_longer_than_the_deadline_gives_up_at_once(
    wiki: FakeMediaWiki, make_fetcher: Factory
) -> None:
    wiki.add_edit(EN, 100, 101, "one", "two")
    wiki.add_edit(EN, 102, 103, "three", "four")
    wiki.add_fault("http_429", retry_after="30")
    fetcher, metrics = make_fetcher(max_wait_seconds=3.0)
    assert await fetcher.fetch(change()) == Content("failed", reason="http_429")
    # the wiki asked for 30 s: another revision there is not even requested meanwhile
    assert await fetcher.fetch(change(old=102, new=103)) == Content("failed", reason="http_429")
    assert len(wiki.requests) == 1
    assert count(metrics, "content_misses", reason="http_429") == 2


async def test_per_event_deadline(wiki: FakeMediaWiki, make_fetcher: Factory) -> None:
    wiki.add_edit(EN, 100, 101, "one", "one\ntwo")
    wiki.add_fault("hang", hang_seconds=30)
    fetcher, metrics = make_fetcher(timeout_seconds=10.0, max_wait_seconds=0.5)
    assert await fetcher.fetch(change()) == Content("failed", reason="timeout")
    assert count(metrics, "content_requests", result="timeout") == 1
    assert count(metrics, "content_misses", reason="timeout") == 1
    assert (await fetcher.fetch(change())).added == "two"  # not cached
    assert len(wiki.requests) == 2


async def test_the_deadline_starts_when_the_request_is_sent(
    wiki: FakeMediaWiki, make_fetcher: Factory
) -> None:
    """Issue 20, item 13: the deadline counted the time a fetch waited behind
    ``per_host_concurrency``, so a backlog timed fetches out before they were sent."""
    wiki.latency_seconds = 0.1
    for i in range(12):
        wiki.add_edit(EN, 100 + 2 * i, 101 + 2 * i, "a", f"a\nline {i}")
    fetcher, metrics = make_fetcher(per_host_concurrency=1, max_wait_seconds=0.5)
    results = await asyncio.gather(
        *(fetcher.fetch(change(old=100 + 2 * i, new=101 + 2 * i)) for i in range(12))
    )
    assert [r.added for r in results] == [f"line {i}" for i in range(12)]
    assert count(metrics, "content_misses", reason="timeout") == 0
    assert wiki.max_concurrent[EN] == 1


async def test_a_queued_fetch_still_honours_a_long_hold(
    wiki: FakeMediaWiki, make_fetcher: Factory
) -> None:
    """A wiki that asked us to stay away for longer than the deadline fails the fetches
    queued for it at once, as before: only our own limits are waited out."""
    wiki.add_edit(EN, 100, 101, "a", "a\nb")
    wiki.add_fault("http_429", retry_after="30")
    fetcher, _ = make_fetcher(max_wait_seconds=1.0, per_host_concurrency=1)
    first = await fetcher.fetch(change())
    assert first == Content("failed", reason="http_429")
    assert await fetcher.fetch(change()) == Content("failed", reason="http_429")
    assert len(wiki.requests) == 1


# -- politeness ---------------------------------------------------------------------------


async def test_per_host_concurrency_is_bounded_and_other_hosts_proceed(
    wiki: FakeMediaWiki, make_fetcher: Factory
) -> None:
    wiki.latency_seconds = 0.15
    for i in range(6):
        wiki.add_edit(EN, 100 + 2 * i, 101 + 2 * i, "a", f"a\nline {i}")
    wiki.add_edit(DE, 100, 101, "b", "b\nzeile")
    fetcher, _ = make_fetcher(per_host_concurrency=2)
    en = [fetcher.fetch(change(old=100 + 2 * i, new=101 + 2 * i)) for i in range(6)]
    en_tasks = [asyncio.create_task(c) for c in en]
    await asyncio.sleep(0.02)
    de = await fetcher.fetch(change(server_name=DE, wiki="dewiki"))
    results = await asyncio.gather(*en_tasks)
    assert de.added == "zeile"
    assert [r.added for r in results] == [f"line {i}" for i in range(6)]
    assert wiki.max_concurrent[EN] == 2
    en_arrivals = sorted(r.at for r in wiki.requests_for(EN))
    assert wiki.requests_for(DE)[0].at < en_arrivals[2]  # not queued behind en


async def test_global_rate_limit(wiki: FakeMediaWiki, make_fetcher: Factory) -> None:
    hosts = [EN, DE, "fr.wikipedia.org"]
    for host in hosts:
        for i in range(8):
            wiki.add_edit(host, 100 + 2 * i, 101 + 2 * i, "a", "a\nb")
    rate = 20.0
    fetcher, _ = make_fetcher(max_requests_per_second=rate, per_host_concurrency=8)
    results = await asyncio.gather(
        *(
            fetcher.fetch(change(old=100 + 2 * i, new=101 + 2 * i, server_name=h, wiki=h))
            for h in hosts
            for i in range(8)
        )
    )
    assert all(r.status == "ok" for r in results)
    arrivals = sorted(r.at for r in wiki.requests)
    assert len(arrivals) == 24
    burst = 2  # a tenth of a second's worth
    assert arrivals[-1] - arrivals[0] >= (24 - burst) / rate * 0.9
    for i, start in enumerate(arrivals):  # no half-second window holds more than allowed
        in_window = sum(1 for t in arrivals[i:] if t - start < 0.5)
        assert in_window <= 0.5 * rate + burst + 2  # + arrival jitter


async def test_cache_hit_makes_no_request(wiki: FakeMediaWiki, make_fetcher: Factory) -> None:
    wiki.add_edit(EN, 100, 101, "a", "a\nb")
    fetcher, metrics = make_fetcher()
    first = await fetcher.fetch(change())
    assert await fetcher.fetch(change()) == first
    assert len(wiki.requests) == 1
    assert count(metrics, "content_events", outcome="fetched") == 1
    assert count(metrics, "content_events", outcome="cached") == 1
    assert count(metrics, "content_fetch_seconds_count") == 1
    # the same revision id on another wiki is another page
    wiki.add_edit(DE, 100, 101, "x", "x\ny")
    assert (await fetcher.fetch(change(server_name=DE, wiki="dewiki"))).added == "y"
    assert len(wiki.requests) == 2


async def test_cache_is_a_bounded_lru(wiki: FakeMediaWiki, make_fetcher: Factory) -> None:
    for i in range(3):
        wiki.add_edit(EN, 100 + 2 * i, 101 + 2 * i, "a", f"a\n{i}")
    fetcher, _ = make_fetcher(cache_entries=2)
    for i in range(3):
        await fetcher.fetch(change(old=100 + 2 * i, new=101 + 2 * i))
    assert fetcher.cache_size == 2
    await fetcher.fetch(change(old=104, new=105))  # newest: cached
    assert len(wiki.requests) == 3
    await fetcher.fetch(change(old=100, new=101))  # oldest: evicted
    assert len(wiki.requests) == 4

    uncached, _ = make_fetcher(cache_entries=0)
    await uncached.fetch(change())
    await uncached.fetch(change())
    assert len(wiki.requests) == 6 and uncached.cache_size == 0


async def test_concurrent_fetches_of_one_revision_share_a_request(
    wiki: FakeMediaWiki, make_fetcher: Factory
) -> None:
    wiki.latency_seconds = 0.1
    wiki.add_edit(EN, 100, 101, "a", "a\nb")
    fetcher, metrics = make_fetcher()
    results = await asyncio.gather(*(fetcher.fetch(change()) for _ in range(5)))
    assert all(r == Content("ok", added="b", removed="") for r in results)
    assert len(wiki.requests) == 1
    assert count(metrics, "content_events", outcome="fetched") == 1
    assert count(metrics, "content_events", outcome="cached") == 4


async def test_a_caller_giving_up_does_not_cancel_the_shared_request(
    wiki: FakeMediaWiki, make_fetcher: Factory
) -> None:
    wiki.latency_seconds = 0.2
    wiki.add_edit(EN, 100, 101, "a", "a\nb")
    fetcher, _ = make_fetcher()
    impatient = asyncio.create_task(fetcher.fetch(change()))
    patient = asyncio.create_task(fetcher.fetch(change()))
    await asyncio.sleep(0.05)
    impatient.cancel()
    with pytest.raises(asyncio.CancelledError):
        await impatient
    assert (await patient).added == "b"
    assert len(wiki.requests) == 1


async def test_close_ends_fetches_in_flight(wiki: FakeMediaWiki, make_fetcher: Factory) -> None:
    wiki.add_edit(EN, 100, 101, "a", "a\nb")
    wiki.add_fault("hang", hang_seconds=30)
    fetcher, _ = make_fetcher(timeout_seconds=10.0)
    pending = asyncio.create_task(fetcher.fetch(change()))
    while not wiki.requests:
        await asyncio.sleep(0.005)
    await fetcher.close()
    assert await pending == Content("failed", reason="error")


async def test_logs_never_hold_page_text_titles_or_users(
    wiki: FakeMediaWiki, make_fetcher: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "SECRET-4111-1111-1111-1111"
    caplog.set_level(logging.DEBUG)
    wiki.add_edit(EN, 100, 101, f"old line {secret}", f"new text\nmore {secret}", title=secret)
    wiki.add_edit(EN, 102, 103, secret, f"{secret}!", title=secret)
    wiki.add_page(EN, 200, secret, title=secret)
    wiki.hide_revision(EN, 200)
    for _ in range(2):
        wiki.add_fault("http_503", server_name=EN)
    wiki.add_fault("api_error", code="badvalue")
    fetcher, _ = make_fetcher(max_attempts=2)
    events = [
        change(title=secret, user=secret),  # 503, 503: failed
        change(title=secret, user=secret),  # badvalue: failed
        change(title=secret, user=secret),  # ok
        change(old=102, new=103, title=secret, user=secret),
        change("new", old=None, new=200, title=secret, user=secret),  # hidden
    ]
    results = [await fetcher.fetch(e) for e in events]
    assert [r.status for r in results] == ["failed", "failed", "ok", "ok", "missing"]
    assert results[2].added is not None and secret in results[2].added
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) >= 2  # the failures are logged...
    assert any(getattr(r, "fields", {}).get("rev_new") == 101 for r in warnings)
    for record in caplog.records:  # ...without any content
        assert secret not in record.getMessage()
        assert secret not in repr(record.__dict__)
    assert secret not in caplog.text


async def test_a_wiki_that_keeps_failing_is_skipped_for_a_while(
    wiki: FakeMediaWiki, make_fetcher: Factory
) -> None:
    for _ in range(50):
        wiki.add_fault("http_500", server_name=EN)
    for rev in range(100, 140, 2):
        wiki.add_edit(EN, rev, rev + 1, "a", "b")
        wiki.add_edit(DE, rev, rev + 1, "a", "b")
    fetcher, metrics = make_fetcher(
        max_attempts=2, circuit_failures=4, circuit_open_seconds=60, cache_entries=0
    )
    results = [await fetcher.fetch(change(old=r, new=r + 1)) for r in range(100, 140, 2)]
    sent = len(wiki.requests_for(EN))
    assert sent == 4, "after four consecutive failures the circuit opens: no more requests"
    assert [r.reason for r in results[2:]] == ["circuit_open"] * 18
    assert count(metrics, "content_misses", reason="circuit_open") == 18
    other = await fetcher.fetch(change(old=100, new=101, server_name=DE))
    assert other.status == "ok", "other wikis are not affected"
