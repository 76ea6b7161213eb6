"""``rcwatch`` command line: parse, load the settings, hand over to the command's module.

Every option is also a key in the settings file (``config/rcwatch.yaml``); the command line
wins. Exit codes: 0 done, 1 unexpected error, 2 bad usage or configuration, 3 the stream
server refused us for good (HTTP 400/403/404...).

Nothing here imports more than the parser and the settings: a command imports what it uses
when it runs, so ``rcwatch --help`` answers at once (``python -m bench.cli_startup``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from streams.commands.parser import build_parser

if TYPE_CHECKING:
    from streams.settings import Settings

__all__ = ["EXIT_CONFIG", "EXIT_ERROR", "EXIT_OK", "EXIT_STREAM", "main"]

EXIT_OK, EXIT_ERROR, EXIT_CONFIG, EXIT_STREAM = 0, 1, 2, 3
EXIT_PIPE = 128 + 13  # as if killed by SIGPIPE: what a shell expects of `cmd | head`

# failures a command reports in one line (module, class): matched by name, so that this
# module need not import them; one whose module was never imported cannot have been raised
_USAGE_ERRORS = (
    ("streams.app", "UsageError"),
    ("streams.source.checkpoint", "CheckpointError"),
    ("sinks.base", "SinkError"),  # a sink that cannot start (an unwritable alert file, ...)
    ("sinks.store", "StoreError"),  # an alert store that cannot be opened or read
)


def _raised(exc: BaseException, module: str, name: str) -> bool:
    cls = getattr(sys.modules.get(module), name, None)
    return isinstance(cls, type) and isinstance(exc, cls)


def _load(args: argparse.Namespace) -> tuple[Settings, str]:
    from streams.settings import default_config_path, load_settings

    path = Path(args.config) if args.config else default_config_path()
    settings = load_settings(path)
    logging_cfg = settings.logging
    if args.log_level:
        logging_cfg = dataclasses.replace(logging_cfg, level=args.log_level)
    if args.log_format:
        logging_cfg = dataclasses.replace(logging_cfg, format=args.log_format)
    settings = dataclasses.replace(settings, logging=logging_cfg)
    if getattr(args, "state_dir", None):
        settings = dataclasses.replace(settings, state_dir=args.state_dir)
    return settings, str(path) if path else "built-in defaults"


def _dispatch(args: argparse.Namespace) -> int:
    from streams.logs import setup_logging
    from streams.pipeline.tuning import tune_gc

    tune_gc()
    settings, source_name = _load(args)
    setup_logging(settings.logging.level, settings.logging.format)
    if args.command == "run":
        from streams.commands import monitor

        return monitor.run(settings, args, source_name)
    if args.command == "replay":
        from streams.commands import monitor

        return monitor.replay(settings, args)
    if args.command == "rules":
        from streams.commands.rules import run_rules_command

        return run_rules_command(settings, args)
    if args.command == "sinks":
        from streams.commands.sinks import run_sinks_command

        return run_sinks_command(settings, args)
    if args.command == "model":
        from streams.commands.model import run_model_command

        return run_model_command(settings, args)
    if args.command == "config":
        from streams.commands.config import run_config_command, source_of_settings
        from streams.commands.monitor import apply_stream_args
        from streams.settings import default_config_path

        path = Path(args.config) if args.config else default_config_path()
        settings = apply_stream_args(settings, args)
        return run_config_command(settings, args, path, source_of_settings(args, path))
    if args.command == "alerts":
        from streams.commands.alerts import run_alerts_command

        return run_alerts_command(settings, args)
    if args.command == "triage":
        from streams.commands.triage import run_triage_command

        return run_triage_command(settings, args)
    if args.command == "scaleout":
        from streams.commands.scaleout import run_scaleout_command

        return run_scaleout_command(settings, args)
    from streams.commands.demo import demo  # the parser knows no other command

    return demo(settings, args)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _dispatch(args)
    except Exception as exc:
        if _raised(exc, "detectors.confload", "ConfigError"):
            issues = exc.issues  # type: ignore[attr-defined]
            print(f"rcwatch: configuration error{'s' if len(issues) > 1 else ''}:", file=sys.stderr)
            for issue in issues:
                print(f"  {issue}", file=sys.stderr)
            return EXIT_CONFIG
        if any(_raised(exc, module, name) for module, name in _USAGE_ERRORS):
            print(f"rcwatch: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        if isinstance(exc, BrokenPipeError):  # `rcwatch ... | head`: the reader is done
            with contextlib.suppress(OSError):  # nothing more may reach the closed pipe
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
            return EXIT_PIPE
        if isinstance(exc, OSError):  # the file system refused what start-up needs
            where = f"{exc.filename}: " if exc.filename else ""
            print(f"rcwatch: {where}{exc.strerror or exc}", file=sys.stderr)
            return EXIT_CONFIG
        if _raised(exc, "concurrent.futures.process", "BrokenProcessPool"):
            print(
                "rcwatch: a worker process died (killed, or out of memory); the run "
                "stopped after the last whole batch. Run it again, or with --workers 1",
                file=sys.stderr,
            )
            return EXIT_ERROR
        if _raised(exc, "streams.app", "StopAbandoned"):  # a second signal: sinks abandoned
            print(
                "rcwatch: stopped without waiting for the sinks; events after the last "
                "checkpoint (and spooled alerts) are processed by the next run",
                file=sys.stderr,
            )
            return 128 + int(exc.signum)  # type: ignore[attr-defined]
        raise
