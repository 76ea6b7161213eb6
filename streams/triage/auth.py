"""Who is asking, and is this form theirs.

Three ways in, all checked on every request:
- a session cookie, made by signing in with the token (``POST /login``, or once with
  ``/login?token=...``, the link rcwatch prints; the token leaves the address at once);
- ``Authorization: Bearer <token>`` (scripts; no cookie, so no CSRF risk);
- a header an authenticating reverse proxy sets (``triage.trusted_proxy_header``).

A wrong token, by any way, counts against its client: 20 in a minute and that client is
refused for a minute (others are not). A sign-in another site starts (``Sec-Fetch-Site:
cross-site``, an ``<img>`` or a form elsewhere) is refused before it is counted, so a web
page cannot lock anyone out, nor sign a browser in to a session of its choosing.

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

__all__ = ["BAD_TOKEN", "COOKIE", "Identity", "Sessions"]

COOKIE = "rcwatch_triage"
_MAX_SESSIONS = 1000
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


class Sessions:
    """Sign-in, sessions (in memory: a restart signs everyone out) and CSRF tokens."""

    def __init__(self, token: str | None, proxy_header: str | None, session_seconds: float) -> None:
        self._token = token
        self.proxy_header = proxy_header
        self._ttl = session_seconds
        self._key = secrets.token_bytes(32)
        self._sessions: OrderedDict[str, float] = OrderedDict()  # id -> expiry
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

    def identify(
        self, cookie: str | None, authorization: str | None, proxy_user: str | None
    ) -> Identity | None:
        if self.proxy_header is not None and proxy_user:
            user = printable(proxy_user.strip(), 64)
            if user:
                return Identity(user, "proxy:" + user, ambient=True)
        if authorization and authorization.startswith("Bearer "):
            if self.token_ok(authorization[7:].strip()):
                return Identity("token", "bearer", ambient=False)
            return BAD_TOKEN
        if cookie:
            expiry = self._sessions.get(cookie)
            if expiry is not None and expiry > time.monotonic():
                return Identity("token", "session:" + cookie, ambient=True)
            self._sessions.pop(cookie, None)
        return None

    def csrf(self, identity: Identity) -> str:
        return hmac.new(self._key, identity.key.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, identity: Identity, offered: str | None) -> bool:
        if not identity.ambient:
            return True
        return bool(offered) and hmac.compare_digest(str(offered), self.csrf(identity))
