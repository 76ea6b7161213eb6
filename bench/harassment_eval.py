"""Harassment detection quality: old keyword rules, the rebuilt rules, the classifier alone
and two peers, on every labeled source apart, in one run.

    python -m bench.harassment_eval [--max-rows N] [--markdown PATH]

Sets (``streams.commands.model_data.evaluation_sets``; the shipped model never trained on them):

* Wikipedia talk-page comments first: the Jigsaw held-out rows (``hurelyyu_train_head300``,
  the head of Jigsaw's train.csv), the Jigsaw ``fastbert_val_sample`` rows (reported apart:
  their labels disagree with the comments for every detector), Wikipedia Detox 250 and CAT.
* HateCheck, per functionality (counter-speech, quoting, negation, neutral identity
  mentions, ...): where a toxicity model fails on hate-speech tests.
* bias_madlibs_77k: the share of NOT_BAD template sentences ("I am a gay Muslim woman") on
  which a detector fires: naming an identity must not count as an attack.
* For reference, the Jigsaw dev rows the model *was* trained on (in-sample).

Rules see each comment as text added to an article talk page by a registered editor
("positive" for rules = any harassment finding, or medium severity and above).
Peers: alt-profanity-check was trained on Jigsaw's toxic-comment data, which holds the
Jigsaw rows scored here (its figures on every Jigsaw set are in-sample, and probably on the
other Wikipedia sets' sources too); better-profanity is a word list. The old keyword
rules are ``bench/baselines/harassment-keywords-2026.11.yaml`` (the pack before the
classifier), run with today's engine.
"""

from __future__ import annotations

import argparse
import math
import random
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.common import SHARED_DATA, require
from detectors.base import Category, Severity
from detectors.classifier import TextClassifier, load_model, shipped_model_dirs
from detectors.rules.engine import RuleEngine
from detectors.rules.examples import example_change
from detectors.rules.loader import load_rules
from detectors.rules.model import Example
from detectors.shipped import shipped_config_dir
from streams.commands.model import auc
from streams.commands.model_data import EvalSet, evaluation_sets, training_sample

LABELED = SHARED_DATA / "labeled"
BASELINE = Path(__file__).resolve().parent / "baselines" / "harassment-keywords-2026.11.yaml"
SLOW_PEER_ROWS = 1000
Detect = Callable[[Sequence[str]], list[float]]  # a score per text (0/1 for yes/no detectors)


def rules_detector(engine: RuleEngine, min_severity: Severity) -> Detect:
    def detect(texts: Sequence[str]) -> list[float]:
        engine.clear_memo()
        out = []
        for text in texts:
            change, ctx = example_change(Example(title="Talk:Example page", added_text=text))
            fired = any(
                f.category == Category.HARASSMENT and f.severity.rank >= min_severity.rank
                for f in engine.evaluate(change, ctx)
            )
            out.append(float(fired))
        return out

    return detect


def engine_for(rules_dir: Path, classifiers: dict[str, TextClassifier]) -> RuleEngine:
    rules, issues = load_rules([rules_dir], classifiers.keys())
    if issues:
        raise SystemExit("\n".join(str(i) for i in issues))
    return RuleEngine(rules, classifiers=classifiers)


def old_rules_dir(tmp: Path) -> Path:
    """Today's rule directory with the harassment pack swapped for the keyword baseline."""
    out = tmp / "rules"
    shutil.copytree(shipped_config_dir() / "rules", out)
    shutil.copyfile(BASELINE, out / "harassment.yaml")
    return out


def classifier_detector(model: TextClassifier) -> Detect:
    def detect(texts: Sequence[str]) -> list[float]:
        return [model.score(t) for t in texts]

    return detect


