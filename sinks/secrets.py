"""Secrets (webhook URLs, tokens, HMAC keys) named in config, read from the environment or a
file, never written in the settings file itself and never logged.

``Secret`` hides its value from ``repr``/``str`` so an accidental log line or exception
message shows ``Secret(env:NAME)`` instead of the token.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

__all__ = ["Secret", "SecretError", "SecretRef", "credentials_in_url"]


class SecretError(Exception):
    """A secret named in config could not be read (the message names where, not what)."""


@dataclass(frozen=True)
class SecretRef:
    """``{env: NAME}`` or ``{file: PATH}`` in the settings file: exactly one of them."""

    # the settings loader never shows a plain value written in place of a reference
    CONFLOAD_SECRET: ClassVar[bool] = True

    env: str | None = None
    file: str | None = field(default=None, metadata={"path": True})

    def __post_init__(self) -> None:
        if (self.env is None) == (self.file is None):
            raise ValueError("a secret is {env: NAME} or {file: PATH}: exactly one of them")

    @property
    def where(self) -> str:
        return f"env:{self.env}" if self.env is not None else f"file:{self.file}"

    def resolve(self) -> Secret:
        if self.env is not None:
            value = (os.environ.get(self.env) or "").strip()
            if not value:
                raise SecretError(f"environment variable {self.env} is not set or empty")
        else:
            assert self.file is not None
            try:
                value = Path(self.file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise SecretError(f"cannot read secret file {self.file}: {exc.strerror}") from exc
            if not value:
                raise SecretError(f"secret file {self.file} is empty")
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            # it would end up in a header or URL; say where, never what
            raise SecretError(f"secret {self.where} contains control characters")
        return Secret(value, self.where)


def credentials_in_url(url: str, instead: str, *, user_allowed: bool = False) -> str | None:
    """The problem when a URL written in the settings file carries credentials
    (``user:password@``; any ``user@`` unless ``user_allowed``: a token often stands there):
    ``config show`` prints settings, logs name targets. ``instead``: where they go. The
    message never quotes the URL."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None  # not a URL: the field's own check says so
    if parts.password is not None:
        what = "a password"
    elif parts.username is not None and not user_allowed:
        what = "a user name (or a token in its place)"
    else:
        return None
    return f"the URL carries {what}, and settings are shown and logged: put it in {instead}"


class Secret:
    __slots__ = ("_value", "where")

    def __init__(self, value: str, where: str = "literal") -> None:
        self._value = value
        self.where = where

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.where})"

    __str__ = __repr__
