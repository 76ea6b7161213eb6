"""Which hosts rcwatch treats as wikis: for fetching their text and for alert links.

An event names its wiki several ways (``server_name``, ``server_url``,
``server_script_path``, ``title_url``, ``meta.domain``), and every one of them is written
by whoever produced the event. Only one is used, ``server_name``, and only after it is
*vetted*: a syntactically valid DNS name (letters, digits, hyphens and dots; not an IP
literal, no port, user, path or anything a URL parser could read otherwise), matching one
of the configured patterns (``content.allowed_hosts``, shell wildcards such as
``*.wikipedia.org``). Every URL rcwatch requests or prints is built from a vetted host and
a fixed path, so no field of an event can point the fetcher, or an on-call engineer's
click, at another host.

``PublicAddressResolver`` adds the last check for requests to a vetted host: after DNS,
loopback, private, link-local and other non-public addresses are refused, so a wiki host
name that resolves inside the network (DNS rebinding, a split-horizon mistake) is not
contacted.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
import socket
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

__all__ = [
    "AddressRefused",
    "PublicAddressResolver",
    "WikiHosts",
    "is_public_address",
    "proxy_hosts",
]

# a DNS name: labels of letters, digits and inner hyphens, at least one dot, a letter-led
# top-level label (so never an IPv4 literal), at most 253 characters
_HOSTNAME = re.compile(
    r"(?=.{1,253}\Z)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+"
    r"[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?\Z"
)
_SINGLE_LABEL = re.compile(r"[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")  # "localhost", tests
_CACHE_MAX = 10_000


class WikiHosts:
    """Vets the host names events give for their wikis."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = tuple(p.lower() for p in patterns)
        self._seen: dict[str, str | None] = {}

    def vetted(self, name: str | None) -> str | None:
        """``name`` lower-cased when it is a DNS name the patterns allow, else None."""
        if not name:
            return None
        known = self._seen.get(name, "")
        if known != "":
            return known
        host = name.lower()
        ok = (
            len(name) <= 253
            and (_HOSTNAME.match(host) is not None or _SINGLE_LABEL.match(host) is not None)
            and any(fnmatch.fnmatchcase(host, p) for p in self.patterns)
        )
        result = host if ok else None
        if len(self._seen) < _CACHE_MAX:
            self._seen[name] = result
        return result

    # -- links in alerts -------------------------------------------------------------------

    def page_url(self, server_name: str | None, title: str | None) -> str | None:
        host = self.vetted(server_name)
        if host is None or not title:
            return None
        return f"https://{host}/wiki/{quote(title.replace(' ', '_'), safe=':/')}"

    def diff_url(
        self, server_name: str | None, rev_new: int | None, rev_old: int | None
    ) -> str | None:
        host = self.vetted(server_name)
        if host is None or not rev_new:
            return None
        if rev_old:
            return f"https://{host}/w/index.php?diff={rev_new}&oldid={rev_old}"
        return f"https://{host}/w/index.php?diff={rev_new}"  # a creation: against nothing

    def permalink(
        self, server_name: str | None, rev_new: int | None, log_id: int | None
    ) -> str | None:
        host = self.vetted(server_name)
        if host is None:
            return None
        if rev_new:
            return f"https://{host}/w/index.php?oldid={rev_new}"
        if log_id:
            return f"https://{host}/wiki/Special:Redirect/logid/{log_id}"
        return None


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215, local use
_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # RFC 2765 IPv4-translated
_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated IPv4-compatible ::a.b.c.d


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address reaches through a translator or tunnel: mapped
    (::ffff:a.b.c.d), translated (::ffff:0:a.b.c.d), NAT64 (64:ff9b::a.b.c.d, which an IPv6-only
    host with DNS64 sends to a.b.c.d), 6to4 (2002:AABB:CCDD::) and Teredo."""
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    found = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip in _TRANSLATED or ip in _NAT64:
        found.append(low32)
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    return found


def is_public_address(address: str) -> bool:
    """Whether an IP address is on the public internet: not loopback, private, link-local,
    multicast, reserved or unspecified, nor an IPv6 form that reaches such an IPv4 address
    (mapped, translated, compatible, NAT64, 6to4, Teredo)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64_LOCAL or ip in _COMPATIBLE:
            return False  # a site's own translator, a deprecated form: nothing to reach
        embedded = _embedded_ipv4(ip)
        if embedded:
            return all(v4.is_global and not v4.is_multicast for v4 in embedded)
    return ip.is_global and not ip.is_multicast


class AddressRefused(OSError):
    """A vetted host resolved only to addresses rcwatch must not contact."""


class PublicAddressResolver(AbstractResolver):
    """DNS through aiohttp's default resolver, keeping only public addresses. Hosts named
    in ``exempt`` (a configured HTTP proxy) are resolved without the check."""

    def __init__(self, exempt: Iterable[str] = (), inner: AbstractResolver | None = None) -> None:
        self._inner = inner or DefaultResolver()
        self._exempt = frozenset(h.lower() for h in exempt)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if host.lower() in self._exempt:
            return results
        public = [r for r in results if is_public_address(r["host"])]
        if not public:
            raise AddressRefused(f"{host} resolves only to non-public addresses")
        return public

    async def close(self) -> None:
        await self._inner.close()


def proxy_hosts(env: dict[str, Any]) -> set[str]:
    """Host names of the HTTP(S) proxies named in the environment."""
    hosts = set()
    for key in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        value = env.get(key)
        if value:
            host = urlsplit(value if "//" in value else f"//{value}").hostname
            if host:
                hosts.add(host.lower())
    return hosts
