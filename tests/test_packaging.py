"""Packaging: what a wheel carries (the shipped rule packs included)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from streams.settings import SHIPPED_RULES, shipped_config_dir

REPO = Path(__file__).resolve().parents[1]


def test_every_package_of_the_tree_is_listed_for_the_wheel() -> None:
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])  # fmt: skip
    tree = {
        ".".join(init.parent.relative_to(REPO).parts)
        for top in ("streams", "detectors", "sinks")
        for init in (REPO / top).rglob("__init__.py")
    }
    assert tree | {"rcwatch_config"} == listed


def test_the_shipped_rules_are_found_and_packaged() -> None:
    assert shipped_config_dir() == REPO / "config"
    assert Path(SHIPPED_RULES).is_dir()
    data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    globs = data["package-data"]["rcwatch_config"]
    packaged = {p for g in globs for p in (REPO / "config").glob(g)}
    shipped = set((REPO / "config" / "rules").rglob("*.yaml")) | set(
        (REPO / "config" / "rules").rglob("*.txt")
    )
    assert shipped <= packaged, "a rule file would be missing from the wheel"


def test_the_shipped_models_are_packaged() -> None:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    globs = data["package-data"]["rcwatch_config"]
    packaged = {p for g in globs for p in (REPO / "config").glob(g)}
    shipped = {p for p in (REPO / "config" / "models").rglob("*") if p.is_file()}
    assert shipped and shipped <= packaged, "a model file would be missing from the wheel"
