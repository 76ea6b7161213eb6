"""The ``rcwatch`` command line's parser: every command group's options, and nothing else.

Standard library only, so that ``rcwatch --help`` (and a mistyped option) answers at once;
the commands import what they use when they run.
"""

from __future__ import annotations

import argparse
from typing import Any

from streams import __version__

__all__ = ["SCAN_FIELDS", "build_parser"]

SCAN_FIELDS = ("summary", "added_text", "title", "removed_text", "user")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="settings file (default: config/rcwatch.yaml)")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    p.add_argument("--log-format", choices=["text", "json"])


def _workers(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not 1 <= n <= 256:
        raise argparse.ArgumentTypeError("between 1 and 256")
    return n


def _workers_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--workers",
        type=_workers,
        metavar="N",
        help="run the rules in N processes (default: the machine's cores; 1: this process "
        "only); the output is the same whatever N",
    )


def _state_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--state-dir", metavar="DIR", help="where the alert store is (state_dir; alerts.db)"
    )


def _common_with_state(p: argparse.ArgumentParser) -> None:
    _common(p)
    _state_dir(p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rcwatch",
        description="Real-time Trust & Safety monitor over Wikimedia EventStreams.",
    )
    parser.add_argument("--version", action="version", version=f"rcwatch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    run = sub.add_parser(
        "run",
        help="monitor a live event stream",
        description="Read an EventStreams stream, run the detectors, deliver alerts. Resumes "
        "from the checkpoint in the state directory.",
    )
    _common(run)
    run.add_argument("--stream-url", metavar="URL", help="EventStreams URL; join streams with ','")
    run.add_argument(
        "--since",
        metavar="TIME",
        help="where the first start begins (later starts resume from the checkpoint, or "
        "from this first start's origin): ISO-8601, epoch ms, or an age (15m, 2h, 1d)",
    )
    run.add_argument("--state-dir", metavar="DIR", help="checkpoint, ledgers, default outputs")
    run.add_argument("--archive", metavar="DIR", help="raw-event archive directory")
    run.add_argument("--no-archive", action="store_true", help="do not archive raw events")
    run.add_argument("--alerts-jsonl", metavar="FILE", help="JSONL file alerts are appended to")
    run.add_argument("--metrics-addr", metavar="HOST:PORT", help="/metrics and /healthz address")
    run.add_argument("--user-agent", metavar="TEXT", help="descriptive User-Agent with contact")
    run.add_argument(
        "--reset-checkpoint",
        action="store_true",
        help="forget the saved position and origin; start from --since (or the live end)",
    )

    replay = sub.add_parser(
        "replay",
        help="run the detectors over recorded files",
        description="Replay recorded NDJSON files (plain or .gz; plain events or capture "
        "wrappers, including rcwatch's own archive) through the full pipeline.",
    )
    replay.add_argument("files", nargs="+", metavar="FILE")
    _common(replay)
    replay.add_argument(
        "--speed", metavar="max|N", help="'max' or a multiple of real time (by event time)"
    )
    replay.add_argument("--alerts-jsonl", metavar="FILE", help="also append alerts to this file")
    replay.add_argument(
        "--metrics-addr", metavar="HOST:PORT", help="serve /metrics while replaying"
    )
    replay.add_argument("--quiet", action="store_true", help="do not print alerts")
    _workers_option(replay)
    replay.add_argument("--no-progress", action="store_true", help="no progress bar")

    _rules(sub, _common)
    _model(sub, _common)
    _sinks(sub, _common)
    _scaleout(sub, _common)
    _config(sub, _common)
    _alerts(sub, _common_with_state)
    _triage(sub)

    demo = sub.add_parser(
        "demo",
        help="offline demo over bundled recorded events",
        description="Serve a bundled sample of recorded events over a local server that speaks "
        "the EventStreams protocol, and monitor it. Needs no network.",
    )
    _common(demo)
    demo.add_argument("--speed", metavar="N", default="4", help="multiple of real time (default 4)")
    demo.add_argument("--state-dir", metavar="DIR", help="keep state here (default: a temp dir)")
    demo.add_argument("--metrics-addr", metavar="HOST:PORT", help="default 127.0.0.1:9410")
    demo.add_argument(
        "--hold", action="store_true", help="keep running after the sample (until Ctrl-C)"
    )
    demo.add_argument(
        "--triage",
        action="store_true",
        help="also serve the triage page (a sign-in link is printed; see docs/triage.md)",
    )
    demo.add_argument("--triage-addr", metavar="HOST:PORT", help="default 127.0.0.1:9411")
    demo.add_argument(
        "--keep-sinks",
        action="store_true",
        help="also deliver to the remote sinks of the settings file (Redis, Kafka, webhooks...)",
    )
    return parser


