"""The alert store: every alert rcwatch raises, indexed for on-call staff and rule
maintainers, with their verdicts.

An embedded SQLite file (``<state_dir>/alerts.db`` by default, 0600), or a PostgreSQL
database shared by a team (``store.postgres_dsn``, a secret reference: a DSN may carry a
password); the same schema and queries on both. One row per alert id
holding its newest record (count, severity and redacted evidence as in every non-private
sink), and one row per verdict (``true``, ``false`` or ``unsure``, with a note; the newest
verdict on an alert is the one that counts). Writing is idempotent: an update of an alert
replaces an older count, never a newer one, so a re-delivered batch changes nothing. Rows
older than the retention (by when they were stored) are removed as alerts arrive.

Precision per rule is ``true / (true + false)`` over the alerts with a verdict: what
``rcwatch rules list`` shows and ``rcwatch_alert_verdicts_total`` exports.

Which backend a target names is decided in one place, ``is_postgres``: a libpq DSN, as a
URL (``postgresql://``, ``postgres://``) or as ``key=value`` pairs (``host=... dbname=...``),
is PostgreSQL; anything else is a SQLite file. ``postgres_url`` checks a DSN and gives it in
the URL form (which every reader of a target knows by its ``://``); ``describe_store`` is
the one way a target is printed (a DSN without its secrets). A store that cannot be used (a
DSN that does not parse, a server that does not answer, a file that cannot be opened)
raises ``StoreError``: one line that names no secret.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import sqlite3
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import orjson
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from sinks.alert import Alert, printable
from sinks.base import Sink, SinkError
from sinks.secrets import SecretRef

__all__ = [
    "VERDICTS",
    "AlertStore",
    "StoreConfig",
    "StoreError",
    "StoreSink",
    "VerdictCollector",
    "describe_store",
    "is_postgres",
    "postgres_url",
]

VERDICTS = ("true", "false", "unsure")
_SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}

# the newest verdict on the alert of the current row of ``alerts`` (NULL: none yet)
_NEWEST_VERDICT = (
    "(SELECT verdict FROM verdicts v WHERE v.alert_id = alerts.id ORDER BY at DESC LIMIT 1)"
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY,
    rule TEXT NOT NULL,
    category TEXT NOT NULL,
    severity TEXT NOT NULL,
    severity_rank INTEGER NOT NULL,
    wiki TEXT,
    title TEXT,
    target TEXT,
    diff_url TEXT,
    reason TEXT,
    count INTEGER NOT NULL,
    event_time TEXT,
    stored_at DOUBLE PRECISION NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_rule ON alerts (rule, event_time);
CREATE INDEX IF NOT EXISTS alerts_time ON alerts (event_time);
CREATE INDEX IF NOT EXISTS alerts_stored ON alerts (stored_at);
CREATE TABLE IF NOT EXISTS verdicts (
    alert_id TEXT NOT NULL,
    verdict TEXT NOT NULL CHECK (verdict IN ('true', 'false', 'unsure')),
    note TEXT,
    verdict_by TEXT,
    at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS verdicts_alert ON verdicts (alert_id, at);
"""


# -- the backend, and DSNs -------------------------------------------------------------------


class StoreError(Exception):
    """The alert store cannot be used; the message is one line and names no secret."""


_URL_SCHEMES = ("postgresql://", "postgres://")
# libpq's connection keywords (PostgreSQL 18); a key=value DSN starts with one of them
_LIBPQ_KEYWORDS = frozenset({
    "application_name", "channel_binding", "client_encoding", "connect_timeout", "dbname",
    "fallback_application_name", "gssdelegation", "gssencmode", "gsslib", "host", "hostaddr",
    "keepalives", "keepalives_count", "keepalives_idle", "keepalives_interval", "krbsrvname",
    "load_balance_hosts", "max_protocol_version", "min_protocol_version", "oauth_client_id",
    "oauth_client_secret", "oauth_issuer", "oauth_scope", "options", "passfile", "password",
    "port", "replication", "require_auth", "requirepeer", "requiressl", "scram_client_key",
    "scram_server_key", "service", "ssl_max_protocol_version", "ssl_min_protocol_version",
    "sslcert", "sslcertmode", "sslcompression", "sslcrl", "sslcrldir", "sslkey",
    "sslkeylogfile", "sslmode", "sslnegotiation", "sslpassword", "sslrootcert", "sslsni",
    "target_session_attrs", "tcp_user_timeout", "user",
})  # fmt: skip
_SECRET_KEYWORDS = frozenset(
    {"password", "sslpassword", "oauth_client_secret", "scram_client_key", "scram_server_key"}
)
_FIRST_KEYWORD = re.compile(r"\s*([A-Za-z_]+)\s*=")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_HIDDEN = "***"
_OTHER_URL = re.compile(r"\s*([A-Za-z][A-Za-z0-9+.-]*)://")
_FORMS = "postgresql://USER:PASSWORD@HOST:PORT/DBNAME or host=HOST dbname=DBNAME password=..."


