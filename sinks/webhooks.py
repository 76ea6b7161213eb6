"""HTTP transports: Alertmanager, PagerDuty Events API v2, Slack incoming webhooks, and a
generic JSON webhook signed with HMAC-SHA256.

Shared by all four (``HttpTransport``):

- targets are ``http`` or ``https`` URLs only; TLS certificates are always verified
  (``ca_file`` adds a private CA, nothing turns verification off);
- request bodies are capped (``max_body_bytes``): batches are split to fit, and a single
  alert that does not fit is rejected (dead-lettered), never cut silently;
- 2xx is delivered; 408, 425, 429 and 5xx are retried (``Retry-After`` honoured); any
  other status will not heal by retrying and is rejected; connection errors are retried;
- error messages name the status or the exception type, never the URL (a Slack webhook
  URL *is* its secret) and never the response body.

What each payload carries: the queue-like targets (generic webhook) get the whole alert
record; pager and chat targets get what a person needs to act (wiki, page, diff link, rule,
severity, why, redacted evidence) and nothing more. Slack gets the redacted text and the diff
link only: a chat channel is a public place.
"""

from __future__ import annotations

import hashlib
import hmac
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp
import orjson

from sinks.alert import payload_delivery_id
from sinks.delivery import DeliveryConfig, Transport, TransportError
from sinks.retry import parse_retry_after
from sinks.routing import RouteConfig, check_sink_name
from sinks.secrets import Secret, SecretRef, credentials_in_url

__all__ = [
    "AlertmanagerSinkConfig",
    "AlertmanagerTransport",
    "HttpTransport",
    "PagerDutySinkConfig",
    "PagerDutyTransport",
    "SlackSinkConfig",
    "SlackTransport",
    "WebhookSinkConfig",
    "WebhookTransport",
    "check_http_url",
    "sign",
]

_RETRY_STATUSES = frozenset({408, 425, 429})
_CREDENTIAL_STATUSES = frozenset({401, 403, 404, 410})
_READ_LIMIT = 64 << 10  # of a response body: only ever used to classify, never logged


def check_http_url(url: str) -> str | None:
    """None when ``url`` is an absolute http(s) URL with a host; else the problem."""
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        return "the URL contains spaces or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number in range
    except ValueError:
        return "not a URL (or its port is not a number from 0 to 65535)"
    if parts.scheme not in ("http", "https"):
        return f"only http and https targets are allowed, not {parts.scheme or 'none'!r}"
    if not parts.hostname:
        return "the URL has no host"
    return None


def _url_check(instead: str) -> Callable[[str], str | None]:
    """The check of a URL written in the settings file: http(s), and no credentials in it
    (``instead`` says where they go)."""

    def check(value: str) -> str | None:
        return check_http_url(value) or credentials_in_url(value, instead)

    return check


def safe_target(url: str) -> str:
    """``scheme://host:port`` only: paths and queries of webhook URLs carry tokens."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(invalid URL)"
    return f"{parts.scheme}://{parts.hostname or ''}{port}"


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """The system's trusted CAs, plus ``ca_file`` when given; verification always on."""
    context = ssl.create_default_context()
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cannot load ca_file {ca_file}: {exc}") from exc
    return context


@dataclass(frozen=True)
class HttpOptions:
    timeout_seconds: float = field(default=10.0, metadata={"gt": 0})
    max_body_bytes: int = field(default=1 << 20, metadata={"min": 1024})
    ca_file: str | None = field(default=None, metadata={"path": True})


# -- transport base ---------------------------------------------------------------------


