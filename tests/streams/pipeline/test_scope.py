from __future__ import annotations

import orjson
import pytest

from detectors.event import decode_event
from streams.pipeline.scope import ScopeConfig


def _change(**fields: object):  # type: ignore[no-untyped-def]
    base = {
        "meta": {"dt": "2026-05-05T11:17:40Z"},
        "wiki": "enwiki",
        "type": "edit",
        "namespace": 0,
        "user": "Someone",
        "bot": False,
    }
    return decode_event(orjson.dumps({**base, **fields}))


@pytest.mark.parametrize(
    ("config", "fields", "accepted"),
    [
        (ScopeConfig(), {}, True),
        (ScopeConfig(), {"bot": True, "user": "SomeBot"}, True),
        (ScopeConfig(include_bots=False), {"bot": True, "user": "SomeBot"}, False),
        (ScopeConfig(include_bots=True), {"bot": True, "user": "SomeBot"}, True),
        (ScopeConfig(wikis=("de*",)), {}, False),
        (ScopeConfig(wikis=("*wiki",), exclude_wikis=("en*",)), {}, False),
        (ScopeConfig(wikis=("*wiki",), exclude_wikis=("en*",)), {"wiki": "dewiki"}, True),
        (ScopeConfig(namespaces=(2, 3)), {}, False),
        (ScopeConfig(namespaces=(2, 3)), {"namespace": 3}, True),
        (ScopeConfig(types=("log",)), {}, False),
        (ScopeConfig(performer_kinds=("ip", "temporary")), {}, False),
        (ScopeConfig(performer_kinds=("ip", "temporary")), {"user": "198.51.100.2"}, True),
    ],
)
def test_scope(config: ScopeConfig, fields: dict[str, object], accepted: bool) -> None:
    assert config.build().accepts(_change(**fields)) is accepted
