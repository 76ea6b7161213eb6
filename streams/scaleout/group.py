"""What the stages that share a topic's partitions in a consumer group (fetch workers,
window stages) have in common: how they join the group, and the counters every such stage
reports under its own prefix (``rcwatch_worker_*``, ``rcwatch_windows_*``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from streams.scaleout.config import ScaleOutConfig

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer

__all__ = ["GroupCounters", "commit_held", "group_consumer"]

log = logging.getLogger(__name__)


def group_consumer(cfg: ScaleOutConfig, group_id: str) -> AIOKafkaConsumer:
    """A consumer in ``group_id`` (not started): offsets committed by hand, only after the
    broker acknowledged what was produced for them; a member that misses heartbeats for
    ``session_timeout_seconds`` loses its partitions to the others."""
    from aiokafka import AIOKafkaConsumer  # ~11 MB: only when a stage runs

    return AIOKafkaConsumer(
        bootstrap_servers=cfg.bootstrap_servers,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=int(cfg.session_timeout_seconds * 1000),
        heartbeat_interval_ms=int(cfg.heartbeat_interval_seconds * 1000),
        max_poll_interval_ms=int(max(cfg.session_timeout_seconds, 300) * 1000),
    )


class GroupCounters:
    """``prefix``: the metric names' (rcwatch_worker); ``member``: what one process is
    called in the help texts (worker); ``topic``: what it reads (the events topic);
    ``state``: what it restores from its changelog (page memory)."""

    def __init__(
        self, registry: CollectorRegistry, prefix: str, member: str, topic: str, state: str
    ) -> None:
        r = registry
        self.rebalances = Counter(
            f"{prefix}_rebalances", f"Partition assignments this {member} received", registry=r
        )
        self.assigned = Gauge(
            f"{prefix}_assigned_partitions", f"Partitions this {member} holds", registry=r
        )
        self.lag = Gauge(
            f"{prefix}_lag_records",
            f"Records not yet read, per partition of the {topic}",
            ["partition"],
            registry=r,
        )
        self.commit_failures = Counter(
            f"{prefix}_commit_failures",
            "Batches whose offsets a rebalance kept from being committed (re-read elsewhere)",
            registry=r,
        )
        self.produce_failures = Counter(
            f"{prefix}_produce_failures",
            "Produces that failed on the broker and were sent again",
            registry=r,
        )
        self.dropped = Counter(
            f"{prefix}_records_dropped",
            "Records the broker refused for good (logged with their key)",
            registry=r,
        )
        self.restore_seconds = Gauge(
            f"{prefix}_restore_seconds",
            f"How long the last restore of a partition's {state} from its changelog took "
            "(partitioned windows)",
            registry=r,
        )
        self.restored = Counter(
            f"{prefix}_restored_records",
            f"Changelog records read back into {state} on taking partitions (partitioned windows)",
            registry=r,
        )


async def commit_held(
    consumer: AIOKafkaConsumer, offsets: Mapping[Any, int], counters: GroupCounters, what: str
) -> dict[Any, int] | None:
    """Commit the offsets of the partitions still held (a rebalance during the batch moved
    the others, whose new owner reads them again) and set their lag; None, counted and
    logged, when a rebalance kept them from being committed. ``what``: what the records
    are, for the log line."""
    from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

    held = consumer.assignment()
    commits = {tp: off for tp, off in offsets.items() if tp in held}
    try:
        if commits:
            await consumer.commit(commits)
    except (CommitFailedError, IllegalStateError, KafkaError) as exc:
        counters.commit_failures.inc()
        log.warning(
            f"offsets not committed (a rebalance moved the partitions); the new owner reads "
            f"those {what} again",
            extra={"fields": {"error": type(exc).__name__}},
        )
        return None
    for tp, committed in commits.items():
        end = consumer.highwater(tp)
        if end is not None:
            counters.lag.labels(str(tp.partition)).set(max(0, end - committed))
    return commits
