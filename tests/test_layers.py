"""Dependencies point one way (``../shared/DESIGN.md``: layout): every import in the product's
packages, including those inside functions, is checked against the rooms' rules."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# room -> the project packages it must never import (a room is a package or a module).
# streams may use sinks' infrastructure (metrics, retry, atomic files, the archive format).
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "detectors": ("streams", "sinks"),
    "sinks": ("streams", "detectors"),
    "streams.logs": ("streams", "detectors"),
    "streams.standins": ("streams", "detectors", "sinks"),
    "streams.source": (
        "streams.fetch", "streams.pipeline", "streams.commands", "streams.standins",
        "streams.app", "streams.settings", "streams.entry",
    ),
    "streams.fetch": (
        "streams.source", "streams.pipeline", "streams.commands", "streams.standins",
        "streams.app", "streams.settings", "streams.entry",
    ),
    "streams.pipeline": (
        "streams.commands", "streams.standins", "streams.app", "streams.settings",
        "streams.entry",
    ),
    "streams.scaleout": ("streams.commands", "streams.standins", "streams.app", "streams.entry"),
    "streams.settings": ("streams.commands", "streams.standins", "streams.app", "streams.entry"),
    "streams.triage": (
        "streams.commands", "streams.standins", "streams.app", "streams.entry",
        "streams.pipeline", "streams.source", "streams.fetch", "detectors",
    ),
    "streams.app": ("streams.commands", "streams.standins", "streams.entry"),
}  # fmt: skip
PROJECT = ("streams", "detectors", "sinks")


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, root: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module) of every import in the file, wherever it is."""
    here = module_name(path, root)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the package
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            yield node.lineno, mod
            for alias in node.names:  # "from streams import settings" imports a module
                yield node.lineno, f"{mod}.{alias.name}"


def violations(root: Path) -> list[str]:
    found = []
    for top in PROJECT:
        for path in sorted((root / top).rglob("*.py")):
            me = module_name(path, root)
            rules = [bad for room, bad in FORBIDDEN.items() if _within(me, room)]
            for line, mod in imports(path, root):
                if not mod.startswith(PROJECT) or _within(mod, me):
                    continue
                for bad in (b for forbidden in rules for b in forbidden):
                    if _within(mod, bad) and not _within(me, bad):
                        found.append(f"{path.relative_to(root)}:{line}: {me} imports {mod}")
    return found


def test_dependencies_point_one_way() -> None:
    assert violations(ROOT) == []


def test_a_crossing_import_is_caught_wherever_it_is(tmp_path: Path) -> None:
    """The check itself can fail: a detector importing the runner inside a function, a sink
    importing a detector by a relative import, a source importing the settings."""
    for pkg in ("detectors", "sinks", "streams", "streams/source"):
        (tmp_path / pkg).mkdir(parents=True, exist_ok=True)
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "detectors" / "bad.py").write_text(
        "def f():\n    from streams.pipeline import runner\n"
    )
    (tmp_path / "sinks" / "bad.py").write_text("from ..detectors import base\n")
    (tmp_path / "streams" / "source" / "bad.py").write_text(
        "import streams.settings\nfrom streams import logs\n"
    )
    (tmp_path / "streams" / "fine.py").write_text("from streams.source import bad\n")
    assert violations(tmp_path) == [
        "streams/source/bad.py:1: streams.source.bad imports streams.settings",
        "detectors/bad.py:2: detectors.bad imports streams.pipeline",
        "detectors/bad.py:2: detectors.bad imports streams.pipeline.runner",
        "sinks/bad.py:1: sinks.bad imports detectors",
        "sinks/bad.py:1: sinks.bad imports detectors.base",
    ]
