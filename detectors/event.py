"""The decoded recent change: one immutable, typed event flows through every stage.

Decoding is orjson into a ``RecentChange`` (a NamedTuple: immutable and about five times
cheaper to build than a frozen dataclass, which matters at replay speed). Every optional
field may be absent (live events lack ``user``, ``id``, ``revision``, ``length``...), and the
whole decoded object is kept in ``raw`` so unknown fields survive.

Besides ``mediawiki.recentchange``, the other public EventStreams streams that describe one
page change (revision-create, page-create, page-delete, page-move) are mapped onto the same
model, so that several streams can be joined in one connection.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple

import orjson

__all__ = [
    "MalformedEvent",
    "PerformerKind",
    "RawEvent",
    "RecentChange",
    "decode_event",
    "decode_object",
    "performer_kind",
]


class MalformedEvent(ValueError):
    """The bytes are not a usable event. ``reason`` is short and never holds event content."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RawEvent(NamedTuple):
    """An event as a source delivers it, before decoding."""

    sse_id: str | None  # the stream position after this event (SSE ``id``), if any
    data: bytes  # the event JSON exactly as received
    recv_ns: int  # wall-clock receive time, ns since the epoch
    # the fetched text, when a record carries it (an enriched archive line):
    # {"status", "added", "removed", "reason"}
    content: dict[str, Any] | None = None
    # the rules' answer worked out upstream (a scale-out fetch worker): (the digest of the
    # rules that answered, findings, what ran out of budget, fingerprints); used only when
    # the digest is that of the rules in force here
    evaluated: tuple[str, Any, tuple[str, ...], Any] | None = None
    # the pattern findings partitioned windows fired on this event (a scale-out detect
    # stage with ``windows: partitioned``), in the order of the event's candidates; None:
    # this process keeps the pattern windows itself
    patterns: tuple[Any, ...] | None = None


class PerformerKind(StrEnum):
    REGISTERED = "registered"
    IP = "ip"
    TEMPORARY = "temporary"
    BOT = "bot"
    UNKNOWN = "unknown"  # the user name was removed from the event


# Temporary accounts: "~2026-12345-67" (year, serial, check digits); older wikis used
# "~2025-1234". The recentchange schema has no flag for them.
_TEMP_ACCOUNT = re.compile(r"~\d{4}-\d+(?:-\d+)?\Z")


def _is_ip(name: str) -> bool:
    if not (name[:1].isdigit() or ":" in name):
        return False
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def performer_kind(user: str | None, bot: bool) -> PerformerKind:
    if user is None or user == "":
        return PerformerKind.UNKNOWN
    if _is_ip(user):
        return PerformerKind.IP
    if user[0] == "~" and _TEMP_ACCOUNT.match(user):
        return PerformerKind.TEMPORARY
    if bot:
        return PerformerKind.BOT
    return PerformerKind.REGISTERED


class RecentChange(NamedTuple):
    """One change. Field names follow the recentchange schema where they exist."""

    meta_id: str | None
    dt: str | None
    stream: str | None
    domain: str | None
    topic: str | None
    partition: int | None
    offset: int | None
    type: str | None
    namespace: int | None
    title: str | None
    comment: str
    timestamp: int | None
    user: str | None
    bot: bool
    server_url: str | None
    server_name: str | None
    server_script_path: str | None
    wiki: str | None
    rc_id: int | None
    rev_old: int | None
    rev_new: int | None
    len_old: int | None
    len_new: int | None
    log_id: int | None
    log_type: str | None
    log_action: str | None
    performer_kind: PerformerKind
    raw: Mapping[str, Any]

    # -- derived -----------------------------------------------------------------------

    @property
    def is_canary(self) -> bool:
        return self.domain == "canary"

    @property
    def event_time(self) -> float | None:
        """Event time as seconds since the epoch: ``meta.dt``, else ``timestamp``."""
        if self.dt is not None:
            try:
                return datetime.fromisoformat(self.dt).timestamp()
            except ValueError:
                pass
        return float(self.timestamp) if self.timestamp is not None else None

    @property
    def size_delta(self) -> int | None:
        if self.len_new is None:
            return None
        return self.len_new - (self.len_old or 0)

    @property
    def log_params(self) -> Any:
        return self.raw.get("log_params")

    @property
    def extra(self) -> Mapping[str, Any]:
        """Fields this model does not name (kept verbatim)."""
        return {k: v for k, v in self.raw.items() if k not in _KNOWN_TOP_LEVEL}


_KNOWN_TOP_LEVEL = frozenset(
    {
        "$schema",
        "meta",
        "id",
        "type",
        "namespace",
        "title",
        "title_url",
        "comment",
        "parsedcomment",
        "timestamp",
        "user",
        "bot",
        "notify_url",
        "server_url",
        "server_name",
        "server_script_path",
        "wiki",
        "minor",
        "patrolled",
        "length",
        "revision",
        "log_id",
        "log_type",
        "log_action",
        "log_params",
        "log_action_comment",
    }
)


# -- field readers: absent or null is fine, a wrong type is malformed ----------------------


def _s(d: Mapping[str, Any], key: str) -> str | None:
    v = d.get(key)
    if v is None or type(v) is str:
        return v
    raise MalformedEvent(f"field {key!r} is not a string")


def _i(d: Mapping[str, Any], key: str) -> int | None:
    v = d.get(key)
    if v is None or type(v) is int:
        return v
    raise MalformedEvent(f"field {key!r} is not an integer")


