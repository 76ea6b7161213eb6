"""Kafka transport (aiokafka): the alerts topic, keyed by alert id.

Keying by alert id puts every update of one alert in one partition, in order, and lets a
compacted topic keep the newest version of each alert. Each record carries the delivery id
in a ``delivery_id`` header: Kafka producers retry, and without the idempotent producer
(which some brokers, Tansu among them, do not support) a lost acknowledgement can write a
record twice; consumers that must see each alert once drop repeated delivery ids.

``acks=all`` by default: an alert counts as delivered only when the in-sync replicas have
it. The producer connects lazily, so rcwatch starts (and spools) while the broker is down.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import orjson

from sinks.alert import payload_delivery_id
from sinks.delivery import DeliveryConfig, Transport, TransportError
from sinks.routing import RouteConfig, check_sink_name
from sinks.secrets import Secret, SecretRef
from sinks.webhooks import tls_context

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer

# aiokafka (~11 MB of imports) is loaded when a Kafka sink first connects, not with the
# settings

__all__ = ["KafkaSinkConfig", "KafkaTransport"]


@dataclass(frozen=True)
class KafkaSinkConfig:
    type: Literal["kafka"] = "kafka"
    name: str = field(default="kafka", metadata={"check": check_sink_name})
    bootstrap_servers: str = "127.0.0.1:9092"  # comma-separated host:port
    topic: str = "rcwatch-alerts"
    acks: Literal["all", "1"] = "all"
    # the idempotent producer removes broker-side repeats; off by default because not
    # every Kafka-protocol broker supports it (Tansu does not)
    idempotent: bool = False
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    sasl_username: str | None = None
    sasl_password: SecretRef | None = None
    # extra CA for SSL (verification is always on)
    ca_file: str | None = field(default=None, metadata={"path": True})
    max_batch_bytes: int = field(default=16384, metadata={"min": 1})
    private: bool = False
    full_evidence: bool = False
    route: RouteConfig = field(default_factory=RouteConfig)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)

    def __post_init__(self) -> None:
        if self.full_evidence and not self.private:
            raise ValueError("full_evidence needs the sink marked private: true")
        if self.idempotent and self.acks != "all":
            raise ValueError("idempotent: true needs acks: all")
        if self.security_protocol.startswith("SASL") and not (
            self.sasl_username and self.sasl_password
        ):
            raise ValueError("SASL needs sasl_username and sasl_password: {env: NAME}")


def _record(p: dict[str, Any]) -> dict[str, Any]:
    delivery_id = payload_delivery_id(p)
    return {
        "value": orjson.dumps(p),
        "key": str(p["id"]).encode(),
        "headers": [
            ("delivery_id", delivery_id.encode()),
            ("severity", str(p["severity"]).encode()),
            ("category", str(p["category"]).encode()),
        ],
    }


class KafkaTransport(Transport):
    batch_max_alerts = 500

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        *,
        acks: str = "all",
        idempotent: bool = False,
        security_protocol: str = "PLAINTEXT",
        sasl_mechanism: str = "PLAIN",
        sasl_username: str | None = None,
        sasl_password: Secret | None = None,
        ca_file: str | None = None,
        max_batch_bytes: int = 16384,
        timeout_seconds: float = 10.0,
        client_id: str = "rcwatch",
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self._acks: int | str = "all" if acks == "all" else int(acks)
        self._idempotent = idempotent
        self._security_protocol = security_protocol
        self._sasl_mechanism = sasl_mechanism
        self._sasl_username = sasl_username
        self._sasl_password = sasl_password
        self._ca_file = ca_file
        self._max_batch_bytes = max_batch_bytes
        self._timeout_ms = int(timeout_seconds * 1000)
        self._client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._tls = tls_context(ca_file) if "SSL" in security_protocol else None

    def describe(self) -> str:
        return f"kafka {self.bootstrap_servers} topic {self.topic}"

    def _new_producer(self) -> AIOKafkaProducer:
        from aiokafka import AIOKafkaProducer

        kwargs: dict[str, Any] = {}
        if "SSL" in self._security_protocol:
            kwargs["ssl_context"] = self._tls
        if self._security_protocol.startswith("SASL"):
            assert self._sasl_password is not None
            kwargs.update(
                sasl_mechanism=self._sasl_mechanism,
                sasl_plain_username=self._sasl_username,
                sasl_plain_password=self._sasl_password.reveal(),
            )
        return AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            client_id=self._client_id,
            acks=self._acks,
            enable_idempotence=self._idempotent,
            max_batch_size=self._max_batch_bytes,
            request_timeout_ms=self._timeout_ms,
            security_protocol=self._security_protocol,
            **kwargs,
        )

    async def _connected(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = self._new_producer()
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def send(self, payloads: Sequence[dict[str, Any]]) -> None:
        """Queue every record, then wait for all acknowledgements. Reports the leading run
        the broker acknowledged as delivered; a record acknowledged after an earlier one
        failed is sent again on the retry (consumers drop repeated ``delivery_id``s; the
        idempotent producer, where the broker has it, avoids that)."""
        from aiokafka.errors import (
            KafkaError,
            MessageSizeTooLargeError,
            TopicAuthorizationFailedError,
        )

        try:
            producer = await self._connected()
        except (KafkaError, OSError) as exc:
            await self.reset()
            raise TransportError(f"kafka: {type(exc).__name__}", attempted=0) from exc
        futures = []
        refused: tuple[int, BaseException, bool] | None = None
        for i, p in enumerate(payloads):
            try:
                futures.append(await producer.send(self.topic, **_record(p)))
            except MessageSizeTooLargeError as exc:  # this record can never be sent
                refused = (i, exc, False)
                break
            except (KafkaError, OSError) as exc:
                refused = (i, exc, True)
                break
        # wait for all, so that no failure is left unobserved
        results = await asyncio.gather(*futures, return_exceptions=True)
        failed = next((i for i, r in enumerate(results) if isinstance(r, BaseException)), None)
        if failed is not None:
            cause = results[failed]
            assert isinstance(cause, BaseException)
            await self.reset()
            if isinstance(cause, TopicAuthorizationFailedError):
                message = "kafka: not authorised for the topic; fix the ACL"
            else:
                message = f"kafka: {type(cause).__name__}"
            raise TransportError(
                message, delivered=failed, attempted=len(futures) - failed
            ) from cause
        if refused is not None:
            i, cause, retryable = refused
            if retryable:
                await self.reset()
            raise TransportError(
                f"kafka: {type(cause).__name__}", retryable=retryable, delivered=i, attempted=1
            ) from cause

    async def reset(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            # stopping flushes; with the broker gone that could wait for request_timeout
            from aiokafka.errors import KafkaError

            with contextlib.suppress(KafkaError, OSError, TimeoutError):
                async with asyncio.timeout(5):
                    await producer.stop()

    async def close(self) -> None:
        await self.reset()
