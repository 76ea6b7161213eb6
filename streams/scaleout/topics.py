"""Create the scale-out topics with explicit configs, before anything produces to them.

An aiokafka producer that learned about one topic at start-up and then first sends to a
topic created later asks for metadata on the new topic alone; the first topic's partitions
lose their leader and their batches are never sent (``flush()`` hangs: 3 stalls in 11
two-worker starts in the prototype, reproduced with plain aiokafka). Every process calls
``ensure_topics`` first and waits until each topic has a leader for every partition.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from streams.scaleout.config import ScaleOutConfig

__all__ = ["TopicSpec", "ensure_topics", "topic_specs"]


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int = 1
    config: Mapping[str, str] = field(default_factory=dict)


def topic_specs(cfg: ScaleOutConfig) -> list[TopicSpec]:
    """Every topic the scale-out uses, with its configs."""
    retention = {
        "cleanup.policy": "delete",
        "retention.ms": str(cfg.events_retention_hours * 3_600_000),
    }
    checkpoints_ms = cfg.detect_checkpoints_retention_hours * 3_600_000
    partitioned = []
    if cfg.windows == "partitioned":
        r, q = cfg.replication_factor, cfg.window_partitions
        compact = {"cleanup.policy": "compact"}  # the newest value of each key is the state
        partitioned = [
            TopicSpec(cfg.observations_topic, q, r, retention),
            TopicSpec(cfg.fired_topic, q, r, retention),
            TopicSpec(cfg.pages_changelog_topic, cfg.events_partitions, r, compact),
            TopicSpec(cfg.windows_changelog_topic, q, r, compact),
        ]
    return [
        TopicSpec(cfg.events_topic, cfg.events_partitions, cfg.replication_factor, retention),
        TopicSpec(cfg.enriched_topic, cfg.events_partitions, cfg.replication_factor, retention),
        # the ingest lease and positions: the newest position per stream is what counts
        TopicSpec(
            cfg.ingest_positions_topic, 1, cfg.replication_factor, {"cleanup.policy": "compact"}
        ),
        # the detect lease and checkpoint copies: only the newest complete one counts
        TopicSpec(
            cfg.detect_checkpoints_topic,
            1,
            cfg.replication_factor,
            {"cleanup.policy": "delete", "retention.ms": str(checkpoints_ms)},
        ),
        *partitioned,
    ]


async def ensure_topics(
    bootstrap_servers: str, specs: Sequence[TopicSpec], timeout_seconds: float = 30.0
) -> list[str]:
    """Create the topics that do not exist yet (returns their names), then wait until every
    partition of every topic has a leader. A topic that exists with another number of
    partitions than asked is an error (its keys would map to other partitions than the
    workers expect, and the detect stage merges exactly ``events_partitions``)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # ~11 MB: only when used

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [
            NewTopic(s.name, s.partitions, s.replication_factor, topic_configs=dict(s.config))
            for s in specs
            if s.name not in existing
        ]
        if new:
            response = await admin.create_topics(new)
            errors = [
                f"{t[0]}: {t[2] or t[1]}"
                for t in getattr(response, "topic_errors", [])
                if t[1] not in (0, 36)  # 36: TOPIC_ALREADY_EXISTS (another process won)
            ]
            if errors:
                raise RuntimeError(f"cannot create topics: {'; '.join(errors)}")
        deadline = time.monotonic() + timeout_seconds
        while True:
            described = await admin.describe_topics([s.name for s in specs])
            counts = {d["topic"]: len(d["partitions"]) for d in described if d["error_code"] == 0}
            over = [s for s in specs if counts.get(s.name, 0) > s.partitions]
            if over:
                names = ", ".join(f"{s.name} ({counts[s.name]} > {s.partitions})" for s in over)
                raise RuntimeError(
                    f"topics exist with more partitions than configured: {names} (the detect "
                    "stage merges partition p of the enriched topic, which carries partition p "
                    "of the events topic: set events_partitions to match, or use new topics)"
                )
            ready = {
                d["topic"]: sum(1 for p in d["partitions"] if p["leader"] >= 0)
                for d in described
                if d["error_code"] == 0
            }
            short = [s for s in specs if ready.get(s.name, 0) < s.partitions]
            if not short:
                break
            if any(0 < ready.get(s.name, 0) < s.partitions for s in short) and not new:
                names = ", ".join(f"{s.name} ({ready.get(s.name)} < {s.partitions})" for s in short)
                raise RuntimeError(f"topics exist with fewer partitions than configured: {names}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"topics have no leader yet: {[s.name for s in short]}")
            await asyncio.sleep(0.2)
        return [t.name for t in new]
    finally:
        await admin.close()
