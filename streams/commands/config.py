"""``rcwatch config check|show``: is the configuration usable, and what is in effect.

``show`` prints every setting with its effective value and where it came from: the settings
file's line, or the built-in default. Secrets appear as their references (``{env: NAME}``,
``{file: PATH}``), never as values. ``check`` loads the settings, the rules and the
classifiers they name, and tells whether the secrets the sinks reference can be read, then
lists every problem found (with file and line) and exits 1 if there is any.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from detectors.confload import ConfigError, compose_file
from sinks.secrets import SecretError, SecretRef
from streams.app import load_engine
from streams.settings import Settings
from streams.source.eventstreams import user_agent_problem

__all__ = ["run_config_command", "setting_lines", "source_of_settings"]


def source_of_settings(args: argparse.Namespace, path: Path | None) -> str:
    if args.config:
        return f"{path} (--config)"
    if os.environ.get("RCWATCH_CONFIG"):
        return f"{path} ($RCWATCH_CONFIG)"
    return f"{path} (found in the usual places)" if path else "built-in defaults (no file)"


def _lines_in(path: Path | None) -> dict[str, int]:
    """Dotted key path -> line of every key the settings file sets."""
    if path is None:
        return {}
    node, _issues = compose_file(path)
    out: dict[str, int] = {}

    def walk(n: yaml.Node, prefix: str) -> None:
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                key = f"{prefix}.{k.value}" if prefix else str(k.value)
                out[key] = k.start_mark.line + 1
                walk(v, key)
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                key = f"{prefix}[{i}]"
                out[key] = item.start_mark.line + 1
                walk(item, key)

    if node is not None:
        walk(node, "")
    return out


def _show(value: Any) -> str:
    """A value as it would be written in the settings file."""
    if isinstance(value, SecretRef):
        return "{" + ", ".join(f"{k}: {v}" for k, v in dataclasses.asdict(value).items() if v) + "}"
    if isinstance(value, enum.Enum):
        return _show(value.value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value) if value == "" or value.strip() != value else value
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    return str(value)


def _leaves(value: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    if dataclasses.is_dataclass(value) and not isinstance(value, (type, SecretRef)):
        for f in dataclasses.fields(value):
            if f.metadata.get("internal"):
                continue
            yield from _leaves(getattr(value, f.name), f"{prefix}.{f.name}" if prefix else f.name)
    elif (
        isinstance(value, (list, tuple))
        and value
        and any(dataclasses.is_dataclass(v) for v in value)
    ):
        for i, item in enumerate(value):
            yield from _leaves(item, f"{prefix}[{i}]")
    elif isinstance(value, dict) and value:
        for k, v in value.items():
            yield from _leaves(v, f"{prefix}.{k}")
    else:
        yield prefix, value


def setting_lines(
    settings: Settings, path: Path | None, options: dict[str, str] | None = None
) -> list[str]:
    """``key: value  # where`` for every setting in effect (``options``: settings a
    command-line option gave, key -> the option)."""
    lines = _lines_in(path)
    out = []
    for key, value in _leaves(settings, ""):
        line = lines.get(key)
        if options and key in options:
            where = options[key]
        elif line is not None:
            where = f"{path}:{line}"
        else:  # not in the file; inside a list item that is, the item's defaults apply
            item = key[: key.rfind("]") + 1] if "]" in key else ""
            where = f"default (in the item at {path}:{lines[item]})" if item in lines else "default"
        out.append(f"{key}: {_show(value)}  # {where}")
    return out


def _secret_refs(value: Any, prefix: str = "") -> Iterator[tuple[str, SecretRef]]:
    for key, leaf in _leaves(value, prefix):
        if isinstance(leaf, SecretRef):
            yield key, leaf


def run_config_command(
    settings: Settings, args: argparse.Namespace, path: Path | None, source: str
) -> int:
    if args.config_command == "show":
        print(f"# settings: {source}")
        given = (
            ("stream.url", "--stream-url", args.stream_url),
            ("stream.user_agent", "--user-agent", args.user_agent),
        )
        options = {key: option for key, option, value in given if value}
        for line in setting_lines(settings, path, options):
            print(line)
        return 0
    problems: list[str] = []
    print(f"settings: {source}: ok")
    try:
        engine = load_engine(settings, include_disabled=True)
        enabled = sum(r.enabled for r in engine.rules)
        print(f"rules: {len(engine.rules)} ({enabled} enabled), classifiers: "
              f"{', '.join(sorted(engine.classifiers)) or 'none'}: ok")  # fmt: skip
    except ConfigError as exc:
        problems += [str(i) for i in exc.issues]
    for key, ref in _secret_refs(settings):
        try:
            ref.resolve()
        except SecretError as exc:
            problems.append(f"{key}: {exc}")
    ua = user_agent_problem(settings.stream.url, settings.stream.user_agent)
    if ua:
        problems.append(f"stream.user_agent: {ua} (rcwatch run refuses to start)")
    triage = settings.triage
    if triage.enabled and triage.token is None and triage.trusted_proxy_header is None:
        problems.append(
            "triage: enabled without token or trusted_proxy_header: every request is "
            "authenticated (rcwatch run refuses to start)"
        )
    if triage.enabled and not settings.store.enabled:
        problems.append("triage: enabled, but the alert store is off (store.enabled: false)")
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} problem(s)", file=sys.stderr)
        return 2  # a configuration problem, as for every command
    print("ok: the configuration is usable")
    return 0