def is_postgres(target: str) -> bool:
    """Whether ``target`` names a PostgreSQL database (a libpq DSN in either form) rather
    than a SQLite file. The one place the backend is decided."""
    head = target.lstrip()
    if head[:16].lower().startswith(_URL_SCHEMES):
        return True
    first = _FIRST_KEYWORD.match(head)
    return first is not None and first.group(1) in _LIBPQ_KEYWORDS


@dataclass(frozen=True)
class _Dsn:
    url: str  # libpq's URL form: key=value pairs become query parameters
    shown: str  # for messages: every secret replaced by ***
    secrets: tuple[str, ...]  # the secret values, scrubbed from a driver's messages


def _problem(what: str) -> StoreError:
    return StoreError(f"not a PostgreSQL DSN libpq accepts ({what}); write it as {_FORMS}")


def _unknown_option(keyword: str) -> StoreError:
    """The option is never named (a stray word of a password may look like one); the
    known option it is closest to is."""
    close = difflib.get_close_matches(keyword.lower(), sorted(_LIBPQ_KEYWORDS), n=1)
    return _problem(f"an option libpq does not know{f'; {close[0]}?' if close else ''}")


def _check_ports(ports: str) -> None:
    for port in ports.split(","):
        if port and not (port.isdigit() and int(port) <= 65535):
            raise _problem("a port is not a number from 0 to 65535")


def _key_value_pairs(dsn: str) -> list[tuple[str, str]]:
    """libpq's ``keyword = value`` syntax: values single-quoted or bare, a backslash
    escapes the next character. Errors never quote the text (it may hold the password)."""
    pairs: list[tuple[str, str]] = []
    i, n = 0, len(dsn)
    while True:
        while i < n and dsn[i].isspace():
            i += 1
        if i == n:
            return pairs
        start = i
        while i < n and dsn[i] != "=" and not dsn[i].isspace():
            i += 1
        keyword = dsn[start:i]
        while i < n and dsn[i].isspace():
            i += 1
        if i == n or dsn[i] != "=" or not keyword:
            raise _problem(f"pair {len(pairs) + 1} has no '='")
        i += 1
        while i < n and dsn[i].isspace():
            i += 1
        value: list[str] = []
        quoted = i < n and dsn[i] == "'"
        i += quoted
        while i < n:
            c = dsn[i]
            if c == "\\" and i + 1 < n:
                value.append(dsn[i + 1])
                i += 2
                continue
            if (quoted and c == "'") or (not quoted and c.isspace()):
                break
            value.append(c)
            i += 1
        if quoted:
            if i == n:
                raise _problem(f"the value of {keyword} has no closing quote")
            i += 1
        pairs.append((keyword, "".join(value)))


def _libpq_check(url: str, keywords: Sequence[str]) -> None:
    """libpq's own parse, when psycopg is installed; its message can quote the text (a
    password), so only a keyword we parsed ourselves is ever named."""
    try:
        from psycopg import Error
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        return
    try:
        conninfo_to_dict(url)
    except Error as exc:
        named = re.search(r'(?:option|parameter:?) "([^"]*)"', str(exc))
        if named and named.group(1) in keywords:
            raise _unknown_option(named.group(1)) from None
        raise _problem("libpq cannot parse it") from None