def _obj(d: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    v = d.get(key)
    if v is None:
        return _EMPTY
    if type(v) is dict:
        return v
    raise MalformedEvent(f"field {key!r} is not an object")


_EMPTY: Mapping[str, Any] = {}


def decode_event(data: bytes | str) -> RecentChange:
    """Decode one event's JSON. Raises ``MalformedEvent`` (never anything else)."""
    try:
        d = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise MalformedEvent("not valid JSON") from None
    return decode_object(d)


# the expected type of each field read from a recentchange event (absent or null is fine)
_TOP_TYPES: dict[str, type] = {
    "user": str, "title": str, "comment": str, "type": str, "server_url": str,
    "server_name": str, "server_script_path": str, "wiki": str, "log_type": str,
    "log_action": str, "dt": str, "namespace": int, "timestamp": int, "id": int,
    "log_id": int, "revision": dict, "length": dict,
}  # fmt: skip
_META_TYPES: dict[str, type] = {
    "id": str, "dt": str, "stream": str, "domain": str, "topic": str, "partition": int,
    "offset": int,
}  # fmt: skip
_TYPE_WORD = {str: "a string", int: "an integer", dict: "an object"}


def _check(d: dict[str, Any], types: dict[str, type]) -> None:
    """One pass over the object: every known field is absent, null or of its type."""
    for key, value in d.items():
        want = types.get(key)
        if want is not None and value is not None and type(value) is not want:
            raise MalformedEvent(f"field {key!r} is not {_TYPE_WORD[want]}")


def decode_object(d: Any) -> RecentChange:
    if type(d) is not dict:
        raise MalformedEvent("not a JSON object")
    meta = d.get("meta")
    if type(meta) is not dict:
        raise MalformedEvent("no meta object")
    if "wiki" not in d and "database" in d:
        return _decode_page_stream(d, meta)
    get, mget = d.get, meta.get
    # every field read, checked in bulk (most events are well formed); the first wrong one
    # is named by the slow path
    strs = (
        get("user"), get("title"), get("comment"), get("type"), get("server_url"),
        get("server_name"), get("server_script_path"), get("wiki"), get("log_type"),
        get("log_action"), get("dt"), mget("id"), mget("dt"), mget("stream"),
        mget("domain"), mget("topic"),
    )  # fmt: skip
    ints = (
        get("namespace"), get("timestamp"), get("id"), get("log_id"), mget("partition"),
        mget("offset"),
    )  # fmt: skip
    rev, length = get("revision"), get("length")
    if (
        not _STR_TYPES.issuperset(map(type, strs))
        or not _INT_TYPES.issuperset(map(type, ints))
        or not _DICT_TYPES.issuperset((type(rev), type(length)))
    ):
        _check(d, _TOP_TYPES)
        _check(meta, _META_TYPES)
    rev = rev or _EMPTY
    length = length or _EMPTY
    nums = (rev.get("old"), rev.get("new"), length.get("old"), length.get("new"))
    if not _INT_TYPES.issuperset(map(type, nums)):
        for name, part in (("revision", rev), ("length", length)):
            for key in ("old", "new"):
                v = part.get(key)
                if v is not None and type(v) is not int:
                    raise MalformedEvent(f"field {name}.{key} is not an integer")
    user, title, comment, ctype, server_url, server_name, script, wiki = strs[:8]
    bot = get("bot") is True
    return RecentChange(
        strs[11],
        strs[12] or strs[10],
        strs[13],
        strs[14],
        strs[15],
        ints[4],
        ints[5],
        ctype,
        ints[0],
        title,
        comment or "",
        ints[1],
        user,
        bot,
        server_url,
        server_name,
        script,
        wiki,
        ints[2],
        nums[0],
        nums[1],
        nums[2],
        nums[3],
        ints[3],
        strs[8],
        strs[9],
        performer_kind(user, bot),
        d,
    )


_NONE = type(None)
_STR_TYPES = frozenset({str, _NONE})
_INT_TYPES = frozenset({int, _NONE})
_DICT_TYPES = frozenset({dict, _NONE})


# mediawiki.page-create / revision-create / page-delete / page-move carry the page and the
# performer in a different envelope; map what we can onto the recentchange model.
_PAGE_STREAM_TYPES = {
    "mediawiki.revision-create": "edit",
    "mediawiki.page-create": "new",
    "mediawiki.page-delete": "log",
    "mediawiki.page-move": "log",
    "mediawiki.page-undelete": "log",
}
_PAGE_STREAM_LOG = {
    "mediawiki.page-delete": ("delete", "delete"),
    "mediawiki.page-move": ("move", "move"),
    "mediawiki.page-undelete": ("delete", "restore"),
}


def _decode_page_stream(d: dict[str, Any], meta: Mapping[str, Any]) -> RecentChange:
    stream = _s(meta, "stream")
    performer = _obj(d, "performer")
    user = _s(performer, "user_text")
    bot = performer.get("user_is_bot") is True
    domain = _s(meta, "domain")
    page_title = _s(d, "page_title")
    rev_old = _i(d, "rev_parent_id")
    change_type = _PAGE_STREAM_TYPES.get(stream or "", stream)
    if change_type == "edit" and not rev_old:
        change_type = "new"
    log_type, log_action = _PAGE_STREAM_LOG.get(stream or "", (None, None))
    return RecentChange(
        _s(meta, "id"),
        _s(meta, "dt"),
        stream,
        domain,
        _s(meta, "topic"),
        _i(meta, "partition"),
        _i(meta, "offset"),
        change_type,
        _i(d, "page_namespace"),
        page_title.replace("_", " ") if page_title is not None else None,
        _s(d, "comment") or "",
        None,
        user,
        bot,
        f"https://{domain}" if domain and domain != "canary" else None,
        domain,
        "/w",
        _s(d, "database"),
        None,
        rev_old,
        _i(d, "rev_id"),
        None,
        _i(d, "rev_len"),
        None,
        log_type,
        log_action,
        performer_kind(user, bot),
        d,
    )