def _rules(sub: Any, common: Any) -> None:
    rules = sub.add_parser(
        "rules",
        help="validate, test, backtest and scan rule packs",
        description="Tools for rule maintainers. Rule files come from the settings "
        "(detectors.rules_paths, default config/rules) unless --rules is given.",
    )
    rsub = rules.add_subparsers(dest="rules_command", metavar="SUBCOMMAND")
    rsub.required = True

    def paths(p: argparse.ArgumentParser) -> None:
        common(p)
        p.add_argument(
            "--rules",
            metavar="PATH",
            action="append",
            help="rule file or directory (repeatable); default: from the settings",
        )

    v = rsub.add_parser(
        "validate",
        help="check rule files: every error, with file, line and rule id",
        description="Static checks: schema, unknown keys, regexes RE2 cannot compile, "
        "unknown recognizers, facts and fields, missing keyword files, duplicate ids, "
        "enabled rules without an example that must match. Exit 1 on any problem.",
    )
    paths(v)
    ls = rsub.add_parser(
        "list",
        help="every rule: id, category, severity, enabled",
        description="Every rule the settings load, disabled ones included: id, category, "
        "severity, enabled and title (--json: one object per rule, with file and line).",
    )
    paths(ls)
    _state_dir(ls)
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    t = rsub.add_parser(
        "test",
        help="run every rule's examples",
        description="Run each rule's match and no_match examples (each rule alone, disabled "
        "rules included). Exit 1 on any failure.",
    )
    paths(t)
    t.add_argument("--rule", metavar="ID", action="append", help="only these rules")
    b = rsub.add_parser(
        "backtest",
        help="run the rules over recorded history",
        description="Replay recorded events (NDJSON, plain or .gz, plain events or capture "
        "wrappers, rcwatch's archive) through the rules, disabled ones included: hits, hits "
        "per 10k events, cost per rule, and a few redacted sample hits each.",
    )
    b.add_argument("files", nargs="+", metavar="FILE")
    paths(b)
    _state_dir(b)
    _workers_option(b)
    b.add_argument("--samples", type=int, default=3, help="sample hits shown per rule")
    b.add_argument(
        "--cost-every",
        type=int,
        default=10,
        metavar="N",
        help="time each rule alone on every Nth event (default 10)",
    )
    b.add_argument("--only-enabled", action="store_true", help="skip disabled rules")
    b.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    s = rsub.add_parser(
        "scan",
        help="run the rules over texts, one per line",
        description="Each input line is a text, or a JSON object with 'text' (and optionally "
        "the partial-event keys of rule examples: title, namespace, user, type...). Prints "
        "one JSON line per input with its findings and redacted spans; disabled rules are "
        "included (each finding says whether its rule is enabled), as in test and backtest. "
        "Scope is ignored; added_text is scanned as a comment on an article talk page.",
    )
    s.add_argument("input", nargs="?", default="-", metavar="FILE|-")
    paths(s)
    s.add_argument("--field", choices=SCAN_FIELDS, default="added_text")
    s.add_argument("--only-enabled", action="store_true", help="skip disabled rules")