def _parse_dsn(dsn: str) -> _Dsn:
    text = dsn.strip()
    if not is_postgres(text):
        raise StoreError(f"not a PostgreSQL DSN; write it as {_FORMS}")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise _problem("it contains control characters")
    if not text[:16].lower().startswith(_URL_SCHEMES):  # key=value pairs
        pairs = _key_value_pairs(text)
        for keyword, value in pairs:
            if keyword not in _LIBPQ_KEYWORDS:
                raise _unknown_option(keyword)
            if keyword == "port":
                _check_ports(value)
        url = "postgresql://?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in pairs)
        _libpq_check(url, [k for k, _ in pairs])
        shown = "postgresql://?" + "&".join(
            f"{k}={_HIDDEN if k in _SECRET_KEYWORDS else quote(v, safe='')}" for k, v in pairs
        )
        return _Dsn(url, shown, tuple(v for k, v in pairs if k in _SECRET_KEYWORDS and v))
    scheme, rest = text.split("://", 1)
    if _BAD_PERCENT.search(rest):
        raise _problem("a '%' not followed by two hex digits: write a '%' in it as %25")
    rest, question, query = rest.partition("?")
    authority, slash, dbname = rest.partition("/")
    userinfo, at, hosts = authority.rpartition("@")
    user, colon, password = userinfo.partition(":")
    for host in hosts.split(","):
        if host.startswith("["):
            _, bracket, after = host.partition("]")
            if not bracket or (after and not after.startswith(":")):
                raise _problem("an IPv6 host without its closing ']'")
            _check_ports(after[1:])
        elif ":" in host:
            _check_ports(host.rsplit(":", 1)[1])
    params: list[tuple[str, str]] = []
    for param in query.split("&") if query else ():
        key, equals, value = param.partition("=")
        if not equals:
            raise _problem(f"query parameter {len(params) + 1} has no '='")
        params.append((unquote(key), value))
        if unquote(key) == "port":
            _check_ports(unquote(value))
    _libpq_check(text, [k for k, _ in params])
    secrets = [unquote(password)] if password else []
    secrets += [unquote(v) for k, v in params if k in _SECRET_KEYWORDS and v]
    shown_user = f"{user}{':' + _HIDDEN if colon else ''}{at}"
    shown_query = "&".join(f"{k}={_HIDDEN if k in _SECRET_KEYWORDS else v}" for k, v in params)
    shown = f"{scheme}://{shown_user}{hosts}{slash}{dbname}{question}{shown_query}"
    return _Dsn(text, shown, tuple(secrets))


def postgres_url(dsn: str) -> str:
    """``dsn`` (a libpq URL or ``key=value`` pairs) in libpq's URL form; ``StoreError``
    when it is neither, or libpq cannot parse it (the message never holds the DSN)."""
    return _parse_dsn(dsn).url


def describe_store(target: str | Path) -> str:
    """``target`` fit to print: a SQLite file's path, or a DSN with every secret in it
    (password, sslpassword, ...) replaced by ``***``."""
    target = str(target)
    if not is_postgres(target):
        other = _OTHER_URL.match(target)
        return f"an unsupported {other.group(1)}:// URL" if other else target
    try:
        return _parse_dsn(target).shown
    except StoreError:
        return "PostgreSQL (a DSN that does not parse)"


def _driver_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the database's or the file system's failure (not a bug here)."""
    if isinstance(exc, (sqlite3.Error, OSError)):
        return True
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(exc, psycopg.Error)


def _one_line(exc: BaseException, secrets: Sequence[str]) -> str:
    """A driver's error as one line: its type and first line, any secret scrubbed."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, _HIDDEN)
    return f"{type(exc).__name__}: {printable(text, 300)}" if text else type(exc).__name__


@dataclass(frozen=True)
class StoreConfig:
    enabled: bool = True
    # null: <state_dir>/alerts.db
    path: str | None = field(default=None, metadata={"path": True})
    # a PostgreSQL database instead of the file, e.g. {env: RCWATCH_STORE_DSN} holding
    # "postgresql://rcwatch:...@db.example.org/rcwatch" or "host=db.example.org
    # dbname=rcwatch user=rcwatch password=..."; needs pip install 'rcwatch[postgres]'
    postgres_dsn: SecretRef | None = None
    retention_days: int = field(default=90, metadata={"min": 1})


