"""Typed YAML loading: YAML nodes into frozen dataclasses, every error at once, with lines.

Settings and rule packs are data. A mistake in them must be reported with the file, the
line and the key path, and all mistakes in one pass, not the first only. Unknown keys are
errors (with a "did you mean"), because a misspelt option that is silently ignored is the
worst kind of config bug.

Field metadata understood by the loader (``dataclasses.field(metadata=...)``):

- ``min`` / ``max``: inclusive numeric bounds; ``gt``: exclusive lower bound;
- ``check``: ``callable(value) -> str | None``; a returned string is the error message;
- ``parse``: ``callable(loader, node, path) -> value`` to take over parsing of the field;
- ``internal``: set by the program, never read from YAML (an unknown key there);
- ``path``: a file or directory name (a string, or a list of them): a relative one is
  resolved against the directory of the file it is written in, so a settings file means
  the same wherever it is read from (paths on the command line and built-in defaults are
  relative to the working directory).

A dataclass with a true ``CONFLOAD_SECRET`` class attribute is a reference to a secret
(``{env: NAME}``): a plain value written in its place is probably the secret itself, so the
error says what is expected and never shows what was written.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin

import yaml

__all__ = [
    "ConfigError",
    "ConfigIssue",
    "NodeLoader",
    "compose_file",
    "compose_text",
    "json_int",
    "json_list",
    "json_number",
    "json_str",
]

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class ConfigIssue:
    file: str
    line: int | None  # 1-based
    path: str
    message: str
    rule_id: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        rule = f" [rule {self.rule_id}]" if self.rule_id else ""
        key = f" {self.path}:" if self.path else ""
        return f"{where}:{rule}{key} {self.message}"


class ConfigError(Exception):
    """One or more problems in configuration files; ``str()`` lists them all."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


def node_line(node: yaml.Node | None) -> int | None:
    return node.start_mark.line + 1 if node is not None else None


