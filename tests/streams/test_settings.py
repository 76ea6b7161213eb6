"""Settings files: the shipped default, and errors reported with file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from detectors.confload import ConfigError
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


REMOTE_SINKS = """\
state_dir: {state}
sinks:
  - type: redis
    name: queue
    url: redis://127.0.0.1:6379/0
    stream: rcwatch:alerts
    maxlen: 5000
  - type: kafka
    name: kafka
    bootstrap_servers: 127.0.0.1:9092
    topic: alerts
  - type: alertmanager
    name: am
    url: http://127.0.0.1:9093
    route:
      min_severity: medium
  - type: pagerduty
    name: pager
    routing_key: {{env: RCWATCH_TEST_PD_KEY}}
    route:
      categories: [privacy]
      min_severity: critical
  - type: slack
    name: chat
    webhook_url: {{file: {slack_file}}}
    route:
      exclude_rules: ["harassment.*"]
  - type: webhook
    name: hook
    url: https://hooks.example.org/rcwatch
    hmac_key: {{env: RCWATCH_TEST_HMAC}}
    private: true
    full_evidence: true
    delivery:
      max_attempts: 3
      spool_max_bytes: 1048576
"""


def test_every_remote_sink_type_loads_and_builds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sinks.delivery import SpooledSink
    from streams.app import build_sinks

    slack_file = tmp_path / "slack-url"
    slack_file.write_text("https://hooks.slack.example/services/T/B/XYZ\n")
    monkeypatch.setenv("RCWATCH_TEST_PD_KEY", "pd-key-value")
    monkeypatch.setenv("RCWATCH_TEST_HMAC", "hmac-key-value")
    settings = _load(tmp_path, REMOTE_SINKS.format(state=tmp_path, slack_file=slack_file))
    assert [s.type for s in settings.sinks] == [
        "redis", "kafka", "alertmanager", "pagerduty", "slack", "webhook"
    ]  # fmt: skip
    sinks = build_sinks(settings, ledger_dir=None)
    assert all(isinstance(s, SpooledSink) for s in sinks)
    by_name = {s.name: s for s in sinks}
    assert by_name["pager"].route is not None
    assert by_name["pager"].route.min_severity == "critical"
    hook = by_name["hook"]
    assert isinstance(hook, SpooledSink) and hook.full_evidence and hook.config.max_attempts == 3
    assert not any(isinstance(s, SpooledSink) and s.full_evidence for s in sinks if s is not hook)
    # a secret's value is nowhere in the settings' or the sinks' printable forms
    printable = repr(settings) + "".join(repr(vars(s)) for s in sinks)
    printable += "".join(repr(vars(s.transport)) for s in sinks if isinstance(s, SpooledSink))
    for secret in ("pd-key-value", "hmac-key-value", "XYZ"):
        assert secret not in printable


@pytest.mark.parametrize(
    ("sink", "message"),
    [
        ("{type: pagerduty, routing_key: abc}", "expected a secret reference"),
        ("{type: pagerduty}", "routing_key is required"),
        ("{type: slack, webhook_url: {env: A, file: b}}", "exactly one of them"),
        ("{type: webhook, url: 'ftp://x.example/h', hmac_key: {env: K}}", "only http and https"),
        ("{type: webhook, url: 'https://x.example/h'}", "hmac_key is required"),
        (
            "{type: webhook, url: 'https://x.example', hmac_key: {env: K}, full_evidence: true}",
            "needs the sink marked private",
        ),
        ("{type: alertmanager, url: 'file:///etc/passwd'}", "only http and https"),
        ("{type: redis, url: 'redis://:hunter2@h:6379/0'}", "not the url"),
        ("{type: redis, route: {min_severity: urgent}}", "min_severity"),
        ("{type: kafka, delivery: {max_atempts: 3}}", "did you mean 'max_attempts'"),
        ("{type: kafka, acks: '1', idempotent: true}", "needs acks: all"),
        ("{type: alertmanager, url: 'http://am.example:99999'}", "port"),
        # credentials in a URL written in the file (issue 20, item 5), as for Redis
        ("{type: alertmanager, url: 'https://am:hunter2@am.example'}", "bearer_token: {env"),
        ("{type: alertmanager, url: 'https://hunter2@am.example'}", "carries a user name"),
        ("{type: alertmanager, url: 'https://am:@am.example'}", "carries a password"),
        (
            "{type: webhook, url: 'https://u:hunter2@x.example/h', hmac_key: {env: K}}",
            "url_secret: {env: NAME}",
        ),
        ("{type: pagerduty, url: 'https://k:hunter2@pd.example', routing_key: {env: K}}", "URL"),
        ("{type: redis, url: 'redis://user:hunter2@h:6379/0'}", "not the url"),
        ("{type: jsonl, name: ../escape}", "not starting with '.'"),
    ],
)
def test_bad_sink_settings_are_named(tmp_path: Path, sink: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, f"sinks:\n  - {sink}\n")
    assert message in str(err.value)
    assert "s.yaml:2" in str(err.value)
    assert "hunter2" not in str(err.value)


def test_unreadable_secret_is_a_usage_error_naming_where_not_what(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streams.app import UsageError, build_sinks

    monkeypatch.delenv("RCWATCH_TEST_NOPE", raising=False)
    settings = _load(
        tmp_path, "sinks:\n  - {type: pagerduty, routing_key: {env: RCWATCH_TEST_NOPE}}\n"
    )
    with pytest.raises(UsageError, match="RCWATCH_TEST_NOPE is not set"):
        build_sinks(settings, ledger_dir=None)
    missing = tmp_path / "nope"
    settings = _load(tmp_path, f"sinks:\n  - {{type: slack, webhook_url: {{file: {missing}}}}}\n")
    with pytest.raises(UsageError, match="cannot read secret file"):
        build_sinks(settings, ledger_dir=None)


def test_a_settings_file_anywhere_finds_the_shipped_rules(tmp_path: Path) -> None:
    """Defect: any --config outside config/ broke with "<dir>/rules: no such rule file"."""
    elsewhere = tmp_path / "x" / "rcwatch.yaml"
    elsewhere.parent.mkdir()
    elsewhere.write_text("content: {enabled: false}\n")
    assert load_settings(elsewhere).rules_paths == [REPO / "config" / "rules"]


def test_relative_paths_in_a_file_are_relative_to_that_file(tmp_path: Path) -> None:
    (tmp_path / "packs").mkdir()
    settings = _load(
        tmp_path,
        "state_dir: st\ndetectors: {rules_paths: [packs]}\n"
        "archive: {dir: ../arch}\nsinks: [{type: jsonl, path: out/a.jsonl}]\n",
    )
    assert settings.state_dir == str(tmp_path / "st")
    assert settings.rules_paths == [tmp_path / "packs"]
    assert settings.archive_dir == tmp_path / ".." / "arch"
    assert settings.jsonl_path(settings.sinks[0]) == tmp_path / "out" / "a.jsonl"  # type: ignore[arg-type]
    assert Settings().state_dir == "state", "a default stays relative to the working directory"


def test_a_missing_rules_path_is_named_with_file_line_and_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, "stream: {}\ndetectors:\n  rules_paths: [nowhere]\n")
    assert str(err.value) == (
        f"{tmp_path / 's.yaml'}:3: detectors.rules_paths: no such file or directory: "
        f"{tmp_path / 'nowhere'}"
    )


def test_classifiers_are_relative_to_the_file_and_checked(tmp_path: Path) -> None:
    own = tmp_path / "models" / "toxicity"
    own.mkdir(parents=True)
    (own / "model.json").write_text("{}")
    settings = _load(tmp_path, "detectors:\n  classifiers: {toxicity: models/toxicity}\n")
    dirs = settings.detectors.model_dirs()
    assert dirs["toxicity"] == own, "a model trained on your labels replaces the shipped one"
    assert Settings().detectors.model_dirs()["toxicity"] == REPO / "config/models/toxicity"
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, "detectors:\n  classifiers:\n    spam: nowhere\n")
    assert f"s.yaml:3: detectors.classifiers: no model.json in spam: {tmp_path / 'nowhere'}" in str(
        err.value
    )
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, "detectors:\n  classifiers: {'bad name': models/toxicity}\n")
    assert "model names are letters, digits" in str(err.value)


def test_credentials_in_a_target_url_are_refused_by_file_and_line_never_shown(
    tmp_path: Path,
) -> None:
    """Issue 20, item 5: an Alertmanager or webhook URL with credentials in it was accepted,
    and ``config show`` printed them. One check for every sink (Redis's too)."""
    from tests.streams.commands.test_cli import rcwatch

    config = tmp_path / "rcwatch.yaml"
    config.write_text(
        "sinks:\n"
        "  - type: alertmanager\n"
        "    name: am\n"
        "    url: https://oncall:hunter2@am.example.org\n"
        "  - type: webhook\n"
        "    url: https://hunter2@hooks.example.org/rcwatch\n"
        "    hmac_key: {env: K}\n"
        "  - {type: redis, url: 'redis://rcwatch@127.0.0.1:6379/0'}\n"  # a user alone is fine
    )
    out = rcwatch("config", "show", "--config", str(config))
    assert out.returncode == 2, out.stdout + out.stderr
    assert "hunter2" not in out.stdout + out.stderr
    assert f"{config}:4: sinks[0].url: the URL carries a password" in out.stderr
    assert f"{config}:6: sinks[1].url: the URL carries a user name" in out.stderr
    assert "sinks[2]" not in out.stderr
    assert out.stdout == ""


def test_a_secret_written_where_a_reference_belongs_is_never_shown(tmp_path: Path) -> None:
    """A DSN with its password, or a token, written in place of ``{env: NAME}`` was
    echoed by the loader's error ("expected a mapping, got str 'host=... password=...'")."""
    config = tmp_path / "rcwatch.yaml"
    config.write_text(
        "store:\n"
        "  postgres_dsn: 'host=db dbname=rc user=rc password=hunter2'\n"
        "triage:\n"
        "  token: [hunter3]\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    text = str(caught.value)
    assert "hunter2" not in text and "hunter3" not in text
    assert f"{config}:2: store.postgres_dsn: expected a secret reference" in text
    assert f"{config}:4: triage.token: expected a secret reference" in text