class AlertStore:
    """``target``: a SQLite file path, or a PostgreSQL DSN (``is_postgres``). Raises
    ``StoreError`` when the store cannot be opened, and from any query that fails."""

    def __init__(self, target: str | Path, retention_days: int = 90) -> None:
        self.target = str(target)
        self.postgres = is_postgres(self.target)
        self._where = describe_store(self.target)
        self._secrets: tuple[str, ...] = ()
        self.path = Path(self.target) if not self.postgres else Path("postgresql")
        self.retention_seconds = retention_days * 86_400
        self.db: Any
        if not self.postgres and _OTHER_URL.match(self.target):  # never a file named so
            raise StoreError(
                f"the alert store is a SQLite file or a PostgreSQL DSN, not {self._where}"
            )
        if self.postgres:
            dsn = _parse_dsn(self.target)
            self._secrets = dsn.secrets
            try:
                import psycopg  # only when a PostgreSQL store is configured
            except ImportError:
                raise StoreError(
                    f"the alert store {self._where} needs psycopg: pip install 'rcwatch[postgres]'"
                ) from None
            with self._errors("cannot open"):
                self.db = psycopg.connect(dsn.url, autocommit=True, connect_timeout=10)
        else:
            with self._errors("cannot open"):
                self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                # create the file 0600, but never open a descriptor on one that exists:
                # closing it would drop every POSIX lock this process holds on the file, the
                # locks of its other connections (the monitor's sink, the triage page)
                # included; another process would then take the database for unused,
                # checkpoint and delete the WAL, and this process's later writes would go to
                # a deleted file, unseen
                with contextlib.suppress(FileExistsError):
                    os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
                self.db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA busy_timeout=10000")
        try:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._run(statement)
        except BaseException:
            self.db.close()
            raise
        self._last_prune = 0.0

    @contextlib.contextmanager
    def _errors(self, doing: str = "cannot use") -> Iterator[None]:
        """The driver's and the file system's failures as one ``StoreError`` line."""
        try:
            yield
        except StoreError:
            raise
        except Exception as exc:
            if not _driver_error(exc):
                raise
            raise StoreError(
                f"{doing} the alert store {self._where}: {_one_line(exc, self._secrets)}"
            ) from None

    def where(self) -> str:
        """Where the store is, for messages (never a DSN's password)."""
        return self._where

    def close(self) -> None:
        self.db.close()

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.postgres else sql

    def _run(self, sql: str, args: Sequence[Any] = ()) -> int:
        """A statement that returns no rows; how many rows it changed."""
        with self._errors():
            cursor = self.db.execute(self._sql(sql), args)
            try:
                return int(cursor.rowcount)
            finally:
                cursor.close()

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        """Every row of a query, read to the end and the cursor closed: a statement left
        half-read would hold SQLite's read transaction open, and with it every later
        write of this connection uncommitted (invisible to every other process)."""
        with self._errors():
            cursor = self.db.execute(self._sql(sql), args)
            try:
                return list(cursor.fetchall())
            finally:
                cursor.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._errors():
            if self.postgres:
                with self.db.transaction():
                    yield
                return
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    # -- writing ---------------------------------------------------------------------------

    def add(self, records: Iterable[dict[str, Any]], now: float | None = None) -> None:
        now = time.time() if now is None else now
        rows = [
            (
                str(r["id"]), str(r["rule"]), str(r["category"]), str(r["severity"]),
                _SEVERITY_RANK.get(str(r["severity"]), 0), r.get("wiki"), r.get("title"),
                r.get("target"), r.get("diff_url"), r.get("reason"), int(r.get("count") or 1),
                r.get("event_time"), now, orjson.dumps(r).decode(),
            )
            for r in records
        ]  # fmt: skip
        with self._transaction():
            self.db.cursor().executemany(
                self._sql("""INSERT INTO alerts VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)
                   ON CONFLICT(id) DO UPDATE SET
                     severity = excluded.severity, severity_rank = excluded.severity_rank,
                     count = excluded.count, reason = excluded.reason,
                     event_time = excluded.event_time,
                     record = excluded.record, stored_at = excluded.stored_at
                   WHERE excluded.count > alerts.count"""),
                rows,
            )
        if now - self._last_prune > 3600:
            self.prune(now)

    def prune(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        self._last_prune = now
        cutoff = now - self.retention_seconds
        with self._transaction():
            gone = self._run("DELETE FROM alerts WHERE stored_at < ?", (cutoff,))
            self._run("DELETE FROM verdicts WHERE alert_id NOT IN (SELECT id FROM alerts)")
        return int(gone)

    def verdict(self, alert: str, verdict: str, note: str | None, by: str | None) -> str:
        """Record a verdict on an alert (its id, or a unique prefix of it); returns the id."""
        if verdict not in VERDICTS:
            raise ValueError(f"a verdict is one of {', '.join(VERDICTS)}")
        found = self.get(alert)
        if found is None:
            raise KeyError(alert)
        self._run(
            "INSERT INTO verdicts VALUES (?,?,?,?,?)",
            (found["id"], verdict, note, by, time.time()),
        )
        return str(found["id"])

    # -- reading ---------------------------------------------------------------------------

    def get(self, alert: str) -> dict[str, Any] | None:
        """The alert with this id or unique id prefix (at least 6 characters), with its
        verdicts, newest first."""
        if len(alert) < 6 or not all(c in "0123456789abcdef" for c in alert):
            return None
        rows = self._rows("SELECT record FROM alerts WHERE id LIKE ? LIMIT 2", (alert + "%",))
        if len(rows) != 1:
            return None
        record: dict[str, Any] = orjson.loads(rows[0][0])
        record["verdicts"] = [
            {"verdict": v, "note": n, "by": b, "at": at}
            for v, n, b, at in self._rows(
                "SELECT verdict, note, verdict_by, at FROM verdicts WHERE alert_id = ? "
                "ORDER BY at DESC",
                (record["id"],),
            )
        ]
        return record

    def query(
        self,
        *,
        rules: Sequence[str] = (),
        categories: Sequence[str] = (),
        min_severity: str | None = None,
        wikis: Sequence[str] = (),
        since: str | None = None,
        stored_after: float | None = None,
        verdict: str | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """Newest first (by event time); with ``stored_after``, the alerts stored (or
        updated) after that time, oldest first, each with its ``stored_at``. ``verdict``:
        only alerts whose newest verdict is this one, or ``"none"`` for those without."""
        where: list[str] = []
        args: list[Any] = []
        if verdict == "none":
            where.append(f"{_NEWEST_VERDICT} IS NULL")
        elif verdict is not None:
            if verdict not in VERDICTS:
                raise ValueError(f"a verdict is one of {', '.join(VERDICTS)} or none")
            where.append(f"{_NEWEST_VERDICT} = ?")
            args.append(verdict)
        for column, values in (("rule", rules), ("category", categories), ("wiki", wikis)):
            if values:
                where.append(f"{column} IN ({','.join('?' * len(values))})")
                args += list(values)
        if min_severity is not None:
            where.append("severity_rank >= ?")
            args.append(_SEVERITY_RANK[min_severity])
        if since is not None:
            where.append("event_time >= ?")
            args.append(since)
        if stored_after is not None:
            where.append("stored_at > ?")
            args.append(stored_after)
        sql = f"SELECT record, {_NEWEST_VERDICT}, stored_at FROM alerts"
        if where:
            sql += " WHERE " + " AND ".join(where)
        order = "stored_at, id" if stored_after is not None else "event_time DESC, id"
        sql += f" ORDER BY {order} LIMIT ?"
        out = []
        for record, newest, stored_at in self._rows(sql, [*args, limit]):
            r: dict[str, Any] = orjson.loads(record)
            r["verdict"] = newest
            r["stored_at"] = stored_at
            out.append(r)
        return out

    def rule_stats(self) -> dict[str, dict[str, int]]:
        """rule -> {"alerts", "true", "false", "unsure"} (each alert's newest verdict)."""
        stats: dict[str, dict[str, int]] = {}
        for rule, n in self._rows("SELECT rule, COUNT(*) FROM alerts GROUP BY rule"):
            stats[rule] = {"alerts": n, "true": 0, "false": 0, "unsure": 0}
        for rule, verdict, n in self._rows(
            """SELECT a.rule, v.verdict, COUNT(*) FROM alerts a JOIN verdicts v
               ON v.alert_id = a.id AND v.at = (SELECT MAX(at) FROM verdicts w
                                                WHERE w.alert_id = a.id)
               GROUP BY a.rule, v.verdict"""
        ):
            stats.setdefault(rule, {"alerts": 0, "true": 0, "false": 0, "unsure": 0})[verdict] = n
        return stats

    def hits_by_day(self, days: int) -> tuple[list[str], dict[str, list[int]]]:
        """Alerts per rule per day (by event time) over the ``days`` days that end on the
        newest alert's day: (the days, rule -> a count per day)."""
        row = self._rows("SELECT MAX(event_time) FROM alerts")[0]
        if not row[0]:
            return [], {}
        try:
            last = datetime.strptime(str(row[0])[:10], "%Y-%m-%d").date()
        except ValueError:
            return [], {}
        dates = [(last - timedelta(days=days - 1 - i)).isoformat() for i in range(days)]
        slot = {d: i for i, d in enumerate(dates)}
        hits: dict[str, list[int]] = {}
        for rule, day, n in self._rows(
            "SELECT rule, substr(event_time, 1, 10), COUNT(*) FROM alerts "
            "WHERE event_time >= ? GROUP BY rule, substr(event_time, 1, 10)",
            (dates[0],),
        ):
            if day in slot:
                hits.setdefault(rule, [0] * days)[slot[day]] = n
        return dates, hits

    def judged(
        self, *, rules: Sequence[str] = (), categories: Sequence[str] = ()
    ) -> list[tuple[dict[str, Any], str]]:
        """Every alert whose newest verdict is true or false, with that verdict, oldest
        first: what ``alerts export-labels`` turns into training rows."""
        where = [f"{_NEWEST_VERDICT} IN ('true', 'false')"]
        args: list[Any] = []
        for column, values in (("rule", rules), ("category", categories)):
            if values:
                where.append(f"{column} IN ({','.join('?' * len(values))})")
                args += list(values)
        sql = f"SELECT record, {_NEWEST_VERDICT} FROM alerts WHERE {' AND '.join(where)}"
        return [
            (orjson.loads(record), str(verdict))
            for record, verdict in self._rows(sql + " ORDER BY event_time, id", args)
        ]


def precision(stats: dict[str, int]) -> float | None:
    judged = stats.get("true", 0) + stats.get("false", 0)
    return stats.get("true", 0) / judged if judged else None


class StoreSink(Sink):
    """Indexes every alert it is given in the store (redacted, as every non-private sink)."""

    kind = "store"

    def __init__(self, name: str, target: str | Path, retention_days: int) -> None:
        super().__init__(name)
        self.target = str(target)
        self.retention_days = retention_days
        self.store: AlertStore | None = None

    @property
    def path(self) -> str:
        return describe_store(self.target)

    async def start(self) -> None:
        try:
            self.store = AlertStore(self.target, self.retention_days)
        except StoreError as exc:  # the database or the file system, said in one line
            raise SinkError(str(exc), retryable=False) from None
        except Exception as exc:
            raise SinkError(
                f"cannot open the alert store {self.path}: {type(exc).__name__}", retryable=False
            ) from exc

    async def send(self, alerts: Sequence[Alert]) -> None:
        if self.store is None:
            raise SinkError(f"{self.path} is not open", retryable=False)
        try:
            self.store.add(a.to_dict() for a in alerts)
        except StoreError as exc:  # retried by the runner, which holds the checkpoint
            raise SinkError(str(exc)) from None
        except Exception as exc:
            raise SinkError(
                f"cannot write the alert store {self.path}: {type(exc).__name__}"
            ) from exc

    async def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None


class VerdictCollector(Collector):
    """``rcwatch_alert_verdicts_total{rule, verdict}``, read from the store at each scrape
    (verdicts are given by ``rcwatch alerts verdict``, another process)."""

    def __init__(self, target: str | Path) -> None:
        self.target = str(target)

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "rcwatch_alert_verdicts",
            "Alerts by their newest verdict (true, false, unsure), per rule",
            labels=["rule", "verdict"],
        )
        if is_postgres(self.target) or Path(self.target).exists():
            store = None
            try:
                store = AlertStore(self.target)
                for rule, stats in sorted(store.rule_stats().items()):
                    for verdict in VERDICTS:
                        family.add_metric([rule, verdict], stats[verdict])
            except Exception:
                pass
            finally:
                if store is not None:
                    store.close()
        yield family
