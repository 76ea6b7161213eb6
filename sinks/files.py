"""Writing state files whole, durable and private: the one way rcwatch does it."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

__all__ = ["aside_path", "unique_suffix", "write_atomic"]


def unique_suffix() -> str:
    """A name part no other write of this or any process shares: nanoseconds and 48
    random bits (a pid and a counter repeat across restarts and containers)."""
    return f"{time.time_ns()}-{secrets.token_hex(6)}"


def aside_path(path: Path) -> Path:
    """Where a corrupt ``path`` is kept for inspection: ``<name>.corrupt-<unique>``, so
    two corrupt files in the same second never overwrite each other."""
    return path.with_name(f"{path.name}.corrupt-{unique_suffix()}")


def write_atomic(path: Path, data: bytes, *, sync_dir: bool = False) -> None:
    """Replace ``path`` with ``data``: a 0600 temporary file beside it, written in full
    (short writes resumed), fsynced, then renamed over ``path``. A crash leaves the old
    file or the new one, never a torn one; a failure removes the temporary file and
    raises. ``sync_dir`` also fsyncs the directory, so the rename itself survives a power
    loss."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        try:
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:])
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    if sync_dir:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
