"""The ``scaleout:`` settings section (no Kafka client imported here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["ScaleOutConfig"]


@dataclass(frozen=True)
class ScaleOutConfig:
    # comma-separated host:port of the Kafka-protocol brokers
    bootstrap_servers: str = "127.0.0.1:9092"
    # raw events, keyed by page so that one page's edits stay in order on one partition
    events_topic: str = "rcwatch-events"
    events_partitions: int = field(default=8, metadata={"min": 1})
    # how long the broker keeps raw events: long enough to rebuild a worker from scratch
    events_retention_hours: int = field(default=168, metadata={"min": 1})
    replication_factor: int = field(default=1, metadata={"min": 1})
    # producer batching (the Tansu test broker needs 1-record batches: tests set it)
    producer_max_batch_bytes: int = field(default=16384, metadata={"min": 1})
    producer_linger_ms: int = field(default=5, metadata={"min": 0})
    # how long a produce may wait for the broker before the batch is sent again
    produce_timeout_seconds: float = field(default=30.0, metadata={"min": 1.0})
    # the largest record produced (keep it under the broker's message.max.bytes); an event's
    # fetched text that would not fit is replaced by a "too_large" miss
    max_record_bytes: int = field(default=1_000_000, metadata={"min": 10_000})
    # events with their fetched text, from the fetch workers to the detect stage; it has
    # the events topic's partitions (partition p carries partition p's events, in order)
    enriched_topic: str = "rcwatch-enriched"
    # while events flow, the ingest tells every partition this often how far the stream
    # has got (a tick), so the detect stage need not wait on a partition with no events
    tick_interval_seconds: float = field(default=1.0, metadata={"gt": 0})
    # the detect stage holds an event until every partition has caught up with it; past
    # this wait (a dead worker's partitions not yet taken over) or this many held events,
    # it goes on out of order (rcwatch_merge_events_total{how="forced"})
    merge_max_wait_seconds: float = field(default=60.0, metadata={"gt": 0})
    merge_max_buffered_events: int = field(default=100_000, metadata={"min": 100})
    # every ingest of one stream joins this group; the one holding its lease is active, the
    # others stand by (on any host) and take over when it dies (one group per stream)
    ingest_group: str = "rcwatch-ingest"
    # the lease's one-partition topic, which also carries the active ingest's resume
    # position for a standby on another host
    ingest_positions_topic: str = "rcwatch-ingest-positions"
    # every detect stage of one stream joins this group; the one holding its lease is active,
    # the others stand by and take over from the checkpoint the active one copies to the
    # broker (one group per stream)
    detect_group: str = "rcwatch-detect"
    detect_checkpoints_topic: str = "rcwatch-detect-checkpoints"
    # how often the active detect stage copies its checkpoint to the broker: a standby
    # processes again (and delivers again, same delivery ids) up to this much of events
    detect_publish_interval_seconds: float = field(default=10.0, metadata={"gt": 0})
    detect_checkpoints_retention_hours: int = field(default=2, metadata={"min": 1})
    # where the pattern windows live: "detect" (all in the one detect stage, which merges
    # the partitions back into stream order) or "partitioned" (the page memory in the fetch
    # workers, per events partition; the group windows in window stages, per partition of
    # the observations topic, repartitioned by group key; both with changelog topics, so a
    # dead process's state moves with its partitions). The same alerts either way.
    windows: Literal["detect", "partitioned"] = "detect"
    window_partitions: int = field(default=8, metadata={"min": 1})
    observations_topic: str = "rcwatch-observations"  # worker -> window stage, by group key
    fired_topic: str = "rcwatch-fired"  # window stage -> detect: the pattern findings
    pages_changelog_topic: str = "rcwatch-pages-changelog"  # page memory, per events partition
    windows_changelog_topic: str = "rcwatch-windows-changelog"  # group windows
    windows_group: str = "rcwatch-windows"  # the window stages' consumer group
    # the fetch workers' consumer group
    worker_group: str = "rcwatch-fetch"
    worker_batch_events: int = field(default=500, metadata={"min": 1})
    # a worker that misses heartbeats this long loses its partitions to the others
    session_timeout_seconds: float = field(default=30.0, metadata={"min": 2.0})
    heartbeat_interval_seconds: float = field(default=3.0, metadata={"min": 0.1})
