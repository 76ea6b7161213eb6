"""Equivalence is the contract: the same events give the same alerts (ids, rules, counts) from
``rcwatch run`` and from ingest + two fetch workers + the detect stage, with one worker
killed (-9) mid-run, and with the detect stage killed and a standby taking over. Real
parts: a Tansu broker, the local EventStreams server, the local MediaWiki API serving the
texts the demo's synthetic edits added."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from detectors.windows import group_key
from streams.commands.demo import load_content
from streams.scaleout.patterns import group_partition
from streams.scaleout.records import parse_position
from streams.source.checkpoint import CheckpointStore
from streams.standins.fake_mediawiki import FakeMediaWiki
from streams.standins.sse_server import EventStreamsServer
from tests.conftest import Processes, wait_for
from tests.harness import TEST_UA
from tests.sinks.endpoints import free_port
from tests.streams.scaleout.conftest import (
    TopicReader,
    metric,
    metric_at_least,
    metric_is,
    metric_present,
    metrics_url,
    wait_for_async,
)

pytestmark = pytest.mark.scaleout


@pytest.fixture
async def api() -> AsyncIterator[FakeMediaWiki]:
    fake = FakeMediaWiki()
    await fake.start()
    load_content(fake)
    try:
        yield fake
    finally:
        await fake.stop()


def _config(tmp: Path, server: EventStreamsServer, api: FakeMediaWiki, scaleout: str) -> Path:
    path = tmp / "rcwatch.yaml"
    path.write_text(
        f"stream: {{url: '{server.url}', user_agent: '{TEST_UA}'}}\n"
        f"content: {{enabled: true, api_url: '{api.api_url_template}', max_wait_seconds: 5.0}}\n"
        "archive: {enabled: false}\nmetrics: {enabled: false}\n"
        "sinks: [{type: jsonl, path: alerts.jsonl}]\n"
        f"{scaleout}"
    )
    return path


def _section(broker: str, name: str, *, partitioned: bool = False) -> str:
    """The scale-out settings of one run: topics, groups and leases of its own (each run is
    another deployment on the module's broker); ``partitioned``: the pattern windows in
    window stages (3 window partitions), the page memory in the workers."""
    windows = (
        "  windows: partitioned\n  window_partitions: 3\n"
        f"  observations_topic: ob-{name}\n  fired_topic: fi-{name}\n"
        f"  pages_changelog_topic: pc-{name}\n  windows_changelog_topic: wc-{name}\n"
        f"  windows_group: w-{name}\n"
    )
    return (
        "scaleout:\n"
        f"  bootstrap_servers: '{broker}'\n"
        f"  events_topic: ev-{name}\n  events_partitions: 4\n"
        f"  enriched_topic: en-{name}\n"
        f"  worker_group: g-{name}\n  worker_batch_events: 20\n"
        f"  ingest_group: i-{name}\n  ingest_positions_topic: pos-{name}\n"
        f"  detect_group: d-{name}\n  detect_checkpoints_topic: cp-{name}\n"
        "  detect_publish_interval_seconds: 0.5\n"
        "  producer_max_batch_bytes: 1\n"  # Tansu: one record per batch
        "  session_timeout_seconds: 6.0\n  heartbeat_interval_seconds: 1.0\n"
        # the merge waits out the takeover however slow a busy machine makes it
        "  merge_max_wait_seconds: 600\n"
    ) + windows * partitioned


async def _ingest(
    out: Path, server: EventStreamsServer, api: FakeMediaWiki, broker: str, processes: Processes,
    *, partitioned: bool = False,
) -> tuple[tuple[str, ...], asyncio.subprocess.Process]:  # fmt: skip
    """The run's settings (as the stages' common arguments) and its ingest, reading."""
    config = _config(out, server, api, _section(broker, out.name, partitioned=partitioned))
    common = ("--config", str(config), "--log-level", "warning")
    ingest = await processes.rcwatch(
        "scaleout", "ingest", *common, "--state-dir", str(out / "ingest")
    )
    await wait_for((out / "ingest" / "origin.json").exists, 60, "the ingest's origin")
    return common, ingest


async def _detected_all(reader: TopicReader, state: Path, topic: str) -> None:
    """Wait until the detect stage on ``state`` has checkpointed every event in ``topic``."""
    await reader.poll()
    ends = {p: reader.end(p) for p in reader.partitions()}

    def done() -> bool:
        cp = CheckpointStore(state).load()
        if cp is None:
            return False
        # with partitioned windows, the position also names the fired topic (fi-<run>)
        position = parse_position(cp.last_event_id, topic, also="fi-" + topic[3:])
        return all(position.get(p, 0) >= end for p, end in ends.items())

    await wait_for(done, 120, f"the detect stage on {state.name} to read everything")


def _alerts(path: Path) -> Counter[tuple[str, str, int]]:
    lines = [orjson.loads(x) for x in path.read_bytes().splitlines()] if path.exists() else []
    return Counter((a["id"], a["rule"], a["count"]) for a in lines)


async def _single_process(
    tmp: Path, api: FakeMediaWiki, events: list[bytes], processes: Processes
) -> Counter[tuple[str, str, int]]:
    server = EventStreamsServer()
    await server.start()
    try:
        config = _config(tmp, server, api, "")
        state = tmp / "state"
        proc = await processes.rcwatch(
            "run", "--config", str(config), "--state-dir", str(state), "--log-level", "warning"
        )
        await wait_for((state / "origin.json").exists, 60, "the monitor's origin")
        server.publish(events)

        def caught_up() -> bool:
            cp = CheckpointStore(state).load()
            return cp is not None and server.caught_up(cp.last_event_id)

        await wait_for(caught_up, 120, "the single process to catch up")
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 60) == 0
        return _alerts(tmp / "alerts.jsonl")
    finally:
        await server.stop()


async def _scale_out(
    out: Path, broker: str, api: FakeMediaWiki, events: list[bytes], processes: Processes,
    *, workers_n: int, kill: bool, windows_n: int = 0, first_part: int = 300,
) -> Counter[tuple[str, str, int]]:  # fmt: skip
    """ingest + ``workers_n`` fetch workers + detect over ``events``; with ``kill``, the
    busiest worker is killed (-9) once every worker holds partitions. With ``windows_n``,
    the windows are partitioned over that many window stages, and ``kill`` kills the
    busiest of them too, at the same moment. The alerts written."""
    out.mkdir()  # noqa: ASYNC240 (set-up, before anything runs)
    name = out.name
    server = EventStreamsServer()
    await server.start()
    reader = TopicReader(broker, f"en-{name}")
    try:
        common, ingest = await _ingest(
            out, server, api, broker, processes, partitioned=windows_n > 0
        )
        workers = [
            await processes.rcwatch("scaleout", "worker", *common, "--metrics-addr", "127.0.0.1:0")
            for _ in range(workers_n)
        ]
        urls = [await metrics_url(processes, w) for w in workers]
        stages = [
            await processes.rcwatch("scaleout", "windows", *common, "--metrics-addr", "127.0.0.1:0")
            for _ in range(windows_n)
        ]
        stage_urls = [await metrics_url(processes, w) for w in stages]
        detect_url = f"http://127.0.0.1:{free_port()}"
        detect = await processes.rcwatch(
            "scaleout", "detect", *common, "--state-dir", str(out / "detect"),
            "--metrics-addr", detect_url.removeprefix("http://"),
        )  # fmt: skip
        await reader.start()
        half, rest = events[:first_part], events[first_part:]
        server.publish(half)
        ids = {orjson.loads(e)["meta"]["id"] for e in events}

        async def enriched(n: int, within: float, what: str) -> None:
            deadline = time.monotonic() + within
            while len(set(reader.ids()) & ids) < n:
                if time.monotonic() > deadline:
                    pytest.fail(f"{what}: {len(set(reader.ids()) & ids)} of {n} enriched")
                await reader.poll()

        await enriched(150, 120, "the workers at work")

        async def split() -> bool:  # every worker holds partitions: assignment confirmed
            held = [await metric(u, "rcwatch_worker_assigned_partitions") for u in urls]
            return all(held) and sum(held) == 4

        await wait_for_async(split, 60, "every worker holding partitions")
        held_windows = "rcwatch_windows_assigned_partitions"
        if stages:

            async def windows_split() -> bool:
                held = [await metric(u, held_windows) for u in stage_urls]
                return all(held) and sum(held) == 3

            await wait_for_async(windows_split, 60, "every window stage holding partitions")
        if kill and stages:
            # once the first part is counted (the detect stage has let it through: it waits
            # for the windows), kill the window stage holding the brigade's window: two of
            # its three attacks are in; the third, after the kill, fills it only if the
            # window's state moved with its partition
            ordered = 'rcwatch_merge_events_total{how="ordered"}'
            await wait_for_async(
                lambda: metric_at_least(detect_url, ordered, first_part - 5), 120, "the first part"
            )
            brigade = group_partition("pattern.brigading", group_key(("Example victim",)), 3)
            label = f'rcwatch_windows_table_keys{{partition="{brigade}"}}'
            holding = [await metric_present(u, label) for u in stage_urls]
            assert sum(holding) == 1, holding
            victim = stages.pop(holding.index(True))
            stage_urls.pop(holding.index(True))
            victim.send_signal(signal.SIGKILL)
            await victim.wait()
        if kill:
            passed = [await metric(u, "rcwatch_worker_records_total") for u in urls]
            busiest = passed.index(max(passed))
            victim = workers.pop(busiest)
            urls.pop(busiest)
            victim.send_signal(signal.SIGKILL)  # mid-run: its partitions move over
            await victim.wait()
            killed_at = time.monotonic()
            server.publish(rest)

            async def took_over() -> bool:
                held = [await metric(u, "rcwatch_worker_assigned_partitions") for u in urls]
                return sum(held) == 4

            await wait_for_async(took_over, 60, "the survivors to take every partition")
            if stages:

                async def windows_over() -> bool:
                    return sum([await metric(u, held_windows) for u in stage_urls]) == 3

                await wait_for_async(windows_over, 60, "the window stage to take every partition")
            assert time.monotonic() - killed_at < 60, "takeover"
            # the survivor measured its part of the takeover (the rebalance itself)
            rebalance = await metric(urls[0], "rcwatch_worker_rebalance_seconds")
            assert 0 < rebalance < 60
        else:
            server.publish(rest)
        await enriched(len(ids), 120, "every event")
        await _detected_all(reader, out / "detect", f"en-{name}")
        # the workers ran the rules; the detect stage took their answers (same rules)
        used = 'rcwatch_upstream_evaluations_total{outcome="used"}'
        differ = 'rcwatch_upstream_evaluations_total{outcome="rules_differ"}'
        assert await metric(detect_url, used) >= 300, processes.stderr(detect)
        assert await metric(detect_url, differ) == 0
        # every event went through the merge in stream order: none had to be let go early
        forced = 'rcwatch_merge_events_total{how="forced"}'
        ordered = 'rcwatch_merge_events_total{how="ordered"}'
        assert await metric(detect_url, forced) == 0
        assert await metric(detect_url, ordered) >= len(ids)
        if stage_urls:  # the windows were counted there, and their state moved on a kill
            await _windows_done(stage_urls, urls, detect_url, kill=kill)
        for proc in (detect, *stages, *workers, ingest):
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 60) == 0, processes.stderr(proc)
        return _alerts(out / "alerts.jsonl")
    finally:
        await reader.stop()
        await server.stop()


@pytest.mark.timeout(1200)
async def test_scale_out_raises_what_one_process_raises_with_one_worker_or_two_and_a_kill(
    broker: str,
    api: FakeMediaWiki,
    sample_events: list[bytes],
    tmp_path: Path,
    processes: Processes,
) -> None:
    single = tmp_path / "single"
    single.mkdir()
    expected = await _single_process(single, api, sample_events, processes)
    rules = {r for _, r, _ in expected}
    assert {"privacy.email-in-summary", "pattern.brigading"} <= rules, rules
    assert any(r.startswith("harassment.") for r in rules), "content rules ran"
    one = await _scale_out(
        tmp_path / "one", broker, api, sample_events, processes, workers_n=1, kill=False
    )
    assert one == expected
    two = await _scale_out(
        tmp_path / "two-kill", broker, api, sample_events, processes, workers_n=2, kill=True
    )
    assert two == expected
    # the windows partitioned by group key over two window stages, the page memory in the
    # workers; the busiest worker and the busiest window stage killed (-9) mid-run
    partitioned = await _scale_out(
        tmp_path / "partitioned-kill", broker, api, sample_events, processes,
        workers_n=2, kill=True, windows_n=2, first_part=200,
    )  # fmt: skip
    assert partitioned == expected
    # the detect stage killed halfway, a standby on "another host" taking over
    assert max(expected.values()) == 1
    taken_over = await _detect_takeover(
        tmp_path / "detect-kill", broker, api, sample_events, processes
    )
    assert taken_over == set(expected)


@pytest.mark.timeout(600)
async def test_two_workers_start_three_times_without_a_stall(
    broker: str,
    api: FakeMediaWiki,
    tmp_path: Path,
    processes: Processes,
) -> None:
    """The aiokafka producer stall (a topic created after the producer started) hung 3 of
    11 two-worker starts in the prototype; topics are created before anything produces."""
    server = EventStreamsServer()
    await server.start()
    try:
        for run in range(3):
            config = _config(
                tmp_path, server, api,
                "scaleout:\n"
                f"  bootstrap_servers: '{broker}'\n"
                f"  events_topic: ev-stall-{run}\n  enriched_topic: en-stall-{run}\n"
                f"  events_partitions: 4\n  worker_group: stall-{run}\n"
                "  producer_max_batch_bytes: 1\n"
                "  session_timeout_seconds: 6.0\n  heartbeat_interval_seconds: 1.0\n"
            # the merge waits out the takeover however slow a busy machine makes it
            "  merge_max_wait_seconds: 600\n",
            )  # fmt: skip
            common = ("--config", str(config), "--log-level", "warning")
            workers = [
                await processes.rcwatch(
                    "scaleout", "worker", *common, "--metrics-addr", "127.0.0.1:0"
                )
                for _ in range(2)
            ]
            urls = [await metrics_url(processes, w) for w in workers]

            async def split(urls: list[str] = urls) -> bool:
                held = [await metric(u, "rcwatch_worker_assigned_partitions") for u in urls]
                return all(held) and sum(held) == 4

            await wait_for_async(split, 60, f"start {run + 1}: both workers assigned")
            for w in workers:
                w.send_signal(signal.SIGTERM)
                assert await asyncio.wait_for(w.wait(), 60) == 0, processes.stderr(w)
    finally:
        await server.stop()


async def _windows_done(
    stage_urls: list[str], worker_urls: list[str], detect_url: str, *, kill: bool
) -> None:
    """The partitioned windows did the counting: observations went from the workers to the
    window stages, and after the kills the survivors read the dead ones' state back."""
    joined = await metric(detect_url, "rcwatch_merge_pattern_findings_total")
    assert joined > 0, "the detect stage joined the window stages' findings"
    if kill:
        restored = "rcwatch_windows_restored_records_total"
        assert sum([await metric(u, restored) for u in stage_urls]) > 0
        pages = "rcwatch_worker_restored_records_total"
        assert sum([await metric(u, pages) for u in worker_urls]) > 0
    # the detect stage kept no windows of its own
    assert await metric(detect_url, "rcwatch_window_keys") == 0