def _model(sub: Any, common: Any) -> None:
    model = sub.add_parser(
        "model",
        help="train, measure and try the text classifiers rules use",
        description="Text classifiers (classifier: NAME in a rule). Models come from the "
        "settings (detectors.classifiers, plus the shipped config/models) unless --model "
        "is given.",
    )
    msub = model.add_subparsers(dest="model_command", metavar="SUBCOMMAND")
    msub.required = True

    def which(p: argparse.ArgumentParser) -> None:
        common(p)
        p.add_argument("--name", default="toxicity", help="model name (default: toxicity)")
        p.add_argument("--model", metavar="DIR", help="model directory (overrides --name)")

    t = msub.add_parser(
        "train",
        help="train a model (shared labeled data and/or your own CSV)",
        description="Fit a linear model over word and character n-grams. Thresholds and "
        "calibration are chosen on out-of-fold scores of the validation examples (the "
        "shared Wikipedia talk sample, or your CSV rows), never on an evaluation set. "
        "Deterministic for the same data and --seed. Needs: pip install 'rcwatch[train]'.",
    )
    common(t)
    t.add_argument("--out", metavar="DIR", required=True, help="model directory to write")
    t.add_argument(
        "--shared",
        metavar="DIR",
        help="the shared data's labeled/ directory: train with the shipped recipe",
    )
    t.add_argument(
        "--csv",
        metavar="FILE",
        action="append",
        default=[],
        help="your labeled CSV (text,label[,weight]); repeatable; its rows also form the "
        "validation folds",
    )
    t.add_argument("--csv-weight", type=float, default=5.0, help="weight of CSV rows (5)")
    t.add_argument(
        "--csv-language",
        metavar="LANG",
        default="",
        help="the language of CSV rows without a language column (default: the model's "
        "default language, en); they train and validate that language's model",
    )
    t.add_argument(
        "--identity-terms",
        metavar="FILE",
        help="terms dropped before scoring (default: config/models/identity_terms.txt)",
    )
    t.add_argument("--name", default="toxicity", help="the model's name (default: toxicity)")
    t.add_argument("--model-version", default="1", help="a version string for model.json")
    t.add_argument("--seed", type=int, default=13)
    t.add_argument("--folds", type=int, default=5)
    t.add_argument("--c", type=float, default=2.0, help="inverse regularisation (2.0)")
    t.add_argument("--max-features", type=int, default=150_000)
    t.add_argument(
        "--max-rows-per-source",
        type=int,
        metavar="N",
        help="sample each source down to N rows (a quick trial run)",
    )

    e = msub.add_parser(
        "eval",
        help="measure a model on a labeled CSV",
        description="AUC, and precision/recall at the model's thresholds, on a labeled CSV "
        "(text,label) the model was not trained on.",
    )
    which(e)
    e.add_argument("--csv", metavar="FILE", required=True)
    e.add_argument("--language", metavar="LANG", help="the texts' language (default: en)")

    s = msub.add_parser("score", help="score texts (arguments, or lines on stdin)")
    which(s)
    s.add_argument("--language", metavar="LANG", help="the texts' language (default: en)")
    s.add_argument("texts", nargs="*", metavar="TEXT")

    i = msub.add_parser("info", help="what a model is: version, thresholds, figures, data")
    which(i)


def _sinks(sub: Any, common: Any) -> None:
    sinks = sub.add_parser(
        "sinks",
        help="inspect sinks, test a target, redrive dead letters",
        description="Operate the alert sinks configured in the settings file.",
    )
    ssub = sinks.add_subparsers(dest="sinks_command", metavar="SUBCOMMAND")
    ssub.required = True
    st = ssub.add_parser("status", help="spool, dead letters and route of every sink")
    common(st)
    st.add_argument("--json", action="store_true", help="one JSON object per sink")
    t = ssub.add_parser("test", help="send one synthetic alert to a sink's target")
    common(t)
    t.add_argument("name", help="sink name from the settings file")
    r = ssub.add_parser("redrive", help="queue a sink's dead letters for redelivery")
    common(r)
    r.add_argument("name", help="sink name from the settings file")


