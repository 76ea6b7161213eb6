"""Settings: the typed form of ``config/rcwatch.yaml``; every CLI option has a key here.

Each component's section is that component's own config type (``stream`` is
``EventStreamsConfig``, ``scope`` is ``ScopeConfig``, ...). Errors name the file, the line
and the key, all at once.

Paths: a relative path written in a settings file is relative to that file's directory
(wherever rcwatch is started from); a path given on the command line, and a default, is
relative to the working directory. Without ``detectors.rules_paths`` the rule packs that
ship with rcwatch are used.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from detectors.classifier import shipped_model_dirs
from detectors.confload import ConfigError, ConfigIssue, NodeLoader, compose_file
from detectors.shipped import shipped_config_dir
from sinks.factory import RemoteSinkConfig
from sinks.routing import RouteConfig, check_sink_name
from sinks.secrets import SecretError, SecretRef
from sinks.store import StoreConfig, StoreError, postgres_url
from streams.fetch.content import ContentConfig
from streams.pipeline.detection import StormGuardConfig
from streams.pipeline.scope import ScopeConfig
from streams.pipeline.throttle import ThrottleConfig
from streams.scaleout.config import ScaleOutConfig
from streams.source.eventstreams import EventStreamsConfig, user_agent_problem

__all__ = [
    "ArchiveConfig",
    "DetectorsConfig",
    "JsonlSinkConfig",
    "LoggingConfig",
    "MetricsConfig",
    "PatternsConfig",
    "PipelineConfig",
    "Settings",
    "SinkConfig",
    "StdoutSinkConfig",
    "default_config_path",
    "load_settings",
    "parse_host_port",
    "shipped_config_dir",
]


def parse_host_port(value: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT``; raises ValueError."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if int(port) > 65535:
        raise ValueError(f"port out of range in {value!r}")
    return host, int(port)


def _check_addr(value: str) -> str | None:
    try:
        parse_host_port(value)
    except ValueError as exc:
        return str(exc)
    return None


@dataclass(frozen=True)
class ArchiveConfig:
    """Raw-event archive: rotated NDJSON.gz files of every consumed event."""

    enabled: bool = True
    dir: str | None = field(default=None, metadata={"path": True})  # <state_dir>/archive
    rotate_bytes: int = field(default=64 << 20, metadata={"min": 1024})
    rotate_seconds: float = field(default=3600.0, metadata={"gt": 0})
    keep_files: int | None = field(default=None, metadata={"min": 1})


@dataclass(frozen=True)
class JsonlSinkConfig:
    type: Literal["jsonl"] = "jsonl"
    name: str = field(default="alerts-jsonl", metadata={"check": check_sink_name})
    path: str | None = field(default=None, metadata={"path": True})  # <state_dir>/alerts.jsonl
    route: RouteConfig = field(default_factory=RouteConfig)


@dataclass(frozen=True)
class StdoutSinkConfig:
    type: Literal["stdout"] = "stdout"
    name: str = field(default="stdout", metadata={"check": check_sink_name})
    format: Literal["text", "json"] = "text"
    route: RouteConfig = field(default_factory=RouteConfig)


# local sinks, then the remote ones (each with a spool, retries and dead letters)
SinkConfig = JsonlSinkConfig | StdoutSinkConfig | RemoteSinkConfig


@dataclass(frozen=True)
class MetricsConfig:
    enabled: bool = True
    addr: str = field(default="127.0.0.1:9410", metadata={"check": _check_addr})


_HEADER_NAME = re.compile(r"[A-Za-z0-9-]{1,64}")


def _check_header(value: str | None) -> str | None:
    if value is not None and _HEADER_NAME.fullmatch(value) is None:
        return "must be an HTTP header name (letters, digits, -)"
    return None


def _check_origin(value: str | None) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        return "must be an origin such as https://triage.example.org (no path)"
    if parts.query or parts.fragment or "@" in parts.netloc:
        return "must be an origin such as https://triage.example.org (no path)"
    return None


@dataclass(frozen=True)
class TriageConfig:
    """The triage page (``docs/triage.md``): off unless enabled; every request
    authenticated by the token, or by a header an authenticating reverse proxy sets."""

    enabled: bool = False
    addr: str = field(default="127.0.0.1:9411", metadata={"check": _check_addr})
    # a secret reference ({env: NAME} or {file: PATH}) holding the sign-in token
    token: SecretRef | None = None
    # e.g. X-Forwarded-User: the proxy in front authenticates people and names them in it;
    # only safe when nothing but the proxy can reach addr (keep it on 127.0.0.1)
    trusted_proxy_header: str | None = field(default=None, metadata={"check": _check_header})
    # e.g. X-Forwarded-For or X-Real-IP: the proxy in front names the client's address in
    # it (its last value, the one the proxy added), and wrong tokens are counted per
    # client by it instead of per connecting address (the proxy's, shared by everyone);
    # only safe when nothing but the proxy can reach addr
    trusted_proxy_client_header: str | None = field(default=None, metadata={"check": _check_header})
    # where people reach the page through a reverse proxy, e.g. https://triage.example.org:
    # its host is accepted in Host (besides the address served), posts must come from it,
    # and the cookie is Secure when it is https
    public_origin: str | None = field(default=None, metadata={"check": _check_origin})
    session_hours: float = field(default=12.0, metadata={"gt": 0})
    page_alerts: int = field(default=100, metadata={"min": 1, "max": 1000})
    chart_days: int = field(default=14, metadata={"min": 2, "max": 90})


@dataclass(frozen=True)
class PipelineConfig:
    batch_max_events: int = field(default=512, metadata={"min": 1})
    queue_max_batches: int = field(default=64, metadata={"min": 1})
    checkpoint_interval_seconds: float = field(default=1.0, metadata={"gt": 0})
    # events allowed between reading and the ordered stage (mostly: waiting for content)
    reorder_max_events: int = field(default=20_000, metadata={"min": 1})
    shutdown_timeout_seconds: float = field(default=30.0, metadata={"gt": 0})
    dedup_event_ids: int = field(default=50_000, metadata={"min": 100})
    # events with this much text (or more) are evaluated in a worker thread, off the loop
    detect_in_thread_min_chars: int = field(default=16_384, metadata={"min": 1024})


SHIPPED_RULES = str(shipped_config_dir() / "rules")


_MODEL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _check_model_dirs(dirs: dict[str, str]) -> str | None:
    bad = [
        f"{name}: {path}" for name, path in dirs.items() if not Path(path, "model.json").is_file()
    ]
    if bad:
        return f"no model.json in {', '.join(bad)}"
    bad_names = [n for n in dirs if not _MODEL_NAME.fullmatch(n)]
    return f"model names are letters, digits, '-' and '_' (got {bad_names})" if bad_names else None


def _check_rule_paths(paths: tuple[str, ...]) -> str | None:
    if not paths:
        return "needs at least one rule file or directory"
    missing = [p for p in paths if not Path(p).exists()]
    return f"no such file or directory: {', '.join(missing)}" if missing else None


@dataclass(frozen=True)
class DetectorsConfig:
    """Rule packs and how they are run."""

    # files or directories of rule files (relative: to the settings file's directory);
    # default: the rule packs that ship with rcwatch
    rules_paths: tuple[str, ...] = field(
        default=(SHIPPED_RULES,), metadata={"path": True, "check": _check_rule_paths}
    )
    # how often to look for changed rule files (SIGHUP reloads at once); 0: only on SIGHUP
    reload_check_seconds: float = field(default=2.0, metadata={"min": 0})
    # every Nth event is also evaluated rule by rule to measure each rule's cost; 0: never
    profile_every_events: int = field(default=1000, metadata={"min": 0})
    storm_guard: StormGuardConfig = field(default_factory=StormGuardConfig)
    # text classifiers rules name (``classifier: toxicity``): name -> model directory
    # (relative: to the settings file's directory), added to the models that ship with
    # rcwatch; a shipped model's name replaces that model (one trained on your labels)
    classifiers: dict[str, str] = field(
        default_factory=dict, metadata={"path": True, "check": _check_model_dirs}
    )

    def model_dirs(self) -> dict[str, Path]:
        """Every classifier rules may name: the shipped models, then the configured ones."""
        return {**shipped_model_dirs(), **{k: Path(v) for k, v in self.classifiers.items()}}


@dataclass(frozen=True)
class PatternsConfig:
    """Memory for pattern rules (windows, page memory), snapshotted with the checkpoint."""

    max_keys: int = field(default=100_000, metadata={"min": 100})
    page_memory_seconds: float = field(default=86_400.0, metadata={"gt": 0})
    pii_memory_seconds: float = field(default=604_800.0, metadata={"gt": 0})


@dataclass(frozen=True)
class LoggingConfig:
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"


@dataclass(frozen=True)
class ReplayConfig:
    speed: str = "max"


def _default_sinks() -> tuple[SinkConfig, ...]:
    return (JsonlSinkConfig(), StdoutSinkConfig())


@dataclass(frozen=True)
class Settings:
    stream: EventStreamsConfig = field(default_factory=EventStreamsConfig)
    state_dir: str = field(default="state", metadata={"path": True})
    scope: ScopeConfig = field(default_factory=ScopeConfig)
    detectors: DetectorsConfig = field(default_factory=DetectorsConfig)
    content: ContentConfig = field(default_factory=ContentConfig)
    patterns: PatternsConfig = field(default_factory=PatternsConfig)
    throttle: ThrottleConfig = field(default_factory=ThrottleConfig)
    sinks: tuple[SinkConfig, ...] = field(default_factory=_default_sinks)
    archive: ArchiveConfig = field(default_factory=ArchiveConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    scaleout: ScaleOutConfig = field(default_factory=ScaleOutConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    triage: TriageConfig = field(default_factory=TriageConfig)

    def __post_init__(self) -> None:
        names = [s.name for s in self.sinks]
        dups = sorted({n for n in names if names.count(n) > 1})
        if dups:
            raise ValueError(f"sink names must be unique; used twice: {', '.join(dups)}")

    @property
    def archive_dir(self) -> Path | None:
        if not self.archive.enabled:
            return None
        return Path(self.archive.dir) if self.archive.dir else Path(self.state_dir) / "archive"

    @property
    def rules_paths(self) -> list[Path]:
        return [Path(p) for p in self.detectors.rules_paths]

    def store_target(self) -> str | None:
        """The alert store: its file, or its PostgreSQL DSN in libpq's URL form (the secret
        resolved and checked: raises SecretError, naming no secret, when it cannot be read
        or is not a DSN libpq accepts); None when the store is off."""
        if not self.store.enabled:
            return None
        if self.store.postgres_dsn is not None:
            dsn = self.store.postgres_dsn.resolve()
            try:
                return postgres_url(dsn.reveal())
            except StoreError as exc:
                raise SecretError(f"{dsn.where}: {exc}") from None
        return str(Path(self.store.path) if self.store.path else Path(self.state_dir) / "alerts.db")

    def jsonl_path(self, sink: JsonlSinkConfig) -> Path:
        return Path(sink.path) if sink.path else Path(self.state_dir) / "alerts.jsonl"


def default_config_path() -> Path | None:
    """``$RCWATCH_CONFIG``, else ``config/rcwatch.yaml`` in the working directory or beside
    the installed packages (an editable install from the repository)."""
    env = os.environ.get("RCWATCH_CONFIG")
    if env:
        return Path(env)
    for candidate in (
        Path.cwd() / "config" / "rcwatch.yaml",
        shipped_config_dir() / "rcwatch.yaml",
    ):
        if candidate.is_file():
            return candidate
    return None


def load_settings(path: str | Path | None) -> Settings:
    """Settings from a YAML file (None: built-in defaults). Raises ConfigError."""
    if path is None:
        return Settings()
    node, issues = compose_file(path)
    if issues:
        raise ConfigError(issues)
    if node is None:  # an empty file
        return Settings()
    loader = NodeLoader(str(path), base_dir=Path(path).resolve().parent)
    settings = loader.build(Settings, node)
    if loader.issues:
        raise ConfigError(loader.issues)
    assert isinstance(settings, Settings)
    return settings


def validate_for_run(settings: Settings, source: str = "settings") -> None:
    """Checks that only matter when connecting to a live stream."""
    issues = []
    problem = user_agent_problem(settings.stream.url, settings.stream.user_agent)
    if problem:
        issues.append(ConfigIssue(source, None, "stream.user_agent", problem))
    if issues:
        raise ConfigError(issues)
