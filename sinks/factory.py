"""Builds a remote sink (transport + spool + dead letters) from its config type."""

from __future__ import annotations

from pathlib import Path

from sinks.delivery import SpooledSink, Transport, sink_state_dir
from sinks.kafka import KafkaSinkConfig, KafkaTransport
from sinks.metrics import Metrics
from sinks.redis_streams import RedisSinkConfig, RedisStreamsTransport
from sinks.secrets import Secret
from sinks.webhooks import (
    AlertmanagerSinkConfig,
    AlertmanagerTransport,
    PagerDutySinkConfig,
    PagerDutyTransport,
    SlackSinkConfig,
    SlackTransport,
    WebhookSinkConfig,
    WebhookTransport,
)

__all__ = ["REMOTE_SINK_CONFIGS", "RemoteSinkConfig", "build_remote_sink"]

RemoteSinkConfig = (
    RedisSinkConfig
    | KafkaSinkConfig
    | AlertmanagerSinkConfig
    | PagerDutySinkConfig
    | SlackSinkConfig
    | WebhookSinkConfig
)
REMOTE_SINK_CONFIGS = (
    RedisSinkConfig,
    KafkaSinkConfig,
    AlertmanagerSinkConfig,
    PagerDutySinkConfig,
    SlackSinkConfig,
    WebhookSinkConfig,
)


def build_transport(cfg: RemoteSinkConfig, *, user_agent: str) -> Transport:
    """Raises ``SecretError`` when a secret cannot be read, ``ValueError`` on a bad URL."""
    timeout = cfg.delivery.timeout_seconds
    if isinstance(cfg, RedisSinkConfig):
        return RedisStreamsTransport(
            cfg.url,
            cfg.stream,
            maxlen=cfg.maxlen,
            dedup_ttl_seconds=cfg.dedup_ttl_seconds,
            password=cfg.password.resolve() if cfg.password else None,
            timeout_seconds=timeout,
        )
    if isinstance(cfg, KafkaSinkConfig):
        return KafkaTransport(
            cfg.bootstrap_servers,
            cfg.topic,
            acks=cfg.acks,
            idempotent=cfg.idempotent,
            security_protocol=cfg.security_protocol,
            sasl_mechanism=cfg.sasl_mechanism,
            sasl_username=cfg.sasl_username,
            sasl_password=cfg.sasl_password.resolve() if cfg.sasl_password else None,
            ca_file=cfg.ca_file,
            max_batch_bytes=cfg.max_batch_bytes,
            timeout_seconds=timeout,
        )
    http = {
        "user_agent": user_agent,
        "timeout_seconds": min(timeout, cfg.http.timeout_seconds),
        "max_body_bytes": cfg.http.max_body_bytes,
        "ca_file": cfg.http.ca_file,
    }
    if isinstance(cfg, AlertmanagerSinkConfig):
        return AlertmanagerTransport(
            cfg.url,
            bearer_token=cfg.bearer_token.resolve() if cfg.bearer_token else None,
            resolve_after_seconds=cfg.resolve_after_seconds,
            **http,
        )
    if isinstance(cfg, PagerDutySinkConfig):
        assert cfg.routing_key is not None
        return PagerDutyTransport(cfg.url, routing_key=cfg.routing_key.resolve(), **http)
    if isinstance(cfg, SlackSinkConfig):
        assert cfg.webhook_url is not None
        return SlackTransport(webhook_url=cfg.webhook_url.resolve(), **http)
    assert cfg.hmac_key is not None
    url = cfg.url_secret.resolve() if cfg.url_secret else Secret(cfg.url or "", "url")
    return WebhookTransport(url, hmac_key=cfg.hmac_key.resolve(), **http)


def build_remote_sink(
    cfg: RemoteSinkConfig, *, state_dir: Path, user_agent: str, metrics: Metrics | None = None
) -> SpooledSink:
    full = bool(getattr(cfg, "private", False) and getattr(cfg, "full_evidence", False))
    sink = SpooledSink(
        cfg.name,
        build_transport(cfg, user_agent=user_agent),
        state_dir=sink_state_dir(state_dir, cfg.name),
        config=cfg.delivery,
        full_evidence=full,
        metrics=metrics,
    )
    sink.route = cfg.route
    return sink
