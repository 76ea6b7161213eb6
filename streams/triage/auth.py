"""Who is asking, and is this form theirs.

Four ways in, all checked on every request:
- a session cookie, made by signing in: with the token in the form (``POST /login``), or
  with a sign-in link (``/login?code=...``): its code is made for one person to sign in
  once, within ten minutes, and the token itself never goes in an address;
- ``Authorization: Bearer <token>`` (scripts; no cookie, so no CSRF risk);
- a header an authenticating reverse proxy sets (``triage.trusted_proxy_header``).

Sessions and the proxy's header are identified first, and never throttled: a session id is
random and no one guesses it. What can be guessed (the token, in the form or a Bearer
header; a sign-in code) counts against its client when wrong: 20 in a minute and that
client is refused for a minute, the right token included (else the throttle would not slow
guessing). The client is the address that connected, or, behind a proxy that names it
(``triage.trusted_proxy_client_header``), the address the proxy saw: one client's guesses
never lock out another, nor anyone already signed in. A sign-in another site starts
(``Sec-Fetch-Site: cross-site``, an ``<img>`` or a form elsewhere) is refused before it is
counted, so a web page cannot lock anyone out, nor sign a browser in to a session of its
choosing.

A verdict form carries a CSRF token: an HMAC, under a key made at start-up, of the session
(or of the proxy's user name). The cookie is HttpOnly and SameSite=Strict, and a post whose
Origin names another site is refused too.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass

from sinks.alert import printable

__all__ = ["BAD_TOKEN", "COOKIE", "LINK_SECONDS", "Identity", "Sessions"]

COOKIE = "rcwatch_triage"
LINK_SECONDS = 600  # a sign-in link works once, within ten minutes
_MAX_SESSIONS = 1000
_MAX_LINKS = 100
_MAX_FAILURES_PER_MINUTE = 20
_MAX_CLIENTS = 10_000


@dataclass(frozen=True)
class Identity:
    user: str  # recorded with each verdict
    key: str  # what the CSRF token is bound to
    ambient: bool  # sent by the browser on its own (cookie, proxy): needs a CSRF token


# a request that offered a wrong token (a Bearer header): refused, and counted as a failed
# sign-in of its client
BAD_TOKEN = Identity("", "", ambient=False)


def _digest(code: str) -> bytes:
    return hashlib.sha256(code.encode()).digest()


class Sessions:
    """Sign-in, sessions (in memory: a restart signs everyone out) and CSRF tokens."""

    def __init__(self, token: str | None, proxy_header: str | None, session_seconds: float) -> None:
        self._token = token
        self.proxy_header = proxy_header
        self._ttl = session_seconds
        self._key = secrets.token_bytes(32)
        self._sessions: OrderedDict[str, float] = OrderedDict()  # id -> expiry
        # sign-in links not used yet: the code's digest -> expiry
        self._links: OrderedDict[bytes, float] = OrderedDict()
        # client address -> times of its failed sign-ins in the last minute (bounded)
        self._failures: OrderedDict[str, list[float]] = OrderedDict()

    @property
    def uses_token(self) -> bool:
        return self._token is not None

    def token_ok(self, offered: str | None) -> bool:
        if self._token is None or not offered:
            return False
        return hmac.compare_digest(offered.encode(), self._token.encode())

    def throttled(self, client: str, now: float | None = None) -> bool:
        """This client failed to sign in too often in the last minute: refuse it without
        checking (other clients are not affected)."""
        now = time.monotonic() if now is None else now
        recent = [t for t in self._failures.get(client, ()) if now - t < 60]
        if recent:
            self._failures[client] = recent
        else:
            self._failures.pop(client, None)
        return len(recent) >= _MAX_FAILURES_PER_MINUTE

    def failed(self, client: str) -> None:
        self._failures.setdefault(client, []).append(time.monotonic())
        self._failures.move_to_end(client)
        while len(self._failures) > _MAX_CLIENTS:
            self._failures.popitem(last=False)

    def open(self) -> str:
        sid = secrets.token_urlsafe(32)
        self._sessions[sid] = time.monotonic() + self._ttl
        while len(self._sessions) > _MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return sid

    def close(self, sid: str | None) -> None:
        if sid:
            self._sessions.pop(sid, None)

    def link_code(self) -> str:
        """A sign-in code for a printed link: it works once, within ``LINK_SECONDS``."""
        code = secrets.token_urlsafe(24)
        self._links[_digest(code)] = time.monotonic() + LINK_SECONDS
        while len(self._links) > _MAX_LINKS:
            self._links.popitem(last=False)
        return code

    def redeem(self, code: str | None, now: float | None = None) -> bool:
        """Is ``code`` a sign-in link's, unused and in time? It is spent either way."""
        if not code:
            return False
        expiry = self._links.pop(_digest(code), None)
        now = time.monotonic() if now is None else now
        return expiry is not None and now < expiry

    def identify(self, cookie: str | None, proxy_user: str | None) -> Identity | None:
        """Who is asking, by what no one can guess: the proxy's header, or a session."""
        if self.proxy_header is not None and proxy_user:
            user = printable(proxy_user.strip(), 64)
            if user:
                return Identity(user, "proxy:" + user, ambient=True)
        if cookie:
            expiry = self._sessions.get(cookie)
            if expiry is not None and expiry > time.monotonic():
                return Identity("token", "session:" + cookie, ambient=True)
            self._sessions.pop(cookie, None)
        return None

    def bearer(self, authorization: str | None) -> Identity | None:
        """A script's ``Authorization: Bearer <token>``: its identity, ``BAD_TOKEN`` when
        the token is wrong (count it: it may be a guess), None when there is none."""
        if not authorization or not authorization.startswith("Bearer "):
            return None
        if self.token_ok(authorization[7:].strip()):
            return Identity("token", "bearer", ambient=False)
        return BAD_TOKEN

    def csrf(self, identity: Identity) -> str:
        return hmac.new(self._key, identity.key.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, identity: Identity, offered: str | None) -> bool:
        if not identity.ambient:
            return True
        return bool(offered) and hmac.compare_digest(str(offered), self.csrf(identity))
