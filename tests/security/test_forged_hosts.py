"""Forged hosts: no field of an event can make rcwatch contact, or link to, another host.

Issue 9.1 reproduced: an event naming en.wikipedia.org but carrying ``server_url:
http://127.0.0.1:PORT`` (or ``server_script_path: "@127.0.0.1:PORT/sp"``) made the fetcher
GET an internal address and follow a 302 to an internal admin URL; the reply became
"added text" and the alert's diff link pointed at 127.0.0.1.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from detectors.base import EMPTY_CONTEXT
from detectors.event import RawEvent, RecentChange, decode_event
from sinks.metrics import Metrics
from streams.app import build_detection
from streams.fetch.content import WIKIMEDIA_HOSTS, Content, ContentConfig, ContentFetcher
from streams.fetch.wikihosts import PublicAddressResolver, WikiHosts, is_public_address
from streams.pipeline.alerting import build_alerts
from streams.pipeline.stages import Pipeline
from streams.settings import Settings
from tests.harness import TEST_UA, metric_total
from tests.sinks.endpoints import free_port


class Internal:
    """A service inside the network that must never be reached: records every request,
    and answers ``/redirect`` with a 302 to its own admin page."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.paths.append(request.path_qs)
        if request.path.endswith("/redirect/api.php"):
            raise web.HTTPFound(f"http://127.0.0.1:{self.port}/internal-admin?secret=1")
        body = {"compare": {"body": '<tr><td class="diff-addedline">secret admin page</td></tr>'}}
        return web.json_response(body)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def internal() -> AsyncIterator[Internal]:
    service = Internal()
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


def _forged(port: int, **fields: Any) -> RecentChange:
    event = {
        "meta": {"id": "f1", "dt": "2026-05-05T11:17:40Z", "domain": "en.wikipedia.org"},
        "type": "edit",
        "namespace": 3,
        "title": "User talk:Victim",
        "comment": "contact jane.roe@example.org",
        "user": "Mallory",
        "wiki": "enwiki",
        "server_name": "en.wikipedia.org",
        "server_url": f"http://127.0.0.1:{port}",
        "server_script_path": f"@127.0.0.1:{port}/sp",
        "title_url": f"http://127.0.0.1:{port}/phish",
        "revision": {"old": 1, "new": 2},
        **fields,
    }
    return decode_event(orjson.dumps(event))


async def _fetch_once(config: ContentConfig, change: RecentChange) -> tuple[Content, Metrics]:
    metrics = Metrics()
    fetcher = ContentFetcher(config, metrics, user_agent=TEST_UA)
    try:
        return await fetcher.fetch(change), metrics
    finally:
        await fetcher.close()


class _RecordingResolver(AbstractResolver):
    """Records which host names the client asked for, and resolves none of them: these
    tests run offline, and reaching a real wiki is not what they are about."""

    def __init__(self) -> None:
        self.hosts: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.hosts.append(host)
        raise OSError("offline test: no DNS")

    async def close(self) -> None:
        pass


async def test_the_api_url_comes_from_the_vetted_host_never_from_server_url(
    internal: Internal,
) -> None:
    resolver = _RecordingResolver()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=resolver)) as s:
        config = ContentConfig(timeout_seconds=2, max_wait_seconds=3, max_attempts=1)
        fetcher = ContentFetcher(config, Metrics(), user_agent=TEST_UA, session=s)
        for forged in (
            _forged(internal.port),
            _forged(internal.port, server_script_path=f"@127.0.0.1:{internal.port}/x#"),
        ):
            got = await fetcher.fetch(forged)
            assert got.status == "failed"  # offline: the real wiki cannot be reached
        await fetcher.close()
    assert internal.paths == [], "the internal service was contacted"
    assert set(resolver.hosts) == {"en.wikipedia.org"}


@pytest.mark.parametrize(
    "server_name",
    [
        f"127.0.0.1:{18300}/.wikipedia.org",
        "evil.example@en.wikipedia.org",
        "en.wikipedia.org:8080",
        "en.wikipedia.org/../x",
        "en.wikipedia.org.",
        "127.0.0.1",
        "[::1]",
        "еn.wikipedia.org",  # a Cyrillic е
        "en.wikipedia.org\r\nHost: evil",
        "",
    ],
)
async def test_a_host_that_is_not_a_plain_trusted_name_is_never_contacted(
    server_name: str, internal: Internal
) -> None:
    config = ContentConfig(
        api_url=f"http://127.0.0.1:{internal.port}/{{server_name}}/api.php",
        allowed_hosts=(*WIKIMEDIA_HOSTS, "*"),  # even with a catch-all pattern
    )
    got, _ = await _fetch_once(config, _forged(internal.port, server_name=server_name))
    assert got == Content("skipped", reason="host_not_allowed")
    assert internal.paths == []