class HttpTransport(Transport):
    def __init__(
        self,
        *,
        user_agent: str,
        timeout_seconds: float = 10.0,
        max_body_bytes: int = 1 << 20,
        ca_file: str | None = None,
    ) -> None:
        self.user_agent = user_agent
        self.timeout_seconds = timeout_seconds
        self.max_body_bytes = max_body_bytes
        self.ca_file = ca_file
        self._tls = tls_context(ca_file)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout_seconds),
            headers={"User-Agent": self.user_agent},
            connector=aiohttp.TCPConnector(ssl=self._tls, limit=4),
            raise_for_status=False,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(self, url: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
        """POST JSON; returns the (capped) response body of a 2xx or raises."""
        assert self._session is not None, "transport not started"
        if len(body) > self.max_body_bytes:
            raise TransportError(
                f"request body of {len(body)} bytes is over max_body_bytes", retryable=False
            )
        try:
            async with self._session.post(
                url,
                data=body,
                headers={"Content-Type": "application/json", **(headers or {})},
                allow_redirects=False,
            ) as resp:
                answer = await resp.content.read(_READ_LIMIT)
                status = resp.status
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            # the exception's text can hold the URL (a token): only its type is kept
            raise TransportError(f"request failed: {type(exc).__name__}") from exc
        if 200 <= status < 300:
            return answer
        if status in _CREDENTIAL_STATUSES:
            # a revoked or rotated key, a removed hook: an operator fixes it, so spool and
            # retry (up to max_attempts) rather than dead-letter the whole flow at once
            raise TransportError(
                f"HTTP {status}: the target refused our credentials or URL; fix the secret",
                retry_after_seconds=retry_after,
            )
        retryable = status in _RETRY_STATUSES or status >= 500
        raise TransportError(f"HTTP {status}", retryable=retryable, retry_after_seconds=retry_after)

    def split_to_fit(
        self, items: Sequence[Any], render: Any, overhead: int = 64
    ) -> list[list[Any]]:
        """Greedy groups of ``items`` whose rendered JSON stays under the body cap. An item
        too large on its own ends the list: the groups before it are returned, and
        ``send_groups`` refuses it after sending them."""
        groups: list[list[Any]] = []
        current: list[Any] = []
        size = overhead
        for item in items:
            n = len(orjson.dumps(render(item))) + 1
            if n + overhead > self.max_body_bytes:
                break
            if current and size + n > self.max_body_bytes:
                groups.append(current)
                current, size = [], overhead
            current.append(item)
            size += n
        if current:
            groups.append(current)
        return groups

    async def send_groups(
        self,
        payloads: Sequence[dict[str, Any]],
        render_one: Any,
        post_group: Any,
    ) -> None:
        """POST ``payloads`` in capped groups, saying how far it got when one fails."""
        groups = self.split_to_fit(payloads, render_one)
        done = 0
        for group in groups:
            try:
                await post_group(group)
            except TransportError as exc:
                exc.delivered, exc.attempted = done, len(group)
                raise
            done += len(group)
        if done < len(payloads):
            raise TransportError(
                "an alert is over max_body_bytes on its own",
                retryable=False,
                delivered=done,
                attempted=1,
            )


def _evidence_line(p: dict[str, Any], limit: int = 10) -> str:
    items = [f"{e['kind']} {e['redacted']} in {e['field']}" for e in p.get("evidence", [])]
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return "; ".join(items[:limit]) + more


def _headline(p: dict[str, Any]) -> str:
    repeat = f" (x{p['count']})" if p.get("count", 1) > 1 else ""
    return f"[{str(p['severity']).upper()}] {p['rule']}{repeat} on {p.get('wiki') or '?'}"


# -- Alertmanager ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertmanagerSinkConfig:
    type: Literal["alertmanager"] = "alertmanager"
    name: str = field(default="alertmanager", metadata={"check": check_sink_name})
    url: str = field(
        default="http://127.0.0.1:9093",
        metadata={"check": _url_check("bearer_token: {env: NAME}")},
    )
    bearer_token: SecretRef | None = None
    # Alertmanager resolves an alert not re-sent before endsAt: how long one stays open
    resolve_after_seconds: float = field(default=3600.0, metadata={"gt": 0})
    http: HttpOptions = field(default_factory=HttpOptions)
    route: RouteConfig = field(default_factory=RouteConfig)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)


