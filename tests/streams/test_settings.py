"""Settings files: the shipped default, and errors reported with file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.confload import ConfigError
from streams.settings import Settings, load_settings, validate_for_run

REPO = Path(__file__).resolve().parents[2]


def test_shipped_settings_match_the_built_in_defaults() -> None:
    """config/rcwatch.yaml documents the defaults; it must not drift from the code."""
    assert load_settings(REPO / "config" / "rcwatch.yaml") == Settings()


def _load(tmp_path: Path, text: str) -> Settings:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return load_settings(path)


def test_every_error_is_reported_at_once_with_lines(tmp_path: Path) -> None:
    text = """\
stream:
  url: http://127.0.0.1:1/v2/stream/recentchange
  stall_timout_seconds: 5
  connect_timeout_seconds: -1
scope:
  namespaces: [0, "talk"]
sinks:
  - type: jsonl
    path: a.jsonl
  - type: pager
metrics:
  addr: localhost
"""
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, text)
    messages = [str(i) for i in err.value.issues]
    assert len(messages) == 5, messages
    joined = "\n".join(messages)
    assert "s.yaml:3: stream.stall_timout_seconds: unknown key (did you mean " in joined
    assert "s.yaml:4: stream.connect_timeout_seconds: must be greater than 0" in joined
    assert "s.yaml:6: scope.namespaces[1]: expected integer" in joined
    assert "s.yaml:10: sinks[1].type: unknown type 'pager'" in joined
    assert "s.yaml:12: metrics.addr: expected HOST:PORT" in joined


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, "stream:\n  url: [unclosed\n")
    assert str(err.value).startswith(f"{tmp_path / 's.yaml'}:")
    assert "YAML syntax error" in str(err.value)


def test_duplicate_keys_and_sink_names(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, "state_dir: a\nstate_dir: b\n")
    assert "duplicate key" in str(err.value)
    with pytest.raises(ConfigError, match=r"used twice: x"):
        _load(tmp_path, "sinks:\n  - {type: stdout, name: x}\n  - {type: jsonl, name: x}\n")


def test_values_are_typed(tmp_path: Path) -> None:
    s = _load(tmp_path, "scope:\n  namespaces: [2, 3]\n  include_bots: true\nstate_dir: /tmp/x\n")
    assert s.scope.namespaces == (2, 3) and s.scope.include_bots
    assert s.archive_dir == Path("/tmp/x/archive")
    assert _load(tmp_path, "") == Settings()


def test_live_url_needs_a_real_user_agent() -> None:
    with pytest.raises(ConfigError, match=r"stream\.user_agent"):
        validate_for_run(Settings())