def peers() -> dict[str, tuple[Detect, str]]:
    out: dict[str, tuple[Detect, str]] = {}
    try:
        from profanity_check import predict_prob
    except ImportError:
        print("alt-profanity-check is not installed (pip install -e '.[bench]'): skipped")
    else:
        out["alt-profanity-check"] = (
            lambda texts: [float(x) for x in predict_prob(list(texts))],
            "trained on Jigsaw: in-sample on Jigsaw sets",
        )
    try:
        from better_profanity import profanity
    except ImportError:
        print("better-profanity is not installed (pip install -e '.[bench]'): skipped")
    else:
        profanity.load_censor_words()
        out["better-profanity"] = (
            lambda texts: [float(profanity.contains_profanity(t)) for t in texts],
            f"word list; scored on a sample of at most {SLOW_PEER_ROWS:,} rows of each set "
            "(it checks about 20 long comments a second)",
        )
    return out


def counts(scores: Sequence[float], labels: Sequence[int], t: float) -> tuple[int, int, int]:
    tp = sum(1 for s, y in zip(scores, labels, strict=True) if s >= t and y)
    fp = sum(1 for s, y in zip(scores, labels, strict=True) if s >= t and not y)
    return tp, fp, sum(labels) - tp


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def fmt(x: float) -> str:
    return "   -" if math.isnan(x) else f"{x:.3f}"


class Report:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)