def _scaleout(sub: Any, common: Any) -> None:
    so = sub.add_parser(
        "scaleout",
        help="run rcwatch as several processes on a Kafka broker",
        description="Scale-out on Kafka (settings: scaleout:). See docs/scaleout.md.",
    )
    ssub = so.add_subparsers(dest="scaleout_command", metavar="SUBCOMMAND")
    ssub.required = True
    t = ssub.add_parser("topics", help="create the topics with their configs (idempotent)")
    common(t)
    t.add_argument("--bootstrap-servers", metavar="HOST:PORT", help="the Kafka brokers")
    i = ssub.add_parser(
        "ingest",
        help="EventStreams in, the events topic out",
        description="Read the stream as `rcwatch run` does and produce every raw event to the "
        "events topic (acks=all); the resume position is saved once the broker acknowledged "
        "everything before it. One ingest per state directory.",
    )
    common(i)
    i.add_argument("--bootstrap-servers", metavar="HOST:PORT", help="the Kafka brokers")
    i.add_argument("--stream-url", metavar="URL", help="EventStreams URL; join streams with ','")
    i.add_argument("--since", metavar="TIME", help="where the very first start begins")
    i.add_argument("--state-dir", metavar="DIR", help="the ingest's own position and lock")
    i.add_argument("--user-agent", metavar="TEXT", help="descriptive User-Agent with contact")
    i.add_argument("--metrics-addr", metavar="HOST:PORT", help="/metrics and /healthz address")
    i.add_argument(
        "--reset-checkpoint", action="store_true", help="forget the saved position and origin"
    )
    w = ssub.add_parser(
        "worker",
        help="a fetch worker: events in, events with their text out (run N of them)",
        description="Join the fetch workers' consumer group: decode each event of the "
        "partitions assigned, fetch the text rules need, pass every event on to the enriched "
        "topic, and commit only what the broker acknowledged.",
    )
    common(w)
    w.add_argument("--bootstrap-servers", metavar="HOST:PORT", help="the Kafka brokers")
    w.add_argument("--metrics-addr", metavar="HOST:PORT", help="/metrics and /healthz address")
    win = ssub.add_parser(
        "windows",
        help="a window stage: pattern observations in, fired findings out (run N of them)",
        description="With scaleout.windows: partitioned, join the window stages' consumer "
        "group: restore the group windows of the observations partitions assigned from their "
        "changelog, count the workers' observations in stream order, and pass the findings "
        "of full windows on to the fired topic for the detect stage.",
    )
    common(win)
    win.add_argument("--bootstrap-servers", metavar="HOST:PORT", help="the Kafka brokers")
    win.add_argument("--metrics-addr", metavar="HOST:PORT", help="/metrics and /healthz address")
    d = ssub.add_parser(
        "detect",
        help="the detect stage: enriched events through the detectors to the sinks",
        description="Read the enriched topic (every partition) through the same pipeline as "
        "`rcwatch run`: detectors, pattern windows, throttle, sinks. Its checkpoint holds the "
        "topic's offsets with the pattern state. One per state directory.",
    )
    common(d)
    d.add_argument("--bootstrap-servers", metavar="HOST:PORT", help="the Kafka brokers")
    d.add_argument("--state-dir", metavar="DIR", help="checkpoint, ledgers, default outputs")
    d.add_argument("--alerts-jsonl", metavar="FILE", help="JSONL file alerts are appended to")
    d.add_argument("--metrics-addr", metavar="HOST:PORT", help="/metrics and /healthz address")


def _config(sub: Any, common: Any) -> None:
    c = sub.add_parser(
        "config",
        help="check the configuration, or show the settings in effect",
        description="check: settings, rules, classifiers and secrets, every problem with file "
        "and line (exit 2 if any). show: every setting's value and where it came from (the "
        "settings file's line, an option, or the default); secrets as their references only. "
        "Both take --user-agent and --stream-url as rcwatch run does.",
    )
    csub = c.add_subparsers(dest="config_command", metavar="SUBCOMMAND")
    csub.required = True
    for name, text in (
        ("check", "is the configuration usable?"),
        ("show", "every setting in effect, and where it came from"),
    ):
        p = csub.add_parser(name, help=text)
        common(p)
        # the options rcwatch run takes over the file, so that a check says what run would
        p.add_argument("--stream-url", metavar="URL", help="as rcwatch run --stream-url")
        p.add_argument("--user-agent", metavar="TEXT", help="as rcwatch run --user-agent")
        p.set_defaults(since=None, state_dir=None, metrics_addr=None)


