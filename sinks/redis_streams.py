"""Redis Streams transport: ``XADD`` with an approximate length cap, idempotent by alert id.

Each alert is added by one Lua script together with a marker key
``<stream>:delivered:<delivery id>`` (set with a TTL after the ``XADD`` succeeded): when
the marker exists the entry is not added again. A retry after a lost answer, a replayed
spool or a restart that reprocesses events therefore never puts the same alert on the
stream twice (within the marker's TTL, which should exceed any outage the spool covers).

Stream entry fields: ``id`` (alert id), ``delivery_id``, ``rule``, ``category``,
``severity``, ``wiki`` and ``alert`` (the JSON record). Consumers read with ``XREAD`` or a
consumer group (``XREADGROUP``) and route on the plain fields without parsing JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import orjson

from sinks.alert import payload_delivery_id
from sinks.delivery import DeliveryConfig, Transport, TransportError
from sinks.routing import RouteConfig, check_sink_name
from sinks.secrets import Secret, SecretRef, credentials_in_url

if TYPE_CHECKING:
    import redis.asyncio as aioredis

# the redis client (~16 MB of imports) is loaded when a Redis sink starts, not with the
# settings: most deployments never configure one

__all__ = ["RedisSinkConfig", "RedisStreamsTransport"]

_XADD_ONCE = """
local added = 0
for i = 1, #ARGV - 2, 8 do
  local marker = KEYS[1] .. ':delivered:' .. ARGV[i + 1]
  if redis.call('EXISTS', marker) == 0 then
    -- XADD first: if it fails (WRONGTYPE, OOM) no marker is left to hide a later retry
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[#ARGV - 1], '*',
      'id', ARGV[i], 'delivery_id', ARGV[i + 1], 'rule', ARGV[i + 2],
      'category', ARGV[i + 3], 'severity', ARGV[i + 4], 'wiki', ARGV[i + 5],
      'alert', ARGV[i + 6])
    redis.call('SET', marker, '1', 'EX', ARGV[#ARGV])
    added = added + 1
  end
end
return added
"""


def _check_url(url: str) -> str | None:
    return credentials_in_url(url, "password: {env: NAME}, not the url", user_allowed=True)


@dataclass(frozen=True)
class RedisSinkConfig:
    type: Literal["redis"] = "redis"
    name: str = field(default="redis", metadata={"check": check_sink_name})
    # redis://[user@]host:port/db or rediss:// for TLS; a password goes in `password`
    url: str = field(default="redis://127.0.0.1:6379/0", metadata={"check": _check_url})
    password: SecretRef | None = None
    stream: str = "rcwatch:alerts"
    maxlen: int = field(default=100_000, metadata={"min": 1})  # approximate (MAXLEN ~)
    dedup_ttl_seconds: int = field(default=7 * 86_400, metadata={"min": 60})
    private: bool = False
    full_evidence: bool = False
    route: RouteConfig = field(default_factory=RouteConfig)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)

    def __post_init__(self) -> None:
        scheme = urlsplit(self.url).scheme
        if scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"url must be redis://, rediss:// or unix://, not {scheme!r}")
        if self.full_evidence and not self.private:
            raise ValueError("full_evidence needs the sink marked private: true")


class RedisStreamsTransport(Transport):
    batch_max_alerts = 200

    def __init__(
        self,
        url: str,
        stream: str,
        *,
        maxlen: int = 100_000,
        dedup_ttl_seconds: int = 7 * 86_400,
        password: Secret | None = None,
        timeout_seconds: float = 10.0,
    ) -> None:
        self.url = url
        self.stream = stream
        self.maxlen = maxlen
        self.dedup_ttl = dedup_ttl_seconds
        self._password = password
        self._timeout = timeout_seconds
        self._client: aioredis.Redis | None = None
        self._sha: str | None = None

    def describe(self) -> str:
        parts = urlsplit(self.url)
        if parts.scheme == "unix":
            return f"redis unix:{parts.path} stream {self.stream}"
        return f"redis {parts.hostname}:{parts.port or 6379} stream {self.stream}"

    async def start(self) -> None:
        import redis.asyncio as aioredis

        self._client = aioredis.from_url(
            self.url,
            password=self._password.reveal() if self._password else None,
            socket_timeout=self._timeout,
            socket_connect_timeout=self._timeout,
            retry_on_timeout=False,
        )

    async def send(self, payloads: Sequence[dict[str, Any]]) -> None:
        from redis.exceptions import (
            AuthenticationError,
            NoScriptError,
            RedisError,
            ResponseError,
        )

        assert self._client is not None, "transport not started"
        args: list[Any] = []
        for p in payloads:
            args += [
                p["id"],
                payload_delivery_id(p),
                p["rule"],
                p["category"],
                p["severity"],
                p.get("wiki") or "",
                orjson.dumps(p),
                "",  # padding: 8 values per alert keeps the script's stride simple
            ]
        args += [self.maxlen, self.dedup_ttl]
        try:
            if self._sha is None:
                self._sha = await self._client.script_load(_XADD_ONCE)
            try:
                await self._client.evalsha(self._sha, 1, self.stream, *args)
            except NoScriptError:  # the server restarted and lost its script cache
                self._sha = await self._client.script_load(_XADD_ONCE)
                await self._client.evalsha(self._sha, 1, self.stream, *args)
        except AuthenticationError as exc:
            # a rotated password: spool and retry until an operator fixes the secret
            raise TransportError("redis authentication failed; fix the password") from exc
        except ResponseError as exc:
            # WRONGTYPE (the key is not a stream) will not heal by itself; OOM and
            # READONLY (a replica) may: retry those
            message = str(exc).split("\n")[0][:200]
            permanent = message.startswith("WRONGTYPE")
            raise TransportError(f"redis: {message}", retryable=not permanent) from exc
        except (RedisError, OSError) as exc:
            raise TransportError(f"redis unreachable: {type(exc).__name__}") from exc

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