def cap(s: EvalSet, max_rows: int | None) -> EvalSet:
    if max_rows is None or len(s.texts) <= max_rows:
        return s
    idx = sorted(random.Random(13).sample(range(len(s.texts)), max_rows))
    return EvalSet(
        s.name,
        [s.texts[i] for i in idx],
        [s.labels[i] for i in idx],
        [s.groups[i] for i in idx],
        s.wikipedia,
    )


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.harassment_eval", description=__doc__)
    ap.add_argument("--max-rows", type=int, default=None, help="sample each set to N rows")
    ap.add_argument("--markdown", type=Path, default=None, help="also write the report here")
    args = ap.parse_args(argv)
    out = Report()
    model_dir = shipped_model_dirs()["toxicity"]
    model = load_model(model_dir)
    classifiers = {"toxicity": model}
    sets = [cap(s, args.max_rows) for s in evaluation_sets(require(LABELED))]
    sets.append(cap(training_sample(require(LABELED)), args.max_rows))
    with tempfile.TemporaryDirectory() as tmp:
        old = engine_for(old_rules_dir(Path(tmp)), classifiers)
    new = engine_for(shipped_config_dir() / "rules", classifiers)
    op, hp = model.thresholds["operating"], model.thresholds["high_precision"]
    # name -> (detect, thresholds to report at, note)
    detectors: dict[str, tuple[Detect, dict[str, float], str]] = {
        "keyword rules (old), any": (rules_detector(old, Severity.LOW), {"": 0.5}, ""),
        "keyword rules (old), medium+": (rules_detector(old, Severity.MEDIUM), {"": 0.5}, ""),
        "rules (new), any": (rules_detector(new, Severity.LOW), {"": 0.5}, ""),
        "rules (new), medium+": (rules_detector(new, Severity.MEDIUM), {"": 0.5}, ""),
        "classifier alone": (
            classifier_detector(model),
            {f"@op {op:.2f}": op, f"@hp {hp:.2f}": hp},
            "thresholds from validation folds of its training data",
        ),
    }
    for name, (detect, note) in peers().items():
        detectors[name] = (detect, {"@0.5": 0.5} if "check" in name else {"": 0.5}, note)

    size = sum(p.stat().st_size for p in model_dir.iterdir() if p.is_file())
    out(f"# Harassment detection: {model.name} {model.version}")
    out()
    sampled = f" --max-rows {args.max_rows}" if args.max_rows else ""
    out(f"Reproduce: `python -m bench.harassment_eval{sampled}` (figures from one run).")
    out(f"Model: {len(model.weights):,} features, {size / 1e6:.2f} MB on disk ({model_dir.name}/).")
    out("Positive = any harassment finding (rules), score >= threshold (classifier, peers).")
    out("AUC only for detectors with a score. Peers' notes say where their training data overlaps.")
    out()
    # (detector, set) -> (scores, labels, groups) of the rows that detector scored
    scores: dict[tuple[str, str], tuple[list[float], list[int], list[str]]] = {}
    spent: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])  # texts, seconds
    for s in sets:
        for name, (detect, _t, _n) in detectors.items():
            part = cap(s, SLOW_PEER_ROWS) if name == "better-profanity" else s
            t0 = time.perf_counter()
            scored = detect(part.texts)
            spent[name][0] += len(part.texts)
            spent[name][1] += time.perf_counter() - t0
            scores[(name, s.name)] = (scored, part.labels, part.groups)

    out("## Per source (Wikipedia talk-page sets first)")
    out()
    out("| set | rows | positive | detector | P | R | F1 | AUC |")
    out("|---|---:|---:|---|---:|---:|---:|---:|")
    for s in sets:
        if s.name in ("HateCheck", "bias madlibs"):
            continue
        for name, (_d, thresholds, _n) in detectors.items():
            sc, labels, _g = scores[(name, s.name)]
            has_auc = len(thresholds) > 1 or "@" in next(iter(thresholds))
            a = auc(sc, labels) if has_auc else math.nan
            for label, t in thresholds.items():
                p, r, f1 = prf(*counts(sc, labels, t))
                out(
                    f"| {s.name} | {len(labels):,} | {sum(labels):,} | {name} {label} | "
                    f"{p:.3f} | {r:.3f} | {f1:.3f} | {fmt(a)} |"
                )
    out()
    madlibs = next(s for s in sets if s.name == "bias madlibs")
    out("## Identity terms: bias_madlibs_77k (share of rows a detector fires on)")
    out()
    out("| detector | NOT_BAD (false-positive rate) | BAD |")
    out("|---|---:|---:|")
    for name, (_d, thresholds, _n) in detectors.items():
        sc, _l, groups = scores[(name, madlibs.name)]
        for label, t in thresholds.items():
            fired = {"NOT_BAD": 0, "BAD": 0}
            total = {"NOT_BAD": 0, "BAD": 0}
            for g, x in zip(groups, sc, strict=True):
                total[g] += 1
                fired[g] += x >= t
            out(
                f"| {name} {label} | {fired['NOT_BAD'] / max(total['NOT_BAD'], 1):.4f} | "
                f"{fired['BAD'] / max(total['BAD'], 1):.4f} |"
            )
    out()
    hc = next(s for s in sets if s.name == "HateCheck")
    funcs = sorted(set(hc.groups))
    # better-profanity scored a sample only: not in the per-functionality table
    shown = [
        "rules (new), any",
        "keyword rules (old), any",
        "classifier alone",
        "alt-profanity-check",
    ]
    shown = [n for n in shown if n in detectors]
    out("## HateCheck per functionality (share of cases each detector gets right)")
    out()
    out("| functionality | cases | gold | " + " | ".join(shown) + " |")
    out("|---|---:|---|" + "---:|" * len(shown))
    for func in funcs:
        idx = [i for i, g in enumerate(hc.groups) if g == func]
        gold = {hc.labels[i] for i in idx}
        cells = []
        for name in shown:
            sc = scores[(name, hc.name)][0]
            t = next(iter(detectors[name][1].values()))
            right = sum(1 for i in idx if (sc[i] >= t) == bool(hc.labels[i]))
            cells.append(f"{right / len(idx):.2f}")
        g = "hateful" if gold == {1} else "non-hateful" if gold == {0} else "mixed"
        out(f"| {func} | {len(idx)} | {g} | " + " | ".join(cells) + " |")
    out()
    out("## Speed (texts per second over every set above, one core, this machine)")
    out()
    out("| detector | texts | texts/s |")
    out("|---|---:|---:|")
    for name in detectors:
        n, seconds = spent[name]
        out(f"| {name} | {n:,.0f} | {n / seconds:,.0f} |")
    out()
    for name, (_d, _t, note) in detectors.items():
        if note:
            out(f"- {name}: {note}")
    if args.markdown is not None:
        args.markdown.write_text("\n".join(out.lines) + "\n")
        print(f"written: {args.markdown}")


if __name__ == "__main__":
    main()
