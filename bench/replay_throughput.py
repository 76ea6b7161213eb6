"""Replay throughput of the full pipeline against orjson.loads of the same bytes.

    python -m bench.replay_throughput [--events 200000] [--repeats 3] [--workers N] [--profile]

The recorded recentchange slice (2,476 real events) is repeated to at least ``--events``
(each copy gets fresh meta.ids and its own titles and summaries, so neither the
de-duplication step nor the rule engine's memo of repeated texts short-cuts it), written
once as plain NDJSON and once as capture wrappers (the format of ../shared/data and of the
archive). Each is replayed through source -> decode -> dedup -> scope -> detectors ->
alert builder -> JSONL sink, with every shipped rule, on one worker (this process) and on
``--workers`` (default: the machine's cores; the rules in worker processes, the windows
here), and compared with the baseline of ``orjson.loads`` over the same lines in the same
process. Printed: events/s for both and the ratio. The alerts of every run are compared:
the same ids, rules and counts, or the benchmark fails.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import tempfile
from pathlib import Path

import orjson

from bench.common import RECORDED, best_of, require
from sinks.metrics import Metrics
from streams.app import build_monitor
from streams.pipeline.parallel import default_workers
from streams.pipeline.tuning import tune_gc
from streams.settings import JsonlSinkConfig, Settings
from streams.source.replay import ReplaySource


def build_inputs(target: int, workdir: Path) -> tuple[Path, Path, list[bytes], list[bytes]]:
    recorded = [orjson.loads(line)["data"] for line in require(RECORDED).read_bytes().splitlines()]
    plain: list[bytes] = []
    wrapped: list[bytes] = []
    copy = 0
    while len(plain) < target:
        for data in recorded:
            event = orjson.loads(data)
            event["meta"]["id"] = f"{event['meta']['id']}-{copy}"
            # distinct texts per copy, so the engine's memo of repeated summaries and
            # titles does not flatter the figure (live streams repeat about half of them)
            if copy:
                event["title"] = f"{event.get('title', '')} {copy}"
                event["comment"] = f"{event.get('comment', '')} {copy}"
            raw = orjson.dumps(event)
            plain.append(raw)
            wrapped.append(orjson.dumps({"data": raw.decode(), "recv_ns": len(wrapped)}))
        copy += 1
    plain_path = workdir / "plain.ndjson"
    wrapped_path = workdir / "wrapped.ndjson"
    plain_path.write_bytes(b"\n".join(plain) + b"\n")
    wrapped_path.write_bytes(b"\n".join(wrapped) + b"\n")
    return plain_path, wrapped_path, plain, wrapped


def replay(path: Path, workdir: Path, workers: int = 1) -> tuple[int, list[tuple[str, str, int]]]:
    """A whole replay, set-up included: (events, the alerts' ids, rules and counts)."""
    alerts = workdir / "alerts.jsonl"
    alerts.unlink(missing_ok=True)
    settings = Settings(
        state_dir=str(workdir / "state"), sinks=(JsonlSinkConfig(path=str(alerts)),)
    )
    monitor = build_monitor(
        settings, ReplaySource([path]), metrics=Metrics(), archive=False, workers=workers
    )
    summary = asyncio.run(monitor.run())
    found = [orjson.loads(line) for line in alerts.read_bytes().splitlines()]
    return summary.events, [(a["id"], a["rule"], a["count"]) for a in found]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=default_workers(), help="default: cores")
    parser.add_argument("--profile", action="store_true", help="cProfile one plain replay")
    args = parser.parse_args()
    tune_gc()  # as `rcwatch replay` runs

    with tempfile.TemporaryDirectory(prefix="rcwatch-bench-") as tmp:
        workdir = Path(tmp)
        plain_path, wrapped_path, plain, wrapped = build_inputs(args.events, workdir)
        n = len(plain)
        print(f"events: {n:,} ({n // 2476} copies of the recorded slice)")

        if args.profile:
            cProfile.runctx("replay(plain_path, workdir)", globals(), locals(), "replay.prof")
            pstats.Stats("replay.prof").sort_stats("cumulative").print_stats(25)
            return

        def loads_plain() -> None:
            for line in plain:
                orjson.loads(line)

        def loads_wrapped() -> None:  # what it takes just to get the event out
            for line in wrapped:
                orjson.loads(orjson.loads(line)["data"])

        rows = []
        outputs: list[tuple[int, list[tuple[str, str, int]]]] = []
        counts = sorted({1, args.workers})
        for name, path, baseline in (
            ("plain NDJSON", plain_path, loads_plain),
            ("capture wrappers", wrapped_path, loads_wrapped),
        ):
            base_s = best_of(args.repeats, baseline)
            for workers in counts:
                pipe_s = best_of(
                    args.repeats,
                    lambda p=path, w=workers: outputs.append(replay(p, workdir, w)),  # type: ignore[misc]
                )
                assert outputs[-1][0] == n, f"replayed {outputs[-1][0]} of {n} events"
                assert outputs[-1] == outputs[0], f"{workers} workers: other alerts than 1"
                rows.append((name, workers, n / base_s, n / pipe_s))

        print(f"alerts: {len(outputs[0][1])}, the same ids, rules and counts in every run")
        print(
            f"{'input':<18} {'workers':>7} {'orjson.loads/s':>15} {'pipeline/s':>12} {'ratio':>7}"
        )
        for name, workers, base, pipe in rows:
            print(f"{name:<18} {workers:>7} {base:>15,.0f} {pipe:>12,.0f} {pipe / base:>7.3f}")
        print("goal (issue 14): >= 50,000 events/s (ratio >= 0.3) on this 2-core machine, ")
        print("30,000 on one worker")


if __name__ == "__main__":
    main()