async def test_redirects_are_not_followed(internal: Internal) -> None:
    config = ContentConfig(
        api_url=f"http://127.0.0.1:{internal.port}/{{server_name}}/api.php",
        allowed_hosts=("redirect",),
        max_attempts=3,
    )
    got, metrics = await _fetch_once(config, _forged(internal.port, server_name="redirect"))
    assert got == Content("failed", reason="redirect")
    assert [p.split("?")[0] for p in internal.paths] == ["/redirect/api.php"], "followed"
    assert metric_total(metrics, "rcwatch_content_requests", result="redirect") == 1


async def test_a_trusted_name_resolving_to_a_private_address_is_refused(
    internal: Internal,
) -> None:
    """DNS rebinding or a split-horizon mistake: the name is allowed, its address is not."""
    config = ContentConfig(
        api_url=f"https://{{server_name}}:{internal.port}/w/api.php", allowed_hosts=("localhost",)
    )
    got, metrics = await _fetch_once(config, _forged(internal.port, server_name="localhost"))
    assert got == Content("failed", reason="address_refused")
    assert internal.paths == []
    assert metric_total(metrics, "rcwatch_content_misses", reason="address_refused") == 1


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.1", False),
        ("192.168.1.1", False), ("169.254.169.254", False), ("0.0.0.0", False),
        ("::1", False), ("fe80::1%eth0", False), ("fc00::1", False),
        ("::ffff:127.0.0.1", False), ("224.0.0.1", False), ("100.64.0.1", False),
        ("208.80.154.224", True), ("2620:0:861:ed1a::1", True),
        # IPv6 forms that reach a private IPv4 address through a translator or tunnel
        ("64:ff9b::a9fe:a9fe", False), ("64:ff9b::a00:1", False), ("2002:a00:1::1", False),
        ("::7f00:1", False), ("::ffff:0:7f00:1", False), ("64:ff9b:1::a00:1", False),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),
        # and the same forms of a public one
        ("64:ff9b::d050:9ae0", True), ("2002:d050:9ae0::1", True),
        ("::ffff:208.80.154.224", True),
    ],
)  # fmt: skip
def test_only_public_addresses_pass(address: str, public: bool) -> None:
    assert is_public_address(address) is public


async def test_a_configured_proxy_is_exempt_from_the_address_check() -> None:
    class Loopback(AbstractResolver):
        async def resolve(
            self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
        ) -> list[ResolveResult]:
            return [
                {"hostname": host, "host": "127.0.0.1", "port": port, "family": family,
                 "proto": 0, "flags": 0}
            ]  # fmt: skip

        async def close(self) -> None:
            pass

    resolver = PublicAddressResolver(exempt={"proxy.internal"}, inner=Loopback())
    assert (await resolver.resolve("proxy.internal", 3128))[0]["host"] == "127.0.0.1"
    with pytest.raises(OSError, match="non-public"):
        await resolver.resolve("en.wikipedia.org", 443)


def test_alert_links_use_the_vetted_host_and_fixed_paths() -> None:
    settings = Settings()
    metrics = Metrics()
    pipeline = Pipeline(settings.scope.build(), build_detection(settings, metrics), metrics)
    forged = _forged(18300).raw
    result = pipeline.process([RawEvent(None, orjson.dumps(forged), 0)])
    [alert] = [a for a in result.alerts if a.rule == "privacy.email-in-summary"]
    assert alert.diff_url == "https://en.wikipedia.org/w/index.php?diff=2&oldid=1"
    assert alert.page_url == "https://en.wikipedia.org/wiki/User_talk:Victim"
    assert "127.0.0.1" not in alert.to_json().decode()
    hosts = WikiHosts(WIKIMEDIA_HOSTS)
    outside = _forged(18300, server_name="wiki.evil.example")
    findings = pipeline.detection.engine.evaluate(outside, EMPTY_CONTEXT)
    [other] = build_alerts(outside, EMPTY_CONTEXT, findings, "t", hosts)
    assert other.diff_url is None and other.page_url is None, "no link to an untrusted host"