async def _detect_takeover(
    out: Path, broker: str, api: FakeMediaWiki, sample_events: list[bytes], processes: Processes
) -> set[tuple[str, str, int]]:
    """Two detect stages with state directories of their own (two hosts): one runs, the
    other stands by. kill -9 the running one halfway: the standby takes the lease and
    resumes from the checkpoint the first copied to the broker, not from the start. What
    both delivered, repeats dropped by delivery id as a queue's consumer drops them."""
    out.mkdir()  # noqa: ASYNC240 (set-up, before anything runs)
    name = out.name
    server = EventStreamsServer()
    await server.start()
    reader = TopicReader(broker, f"en-{name}")
    try:
        common, ingest = await _ingest(out, server, api, broker, processes)
        worker = await processes.rcwatch("scaleout", "worker", *common)

        async def detect(host: str) -> tuple[asyncio.subprocess.Process, str]:
            url = f"http://127.0.0.1:{free_port()}"
            proc = await processes.rcwatch(
                "scaleout", "detect", *common, "--state-dir", str(out / host),
                "--metrics-addr", url.removeprefix("http://"),
                "--alerts-jsonl", str(out / f"{host}.jsonl"),
            )  # fmt: skip
            return proc, url

        held = "rcwatch_lease_held"
        ordered = 'rcwatch_merge_events_total{how="ordered"}'
        first, first_url = await detect("host-a")
        await wait_for_async(
            lambda: metric_is(first_url, held, 1), 60, "the first detect stage active"
        )
        standby, standby_url = await detect("host-b")
        await wait_for_async(
            lambda: metric_at_least(standby_url, "rcwatch_lease_assignments_total", 1),
            60, "the second one in the group",
        )  # fmt: skip
        assert await metric(standby_url, held) == 0
        await reader.start()
        server.publish(sample_events[:300])

        async def halfway() -> bool:  # and a checkpoint copy on the broker past its start
            return (
                await metric(first_url, ordered) >= 150
                and await metric(first_url, "rcwatch_detect_checkpoint_copies_total") >= 2
            )

        await wait_for_async(halfway, 120, "the first detect stage halfway, its state copied")
        first.send_signal(signal.SIGKILL)
        await first.wait()
        server.publish(sample_events[300:])
        await wait_for_async(lambda: metric_is(standby_url, held, 1), 60, "the takeover")
        ids = {orjson.loads(e)["meta"]["id"] for e in sample_events}
        while len(set(reader.ids()) & ids) < len(ids):
            await reader.poll()
        await _detected_all(reader, out / "host-b", f"en-{name}")
        # it resumed where the copy left off, not from the topic's start
        assert await metric(standby_url, ordered) < len(ids)
        for proc in (standby, worker, ingest):
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 60) == 0, processes.stderr(proc)
        return _delivered(out / "host-a.jsonl") | _delivered(out / "host-b.jsonl")
    finally:
        await reader.stop()
        await server.stop()


def _delivered(path: Path) -> set[tuple[str, str, int]]:
    """(id, rule, count) of every alert written (a line cut short by kill -9 left out)."""
    out = set()
    for line in path.read_bytes().splitlines() if path.exists() else []:
        try:
            a = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        out.add((a["id"], a["rule"], a["count"]))
    return out