class AlertmanagerTransport(HttpTransport):
    """``POST /api/v2/alerts``: one Alertmanager alert per rcwatch alert.

    Labels (bounded, routable): ``alertname="RcwatchDetection"``, ``alert_id``, ``rule``,
    ``category``, ``severity``, ``wiki``, ``change_type``. Annotations: ``summary``,
    ``description`` (reason and redacted evidence), ``page``, ``diff_url``, ``page_url``.
    Alertmanager deduplicates by label set, so a re-sent alert refreshes the same one.
    """

    batch_max_alerts = 200

    def __init__(
        self,
        url: str,
        *,
        bearer_token: Secret | None = None,
        resolve_after_seconds: float = 3600.0,
        **http: Any,
    ) -> None:
        super().__init__(**http)
        self.endpoint = url.rstrip("/") + "/api/v2/alerts"
        self._token = bearer_token
        self.resolve_after = timedelta(seconds=resolve_after_seconds)

    def describe(self) -> str:
        return f"alertmanager {safe_target(self.endpoint)}"

    def render(self, p: dict[str, Any]) -> dict[str, Any]:
        now = datetime.now(UTC)
        labels = {
            "alertname": "RcwatchDetection",
            "alert_id": str(p["id"]),
            "rule": str(p["rule"]),
            "category": str(p["category"]),
            "severity": str(p["severity"]),
            "wiki": str(p.get("wiki") or "unknown"),
            "change_type": str(p.get("change_type") or "unknown"),
        }
        annotations = {
            "summary": f"{_headline(p)}: {p.get('reason', '')}"[:1000],
            "description": _evidence_line(p) or str(p.get("reason", "")),
            "page": str(p.get("title") or ""),
            "diff_url": str(p.get("diff_url") or ""),
            "page_url": str(p.get("page_url") or ""),
            "count": str(p.get("count", 1)),
        }
        return {
            "labels": labels,
            "annotations": {k: v for k, v in annotations.items() if v},
            "startsAt": p.get("event_time") or now.isoformat(),
            "endsAt": (now + self.resolve_after).isoformat(),
            "generatorURL": p.get("diff_url") or p.get("page_url") or "",
        }

    async def send(self, payloads: Sequence[dict[str, Any]]) -> None:
        headers = {"Authorization": f"Bearer {self._token.reveal()}"} if self._token else {}

        async def post_group(group: list[dict[str, Any]]) -> None:
            await self.post(self.endpoint, orjson.dumps([self.render(p) for p in group]), headers)

        await self.send_groups(payloads, self.render, post_group)


# -- PagerDuty --------------------------------------------------------------------------------

_PD_SEVERITY = {"low": "info", "medium": "warning", "high": "error", "critical": "critical"}


@dataclass(frozen=True)
class PagerDutySinkConfig:
    type: Literal["pagerduty"] = "pagerduty"
    name: str = field(default="pagerduty", metadata={"check": check_sink_name})
    routing_key: SecretRef | None = None  # the integration key: {env: NAME} or {file: PATH}
    url: str = field(
        default="https://events.pagerduty.com/v2/enqueue",
        metadata={"check": _url_check("routing_key: {env: NAME}")},
    )
    http: HttpOptions = field(default_factory=HttpOptions)
    route: RouteConfig = field(default_factory=lambda: RouteConfig(min_severity="critical"))
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)

    def __post_init__(self) -> None:
        if self.routing_key is None:
            raise ValueError("routing_key is required: {env: NAME} or {file: PATH}")


class PagerDutyTransport(HttpTransport):
    """Events API v2 ``trigger`` per alert, ``dedup_key`` = alert id: PagerDuty folds a
    re-sent alert (or an update with a higher count) into the same incident."""

    batch_max_alerts = 20
    request_per_alert = True

    def __init__(self, url: str, *, routing_key: Secret, **http: Any) -> None:
        super().__init__(**http)
        self.url = url
        self._key = routing_key

    def describe(self) -> str:
        return f"pagerduty {safe_target(self.url)}"

    def render(self, p: dict[str, Any]) -> dict[str, Any]:
        links = [{"href": p["diff_url"], "text": "diff"}] if p.get("diff_url") else []
        if p.get("page_url"):
            links.append({"href": p["page_url"], "text": "page"})
        return {
            "routing_key": self._key.reveal(),
            "event_action": "trigger",
            "dedup_key": str(p["id"]),
            "client": "rcwatch",
            **({"client_url": p["diff_url"]} if p.get("diff_url") else {}),
            "links": links,
            "payload": {
                "summary": f"{_headline(p)}: {p.get('reason', '')}"[:1024],
                "source": str(p.get("wiki") or "rcwatch"),
                "severity": _PD_SEVERITY.get(str(p["severity"]), "warning"),
                "timestamp": p.get("event_time") or p.get("detected_at"),
                "component": str(p["rule"]),
                "group": str(p["category"]),
                "class": str(p["category"]),
                "custom_details": {
                    "alert_id": p["id"],
                    "rule": p["rule"],
                    "severity": p["severity"],
                    "page": p.get("title"),
                    "diff_url": p.get("diff_url"),
                    "reason": p.get("reason"),
                    "evidence": _evidence_line(p),
                    "count": p.get("count", 1),
                },
            },
        }

    async def send(self, payloads: Sequence[dict[str, Any]]) -> None:
        for i, p in enumerate(payloads):
            try:
                await self.post(self.url, orjson.dumps(self.render(p)))
            except TransportError as exc:
                exc.delivered, exc.attempted = i, 1
                raise