def _triage(sub: Any) -> None:
    t = sub.add_parser(
        "triage",
        help="serve the triage page over the alert store (without monitoring)",
        description="Serve the triage page (recent alerts, verdicts, per-rule precision) over "
        "the alert store, for a team sharing one store while rcwatch run writes it elsewhere. "
        "Every request is authenticated: triage.token or triage.trusted_proxy_header must be "
        "set. Also serves /metrics (rcwatch_alert_verdicts_total). See docs/triage.md.",
    )
    _common_with_state(t)
    t.add_argument("--addr", metavar="HOST:PORT", help="default triage.addr (127.0.0.1:9411)")
    t.add_argument("--metrics-addr", metavar="HOST:PORT", help="/metrics address")


def _alerts(sub: Any, common: Any) -> None:
    a = sub.add_parser(
        "alerts",
        help="recent alerts from the alert store, and verdicts on them",
        description="The alert store the monitor writes (store: in the settings): list and "
        "show alerts, and record whether an alert was right (true), wrong (false) or unsure. "
        "Verdicts give each rule's measured precision (rcwatch rules list).",
    )
    asub = a.add_subparsers(dest="alerts_command", metavar="SUBCOMMAND")
    asub.required = True

    def filters(p: argparse.ArgumentParser) -> None:
        common(p)
        p.add_argument("--rule", action="append", metavar="ID", help="only this rule (repeatable)")
        p.add_argument("--category", action="append", choices=["privacy", "doxxing", "harassment"])
        p.add_argument("--min-severity", choices=["low", "medium", "high", "critical"])
        p.add_argument("--wiki", action="append", metavar="WIKI", help="e.g. enwiki (repeatable)")
        p.add_argument("--json", action="store_true", help="one JSON object per line")

    ls = asub.add_parser("list", help="recent alerts, newest first")
    filters(ls)
    ls.add_argument("--since", metavar="TIME", help="ISO-8601, epoch ms, or an age (2h, 1d)")
    ls.add_argument("--limit", type=int, default=50, help="at most this many (50)")
    fo = asub.add_parser("follow", help="print alerts as the monitor stores them (Ctrl-C stops)")
    filters(fo)
    fo.add_argument(
        "--backlog-seconds", type=float, default=0.0, help="also those stored this long ago"
    )
    fo.add_argument("--interval-seconds", type=float, default=1.0, help="how often to look (1)")
    sh = asub.add_parser("show", help="one alert: rule, why, redacted evidence, verdicts")
    common(sh)
    sh.add_argument("id", metavar="ID", help="the alert id, or a unique prefix (6+ characters)")
    sh.add_argument("--json", action="store_true")
    x = asub.add_parser(
        "export-labels",
        help="verdicts as labeled training rows (text,label) for rcwatch model train --csv",
        description="Every alert of a text rule with a true or false verdict, its added text "
        "fetched again from its wiki (deleted or hidden revisions are left out) with personal "
        "data redacted, as the CSV `rcwatch model train --csv` reads. Unsure verdicts and "
        "pattern rules are left out.",
    )
    common(x)
    x.add_argument("--out", metavar="FILE", required=True, help="the CSV to write")
    x.add_argument("--rule", action="append", metavar="ID", help="only this rule (repeatable)")
    x.add_argument(
        "--category",
        action="append",
        choices=["privacy", "doxxing", "harassment"],
        help="default: harassment (what the toxicity classifier learns)",
    )
    x.add_argument(
        "--api-url",
        metavar="TEMPLATE",
        help="where the wikis' API is (content.api_url), e.g. the demo's stand-in",
    )
    v = asub.add_parser(
        "verdict",
        help="record whether an alert was right",
        description="Record whether an alert was right. The verdict names its judge as cli: "
        "and the account this command runs as (from its user id, not $USER); see "
        "docs/triage.md for what that proves.",
    )
    common(v)
    v.add_argument("id", metavar="ID", help="the alert id, or a unique prefix (6+ characters)")
    v.add_argument("verdict", choices=["true", "false", "unsure"])
    v.add_argument("--note", metavar="TEXT", help="why (kept with the verdict)")