def compose_text(text: str, file: str) -> tuple[yaml.Node | None, list[ConfigIssue]]:
    """Parse YAML text into a node tree; a syntax error becomes an issue with its line."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader), []
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or str(exc)
        return None, [ConfigIssue(file, line, "", f"YAML syntax error: {problem}")]
    except yaml.YAMLError as exc:
        return None, [ConfigIssue(file, None, "", f"YAML error: {exc}")]


def compose_file(path: str | Path) -> tuple[yaml.Node | None, list[ConfigIssue]]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        return None, [ConfigIssue(str(p), None, "", f"cannot read: {exc.strerror or exc}")]
    except UnicodeDecodeError:
        return None, [ConfigIssue(str(p), None, "", "not UTF-8 text")]
    return compose_text(text, str(p))


_CONSTRUCTOR = yaml.constructor.SafeConstructor()


def _scalar_value(node: yaml.ScalarNode) -> Any:
    value = _CONSTRUCTOR.construct_object(node, deep=True)
    _CONSTRUCTOR.constructed_objects.clear()
    return value


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    if isinstance(tp, type):
        if dataclasses.is_dataclass(tp):
            return "mapping"
        if issubclass(tp, enum.Enum):
            return "one of " + ", ".join(repr(m.value) for m in tp)
        return {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}.get(
            tp.__name__, tp.__name__
        )
    origin = get_origin(tp)
    if origin in (list, tuple):
        return "list"
    if origin is dict:
        return "mapping"
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    return str(tp)


class NodeLoader:
    """Builds typed values from YAML nodes, collecting issues instead of raising."""

    def __init__(self, file: str, rule_id: str | None = None, base_dir: Path | None = None) -> None:
        self.file = file
        self.rule_id = rule_id
        self.base_dir = base_dir  # relative ``path`` fields resolve against it
        self.issues: list[ConfigIssue] = []

    def error(self, node: yaml.Node | None, path: str, message: str) -> None:
        self.issues.append(ConfigIssue(self.file, node_line(node), path, message, self.rule_id))

    # -- entry points ---------------------------------------------------------------------

    def build(self, tp: Any, node: yaml.Node, path: str = "") -> Any:
        """Value of type ``tp`` from ``node``; on error records an issue, returns None."""
        return self._value(tp, node, path)

    def plain(self, node: yaml.Node) -> Any:
        """The node as plain Python data (dicts, lists, scalars), untyped."""
        if isinstance(node, yaml.ScalarNode):
            return _scalar_value(node)
        if isinstance(node, yaml.SequenceNode):
            return [self.plain(n) for n in node.value]
        if isinstance(node, yaml.MappingNode):
            return {self.plain(k): self.plain(v) for k, v in node.value}
        return None

    def mapping_items(self, node: yaml.Node, path: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
        """(key, key node, value node) of a mapping, reporting duplicate or non-string keys."""
        if not isinstance(node, yaml.MappingNode):
            self.error(node, path, f"expected a mapping, got {self._kind(node)}")
            return []
        seen: set[str] = set()
        out = []
        for knode, vnode in node.value:
            key = _scalar_value(knode) if isinstance(knode, yaml.ScalarNode) else None
            if not isinstance(key, str):
                self.error(knode, path, "keys must be strings")
                continue
            if key in seen:
                self.error(knode, _join(path, key), "duplicate key")
                continue
            seen.add(key)
            out.append((key, knode, vnode))
        return out

    # -- internals ------------------------------------------------------------------------

    @staticmethod
    def _kind(node: yaml.Node) -> str:
        if isinstance(node, yaml.MappingNode):
            return "a mapping"
        if isinstance(node, yaml.SequenceNode):
            return "a list"
        value = _scalar_value(node) if isinstance(node, yaml.ScalarNode) else None
        if value is None:
            return "null"
        return f"{type(value).__name__} {value!r}"

    def _value(self, tp: Any, node: yaml.Node, path: str) -> Any:
        origin = get_origin(tp)
        if origin in (typing.Union, types.UnionType):
            return self._union(tp, node, path)
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            return self.dataclass(tp, node, path)
        if origin is list or origin is tuple:
            (item_tp, *_rest) = get_args(tp)
            if not isinstance(node, yaml.SequenceNode):
                self.error(node, path, f"expected a list, got {self._kind(node)}")
                return None
            items = [self._value(item_tp, n, f"{path}[{i}]") for i, n in enumerate(node.value)]
            return tuple(items) if origin is tuple else items
        if origin is dict:
            _key_tp, val_tp = get_args(tp)
            return {
                key: self._value(val_tp, vnode, _join(path, key))
                for key, _knode, vnode in self.mapping_items(node, path)
            }
        if not isinstance(node, yaml.ScalarNode):
            self.error(node, path, f"expected {_type_name(tp)}, got {self._kind(node)}")
            return None
        value = _scalar_value(node)
        return self._scalar(tp, value, node, path)

    def _scalar(self, tp: Any, value: Any, node: yaml.Node, path: str) -> Any:
        if tp is Any:
            return value
        if get_origin(tp) is typing.Literal:
            if value in get_args(tp):
                return value
            self.error(node, path, f"expected {_type_name(tp)}, got {value!r}")
            return None
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            try:
                return tp(value)
            except ValueError:
                self.error(node, path, f"expected {_type_name(tp)}, got {value!r}")
                return None
        if tp is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if tp is str and isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # e.g. a bare number used as a name
        if tp is type(None) and value is None:
            return None
        if (
            isinstance(tp, type)
            and isinstance(value, tp)
            and not (tp is int and isinstance(value, bool))
        ):
            return value
        self.error(node, path, f"expected {_type_name(tp)}, got {self._kind(node)}")
        return None

    def _union(self, tp: Any, node: yaml.Node, path: str) -> Any:
        members = [a for a in get_args(tp) if a is not type(None)]
        optional = len(members) < len(get_args(tp))
        if optional and isinstance(node, yaml.ScalarNode) and _scalar_value(node) is None:
            return None
        if len(members) == 1:
            return self._value(members[0], node, path)
        classes = [m for m in members if dataclasses.is_dataclass(m)]
        if classes and len(classes) == len(members):
            return self._tagged(classes, node, path)
        # scalar alternatives: first that fits, without recording trial errors
        for member in members:
            trial = NodeLoader(self.file, self.rule_id, self.base_dir)
            value = trial._value(member, node, path)
            if not trial.issues:
                return value
        names = " or ".join(_type_name(m) for m in members)
        self.error(node, path, f"expected {names}, got {self._kind(node)}")
        return None

    def _tagged(self, classes: list[Any], node: yaml.Node, path: str) -> Any:
        """A union of dataclasses told apart by their ``type`` field's default."""
        by_tag: dict[str, Any] = {}
        for cls in classes:
            by_tag[str({f.name: f for f in dataclasses.fields(cls)}["type"].default)] = cls
        if not isinstance(node, yaml.MappingNode):
            self.error(node, path, f"expected a mapping, got {self._kind(node)}")
            return None
        tag_node = next(
            (
                v
                for k, v in node.value
                if isinstance(k, yaml.ScalarNode) and _scalar_value(k) == "type"
            ),
            None,
        )
        if tag_node is None:
            self.error(node, path, f"missing 'type' (one of {', '.join(map(repr, by_tag))})")
            return None
        tag = _scalar_value(tag_node) if isinstance(tag_node, yaml.ScalarNode) else None
        if tag not in by_tag:
            hint = _suggest(str(tag), list(by_tag))
            self.error(tag_node, _join(path, "type"), f"unknown type {tag!r}{hint}")
            return None
        return self.dataclass(by_tag[tag], node, path)

    def dataclass(self, cls: type[T], node: yaml.Node, path: str) -> T | None:
        if getattr(cls, "CONFLOAD_SECRET", False) and not isinstance(node, yaml.MappingNode):
            self.error(
                node,
                path,
                "expected a secret reference ({env: NAME} or {file: PATH}), not the secret "
                "itself (what is written here is not shown)",
            )
            return None
        hints = typing.get_type_hints(cls)
        fields = {
            f.name: f
            for f in dataclasses.fields(cls)  # type: ignore[arg-type]
            if f.init and not f.metadata.get("internal")
        }
        kwargs: dict[str, Any] = {}
        ok = True
        before = len(self.issues)
        for key, knode, vnode in self.mapping_items(node, path):
            f = fields.get(key)
            if f is None:
                hint = _suggest(key, list(fields))
                self.error(knode, _join(path, key), f"unknown key{hint}")
                ok = False
                continue
            fpath = _join(path, key)
            parse: Callable[[NodeLoader, yaml.Node, str], Any] | None = f.metadata.get("parse")
            n_issues = len(self.issues)
            value = parse(self, vnode, fpath) if parse else self._value(hints[key], vnode, fpath)
            if len(self.issues) > n_issues:
                ok = False
                continue
            if f.metadata.get("path") and self.base_dir is not None:
                value = _resolve_paths(value, self.base_dir)
            message = _check_field(f, value)
            if message:
                self.error(vnode, fpath, message)
                ok = False
                continue
            kwargs[key] = value
        if not isinstance(node, yaml.MappingNode):
            return None
        for name, f in fields.items():
            missing = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if missing and name not in kwargs and ok:
                self.error(node, _join(path, name), "required key is missing")
                ok = False
        if not ok or len(self.issues) > before:
            return None
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:  # __post_init__ validation
            self.error(node, path, str(exc))
            return None


def _check_field(f: dataclasses.Field[Any], value: Any) -> str | None:
    if value is None:
        return None
    meta = f.metadata
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "min" in meta and value < meta["min"]:
            return f"must be at least {meta['min']}, got {value}"
        if "max" in meta and value > meta["max"]:
            return f"must be at most {meta['max']}, got {value}"
        if "gt" in meta and value <= meta["gt"]:
            return f"must be greater than {meta['gt']}, got {value}"
    check: Callable[[Any], str | None] | None = meta.get("check")
    return check(value) if check else None


def _resolve_paths(value: Any, base: Path) -> Any:
    if isinstance(value, str):
        return str(base / Path(value).expanduser()) if value else value
    if isinstance(value, (list, tuple)):
        return type(value)(_resolve_paths(v, base) for v in value)
    if isinstance(value, dict):
        return {k: _resolve_paths(v, base) for k, v in value.items()}
    return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# -- strict checks for values read back from JSON state (snapshots, checkpoints) ---------------


def json_list(value: Any) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise ValueError("expected a list")
    return list(value)


def json_str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a string")
    return value


def json_int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError("expected an integer")
    return value


def json_number(value: Any) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError("expected a number")
    return float(value)