# -- Slack ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlackSinkConfig:
    type: Literal["slack"] = "slack"
    name: str = field(default="slack", metadata={"check": check_sink_name})
    webhook_url: SecretRef | None = None  # the URL is the secret: {env: NAME} or {file: PATH}
    http: HttpOptions = field(default_factory=HttpOptions)
    route: RouteConfig = field(default_factory=RouteConfig)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)

    def __post_init__(self) -> None:
        if self.webhook_url is None:
            raise ValueError("webhook_url is required: {env: NAME} or {file: PATH}")


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SlackTransport(HttpTransport):
    """One message per alert: severity, rule, wiki, why, redacted evidence and the diff link.
    No page title, no user name: a channel is a public place."""

    batch_max_alerts = 20
    request_per_alert = True

    def __init__(self, *, webhook_url: Secret, **http: Any) -> None:
        super().__init__(**http)
        self._url = webhook_url
        problem = check_http_url(webhook_url.reveal())
        if problem:
            raise ValueError(f"slack webhook_url ({webhook_url.where}): {problem}")

    def describe(self) -> str:
        return f"slack {safe_target(self._url.reveal())}"

    def render(self, p: dict[str, Any]) -> dict[str, Any]:
        link = p.get("diff_url") or p.get("page_url")
        text = f"*{_slack_escape(_headline(p))}* ({p['category']}): " + _slack_escape(
            str(p.get("reason", ""))
        )
        evidence = _evidence_line(p)
        if evidence:
            text += f"\n{_slack_escape(evidence)}"
        if link:
            text += f"\n<{link}|diff>"
        text += f" · id `{payload_delivery_id(p)}`"
        return {"text": text, "unfurl_links": False, "unfurl_media": False}

    async def send(self, payloads: Sequence[dict[str, Any]]) -> None:
        for i, p in enumerate(payloads):
            try:
                await self.post(self._url.reveal(), orjson.dumps(self.render(p)))
            except TransportError as exc:
                exc.delivered, exc.attempted = i, 1
                raise


# -- generic signed webhook ---------------------------------------------------------------------


def sign(key: bytes, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256 over ``<timestamp>.<body>``.

    A receiver recomputes it with the shared key, compares in constant time, and rejects
    a timestamp older than a few minutes (replay protection)."""
    mac = hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


@dataclass(frozen=True)
class WebhookSinkConfig:
    type: Literal["webhook"] = "webhook"
    name: str = field(default="webhook", metadata={"check": check_sink_name})
    url: str | None = field(
        default=None, metadata={"check": _url_check("url_secret: {env: NAME} (the whole URL)")}
    )
    url_secret: SecretRef | None = None  # instead of url, when the URL carries a token
    hmac_key: SecretRef | None = None  # required: {env: NAME} or {file: PATH}
    private: bool = False
    full_evidence: bool = False
    http: HttpOptions = field(default_factory=HttpOptions)
    route: RouteConfig = field(default_factory=RouteConfig)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)

    def __post_init__(self) -> None:
        if (self.url is None) == (self.url_secret is None):
            raise ValueError("give exactly one of url and url_secret")
        if self.hmac_key is None:
            raise ValueError("hmac_key is required: {env: NAME} or {file: PATH}")
        if self.full_evidence and not self.private:
            raise ValueError("full_evidence needs the sink marked private: true")


class WebhookTransport(HttpTransport):
    """``POST {"alerts": [...]}`` with headers ``X-Rcwatch-Timestamp`` (unix seconds),
    ``X-Rcwatch-Signature`` (see ``sign``) and ``X-Rcwatch-Delivery`` (stable for the same
    alerts, so a receiver can drop a retried request it already processed)."""

    batch_max_alerts = 100

    def __init__(self, url: Secret, *, hmac_key: Secret, **http: Any) -> None:
        super().__init__(**http)
        self._url = url
        self._key = hmac_key
        problem = check_http_url(url.reveal())
        if problem:
            raise ValueError(f"webhook url ({url.where}): {problem}")

    def describe(self) -> str:
        return f"webhook {safe_target(self._url.reveal())}"

    async def send(self, payloads: Sequence[dict[str, Any]]) -> None:
        async def post_group(group: list[dict[str, Any]]) -> None:
            body = orjson.dumps({"alerts": group})
            ids = "\n".join(payload_delivery_id(p) for p in group)
            timestamp = str(int(time.time()))
            headers = {
                "X-Rcwatch-Timestamp": timestamp,
                "X-Rcwatch-Signature": sign(self._key.reveal().encode(), timestamp, body),
                "X-Rcwatch-Delivery": hashlib.blake2b(ids.encode(), digest_size=16).hexdigest(),
            }
            await self.post(self._url.reveal(), body, headers)

        await self.send_groups(payloads, lambda p: p, post_group)
