"""Every ``rcwatch`` command shown in the README and docs/ is checked against the code: each
must parse with the real parser (an option renamed or removed fails here), and the offline
ones with no side effects run and must succeed, so the docs cannot drift from the code."""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from streams.commands.parser import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# a synopsis, not a command: optional parts, alternatives, repeats, placeholders
TEMPLATE = re.compile(r"\[|\\\||\.\.\.|\b(FILE|DIR|NAME|ID|TEXT|TIME|URL|N|HOST:PORT)\b")
# (command, subcommand) pairs that run here: offline, quick, and they change nothing
RUNS = {
    ("rules", "validate"), ("rules", "test"), ("rules", "list"), ("model", "score"),
    ("model", "info"), ("config", "show"),
}  # fmt: skip


def _commands_in(text: str) -> list[str]:
    """Commands in code blocks (fenced or indented) and in inline code spans."""
    found = []
    in_fence = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            continue
        candidates = [line.strip()] if in_fence or line.startswith("    ") else []
        candidates += re.findall(r"`([^`]+)`", line) if not in_fence else []
        for candidate in candidates:
            cmd = re.sub(r"^(\$ |\.venv/bin/)", "", candidate).split("  #")[0].strip()
            if cmd.startswith("rcwatch ") and not TEMPLATE.search(cmd):
                found.append(cmd)
    return found


def _all() -> list[tuple[str, str]]:
    out = []
    for page in PAGES:
        for cmd in _commands_in(page.read_text()):
            if (page.name, cmd) not in out:
                out.append((page.name, cmd))
    return out


DOCUMENTED = _all()


def test_the_docs_show_commands_of_every_group() -> None:
    groups = {shlex.split(cmd)[1] for _, cmd in DOCUMENTED}
    assert {"run", "demo", "replay", "rules", "sinks", "model"} <= groups, groups


def _names(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(subs[0].choices) if subs else {}


def _is_a_name(argv: list[str]) -> bool:
    """``rcwatch replay`` in a sentence names a command; it is not an example to run."""
    parser = build_parser()
    for word in argv:
        choices = _names(parser)
        if word not in choices:
            return False
        parser = choices[word]
    return True


@pytest.mark.parametrize(("page", "command"), DOCUMENTED, ids=[c for _, c in DOCUMENTED])
def test_a_documented_command_parses(page: str, command: str) -> None:
    argv = shlex.split(command)[1:]
    if _is_a_name(argv):
        return  # an existing command, named
    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse reports the problem on stderr, then exits 2
        if exc.code != 0:  # --help exits 0
            pytest.fail(f"{page}: `{command}` does not parse (exit {exc.code})")


RUNNABLE = [(p, c) for p, c in DOCUMENTED if tuple(shlex.split(c)[1:3]) in RUNS]


@pytest.mark.parametrize(("page", "command"), RUNNABLE, ids=[c for _, c in RUNNABLE])
def test_a_documented_offline_command_runs(page: str, command: str) -> None:
    argv = [sys.executable, "-m", "streams", *shlex.split(command)[1:]]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert done.returncode == 0, f"{page}: `{command}`\n{done.stdout}\n{done.stderr}"


def test_the_extractor_finds_commands_and_skips_synopses() -> None:
    text = (
        "Run `rcwatch rules test` or:\n\n    .venv/bin/rcwatch model info   # what it is\n\n"
        "```\n$ rcwatch rules validate\n```\n"
        "| `rcwatch replay FILE... [--speed max\\|N]` | synopsis |\n"
    )
    assert _commands_in(text) == [
        "rcwatch rules test",
        "rcwatch model info",
        "rcwatch rules validate",
    ]


def test_every_path_the_docs_name_exists() -> None:
    """A page that names a file (a test, a benchmark, a config file) names one that exists."""
    missing = []
    for page in PAGES:
        for path in re.findall(
            r"`((?:tests|bench|streams|detectors|sinks|config|docs)/[\w./-]*)`", page.read_text()
        ):
            if "*" not in path and not (ROOT / path).exists():
                missing.append(f"{page.name}: {path}")
    assert missing == []
