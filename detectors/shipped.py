"""Where the data that ships with rcwatch lives (rule packs, models, settings)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = ["shipped_config_dir"]


def shipped_config_dir() -> Path:
    """The ``config/`` directory that ships with rcwatch: the repository's in a checkout or
    an editable install, else the copy a wheel installs as ``rcwatch_config``."""
    source = Path(__file__).resolve().parent.parent / "config"
    if (source / "rules").is_dir():
        return source
    spec = importlib.util.find_spec("rcwatch_config")
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        if Path(location, "rules").is_dir():
            return Path(location)
    return source
