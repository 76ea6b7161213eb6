"""Hot reload of rule packs: on file change (polled) or SIGHUP.

A reload loads and compiles every rule file; only if all of them are valid does the new
engine replace the old one, between two events, so no event is dropped or evaluated by a
half-loaded set. A broken file keeps the previous rules running and is reported: every
problem in the log (file, line, rule id) and ``rcwatch_rules_reloads_total{result="failed"}``,
``rcwatch_rules_last_reload_ok`` 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from detectors.rules.engine import RuleEngine
from detectors.rules.loader import load_rules
from sinks.metrics import Metrics
from streams.pipeline.detection import Detection

__all__ = ["RulesReloader"]

log = logging.getLogger(__name__)


class RulesReloader:
    def __init__(
        self,
        paths: list[Path],
        detection: Detection,
        metrics: Metrics,
        *,
        check_seconds: float = 2.0,
    ) -> None:
        self.paths = paths
        self.detection = detection
        self.metrics = metrics
        self.check_seconds = check_seconds
        self._wake = asyncio.Event()
        self._seen = self.fingerprint()
        self.reloads = 0
        self.failures = 0
        metrics.rules_last_reload_ok.set(1)

    def fingerprint(self) -> tuple[tuple[str, int, int], ...]:
        """(path, mtime, size) of every file under the rule paths, keyword lists included."""
        found = []
        for p in self.paths:
            files = [p] if p.is_file() else sorted(x for x in p.rglob("*") if x.is_file())
            for f in files:
                with contextlib.suppress(OSError):
                    st = f.stat()
                    found.append((str(f), st.st_mtime_ns, st.st_size))
        return tuple(found)

    def request(self) -> None:
        """Reload now (SIGHUP)."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            timeout = self.check_seconds if self.check_seconds > 0 else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            forced = self._wake.is_set()
            self._wake.clear()
            current = self.fingerprint()
            if forced or current != self._seen:
                self._seen = current
                self.reload()

    def reload(self) -> bool:
        classifiers = self.detection.engine.classifiers
        rules, issues = load_rules(self.paths, classifiers.keys())
        if issues:
            self.failures += 1
            self.metrics.rules_reloads.labels("failed").inc()
            self.metrics.rules_last_reload_ok.set(0)
            for issue in issues:
                log.error("rule reload rejected", extra={"fields": {"problem": str(issue)}})
            log.error(
                "rule files have problems; the previous rules keep running",
                extra={"fields": {"problems": len(issues)}},
            )
            return False
        self.detection.swap(RuleEngine(rules, classifiers=classifiers))
        self.reloads += 1
        self.metrics.rules_reloads.labels("ok").inc()
        self.metrics.rules_last_reload_ok.set(1)
        log.info(
            "rules reloaded",
            extra={"fields": {"rules": len(rules), "enabled": sum(r.enabled for r in rules)}},
        )
        return True
