"""Harassment detection per language and per labeled set, in one run: the classifier alone,
the rules (any severity, and medium and above), identity-term false positives, texts per
second and model size.

    python -m bench.multilingual_eval [--markdown PATH] [--max-rows N] [--refresh]

Sets:

* Every set of ``../shared/data/labeled/multilingual/``. The shipped model was trained on
  the ship-safe ones (``SHIP_SAFE_SETS``), so the classifier's scores on them come from
  held-out folds: this benchmark reruns the shipped model's training recipe with the
  settings its ``model.json`` records (same data, seed, folds) and takes every row's
  out-of-fold score, from a model that never saw that row; it checks that its figures
  equal the ones the training run recorded. The run takes about ten minutes; its scores
  are cached in ``bench/out/`` under the model's checksum (``--refresh`` redoes them).
  Sets with a non-commercial licence (``MEASURE_ONLY_SETS``: es, pt HateBR, id) and the
  languages the model does not cover are held out by construction.
* English: the evaluation sets of ``bench/harassment_eval.py`` (never trained on), in
  summary, and the English validation rows (out-of-fold like the others).
* English beyond the training domain: ``OWN_CASES`` below, written for this benchmark
  (technical and figurative violence words, counter speech, quotation, self-deprecation;
  attacks without an insult word), apart from the training templates.

Rules run as the monitor runs them: ``streams.app.build_detection`` with the shipped rule
packs, each text the added text of an edit by a registered editor to an article talk page
(namespace 1) on that language's Wikipedia (``dewiki``, ``de.wikipedia.org``), the
classifier inside them scoring held-out rows with their out-of-fold score as above.

Per set: rows, positives, base rate; P, R, F1 (and AUC for the classifier) at the
language's operating and high-precision thresholds; the rules' P, R, F1; and the
issue's goal, recall of at least 0.50 at a precision of at least the base rate + 0.15:
met or not by each detector at a threshold chosen before (the classifier's two, chosen
on validation folds; the rules as they are), and, for the classifier, the best recall at
that precision over every threshold ("R@goal": chosen on the scores measured, so it
flatters; what a threshold of the language's own could reach).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import math
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.common import SHARED_DATA, require
from detectors.base import Category, DetectionContext, Severity
from detectors.classifier import TextClassifier, load_model, shipped_model_dirs
from detectors.event import RecentChange, decode_object
from detectors.rules.engine import RuleEngine
from detectors.rules.loader import load_rules
from sinks.metrics import Metrics
from streams.app import build_detection, load_classifiers
from streams.commands.model import auc
from streams.commands.model_data import (
    MEASURE_ONLY_SETS,
    SHIP_SAFE_SETS,
    EvalSet,
    evaluation_sets,
    multilingual_sets,
    read_identity_terms,
    shared_recipe,
    training_sample,
)
from streams.settings import Settings

LABELED = SHARED_DATA / "labeled"
OUT = Path(__file__).resolve().parent / "out"
TARGET = ("de", "fr", "es", "pt", "it", "nl", "pl", "ru", "tr", "ar", "zh", "ko", "id", "hi")

# English beyond the training domain: (text, label, class). Written for this benchmark,
# not taken from the training templates (streams.commands.model_data) nor from any
# evaluation set; the goal is that none of the 0s scores at the high-precision threshold.
OWN_CASES: list[tuple[str, int, str]] = [
    ("kill this process, it has been hanging since the deploy", 0, "technical"),
    ("the old flag should be killed once the new API lands", 0, "technical"),
    ("useless blank line at the end of the template, removed", 0, "technical"),
    ("can someone nuke the stale cache on the tools server?", 0, "technical"),
    ("the maintenance script dies whenever the dump is empty", 0, "technical"),
    ("we executed the migration last night and it killed two old jobs", 0, "technical"),
    ("the citation bot keeps crashing; I had to terminate it by hand", 0, "technical"),
    ("that gadget is dead code, nobody loads it any more", 0, "technical"),
    ("he was shot by a sniper in 1944 according to the regimental history", 0, "technical"),
    ("the sources say the prisoners were executed after the trial", 0, "technical"),
    ("I'd die of embarrassment if that typo had stayed on the main page", 0, "figurative"),
    ("this backlog is killing me, but we are nearly done", 0, "figurative"),
    ("you absolutely killed it with the new lead section", 0, "figurative"),
    ("I laughed so hard I almost died at that edit summary", 0, "figurative"),
    ("I would murder someone for a free afternoon to finish this", 0, "figurative"),
    ("please do not call people idiots on this page, it is against policy", 0, "counter speech"),
    ("calling her a moron was out of line and I have struck it", 0, "counter speech"),
    ("telling a newcomer to shut up is not how we treat people here", 0, "counter speech"),
    ('the IP left "you stupid idiot" on my talk page, can an admin revdel it?', 0, "quotation"),
    ('he wrote "go to hell, loser" in the summary of this diff', 0, "quotation"),
    ('for the record: the message I received was "you are a pathetic clown"', 0, "quotation"),
    ("I'm such an idiot, I cited the wrong edition", 0, "self-deprecation"),
    ("stupid me, I forgot to save before previewing", 0, "self-deprecation"),
    ("my dumb mistake broke the infobox, fixed now", 0, "self-deprecation"),
    ("nobody here wants you around, just go", 1, "attack without an insult word"),
    ("people like you are why good editors leave", 1, "attack without an insult word"),
    (
        "you have the judgement of a small child and it shows in every edit",
        1,
        "attack without an insult word",
    ),
    ("do us all a favour and never come back", 1, "attack without an insult word"),
    ("I know which town you live in, be careful", 1, "attack without an insult word"),
    ("you will be sorry you ever reverted me", 1, "attack without an insult word"),
    ("everyone is laughing at you behind your back", 1, "attack without an insult word"),
    ("you are a stain on this project", 1, "attack without an insult word"),
]


# -- held-out scores -------------------------------------------------------------------------


def _key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def held_out_scores(model_dir: Path, model: TextClassifier, *, refresh: bool) -> dict[str, Any]:
    """Out-of-fold probabilities of every validation row, from rerunning the shipped
    model's recipe with the settings it records: ``{"scores": {text key: probability},
    "figures": {language: validation figures}}``, cached under the weights' checksum."""
    from detectors.classifier.features import FeatureConfig
    from detectors.classifier.train import TrainConfig, train

    digest = str(model.meta.get("weights_sha256", "none"))[:16]
    cache = OUT / f"multilingual_oof-{model.version}-{digest}.json.gz"
    if cache.is_file() and not refresh:
        data: dict[str, Any] = orjson.loads(gzip.decompress(cache.read_bytes()))
        return data
    trained = model.meta.get("trained_with") or {}
    terms = read_identity_terms(model_dir.parent / str(trained.get("identity_terms_file")))
    examples, _records = shared_recipe(require(LABELED), terms, seed=int(trained.get("seed", 13)))
    config = TrainConfig(
        features=FeatureConfig(identity_terms=frozenset(terms), tokenizer=2),
        c=float(trained.get("c", 2.0)),
        folds=int(trained.get("folds", 5)),
        seed=int(trained.get("seed", 13)),
        max_features=int(trained.get("max_features", 150_000)),
    )
    started = time.monotonic()
    result = train(
        examples,
        config,
        name=model.name,
        version=model.version,
        log=lambda m: print(f"  [{time.monotonic() - started:5.0f}s] {m}", flush=True),
    )
    figures = {model.default_language: result.validation, **result.languages}
    data = {
        "scores": {_key(examples[i].text): p for i, p in result.out_of_fold.items()},
        "figures": figures,
    }
    OUT.mkdir(exist_ok=True)
    cache.write_bytes(gzip.compress(orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY)))
    return data


class HeldOut(TextClassifier):
    """The shipped model, except that a row it was trained on gets its out-of-fold score
    (from a model that never saw it): what the rules and the classifier are measured
    with."""

    def __init__(self, model: TextClassifier, scores: Mapping[str, float]) -> None:
        self.__dict__.update(model.__dict__)
        self.held_out = scores
        self.language_hint: str | None = None  # the set being scored

    def score(self, text: str, language: str | None = None) -> float:
        held = self.held_out.get(_key(text))
        if held is not None:
            return held
        return super().score(text, language or self.language_hint)


# -- rules as the monitor runs them ----------------------------------------------------------


def talk_edit(text: str, language: str, seq: int) -> tuple[RecentChange, DetectionContext]:
    """``text`` added by a registered editor to an article talk page of that language's
    Wikipedia."""
    host = f"{language}.wikipedia.org"
    event = {
        "$schema": "/mediawiki/recentchange/1.0.0",
        "meta": {
            "id": f"00000000-0000-4000-8000-{seq:012d}",
            "dt": "2026-05-05T12:00:00Z",
            "domain": host,
            "stream": "mediawiki.recentchange",
        },
        "type": "edit",
        "namespace": 1,
        "title": "Talk:Example page" if language == "en" else "Diskussion:Example page",
        "comment": "",
        "user": "Example editor",
        "bot": False,
        "wiki": f"{language}wiki",
        "server_url": f"https://{host}",
        "server_name": host,
        "server_script_path": "/w",
        "revision": {"old": 2 * seq + 1, "new": 2 * seq + 2},
        "length": {"old": 1000, "new": 1000 + len(text)},
    }
    return decode_object(event), DetectionContext(added_text=text)


@dataclass
class Rules:
    detect: Callable[[RecentChange, DetectionContext], list[Any]]

    def fire(self, texts: Sequence[str], language: str) -> tuple[list[int], list[int]]:
        """Per text: any harassment finding (1/0), and one of medium severity or above."""
        any_, medium = [], []
        for n, text in enumerate(texts):
            change, ctx = talk_edit(text, language, n)
            found = [f for f in self.detect(change, ctx) if f.category == Category.HARASSMENT]
            any_.append(int(bool(found)))
            medium.append(int(any(f.severity.rank >= Severity.MEDIUM.rank for f in found)))
        return any_, medium


def rules_with(classifier: HeldOut) -> Rules:
    settings = Settings()
    classifiers = dict(load_classifiers(settings))
    classifiers[classifier.name] = classifier
    rules, issues = load_rules(settings.rules_paths, classifiers.keys())
    if issues:
        raise SystemExit("\n".join(str(i) for i in issues))
    engine = RuleEngine(rules, classifiers=classifiers)
    detection = build_detection(settings, Metrics(), engine=engine)

    def detect(change: RecentChange, ctx: DetectionContext) -> list[Any]:
        return detection.evaluate(change, ctx)[0]

    return Rules(detect)


# -- figures ---------------------------------------------------------------------------------


def prf(pred: Sequence[int], labels: Sequence[int]) -> tuple[float, float, float]:
    tp = sum(1 for p, y in zip(pred, labels, strict=True) if p and y)
    fp = sum(1 for p, y in zip(pred, labels, strict=True) if p and not y)
    pos = sum(labels)
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / pos if pos else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def recall_at_goal(scores: Sequence[float], labels: Sequence[int]) -> float:
    """The best recall at a precision of at least the base rate + 0.15."""
    pos = sum(labels)
    if not pos or pos == len(labels):
        return math.nan
    need = pos / len(labels) + 0.15
    ranked = sorted(zip(scores, labels, strict=True), key=lambda t: -t[0])
    tp = fp = 0
    best = 0.0
    for i, (s, y) in enumerate(ranked):
        tp += y
        fp += 1 - y
        if i + 1 < len(ranked) and ranked[i + 1][0] == s:
            continue
        if tp / (tp + fp) >= need:
            best = max(best, tp / pos)
    return best


def f3(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.2f}"


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
        s.language,
    )


@dataclass
class Row:
    name: str
    language: str
    held_out: str  # how the classifier's scores are held out
    n: int
    positives: int
    auc: float
    op: tuple[float, float, float]
    hp: tuple[float, float, float]
    r_goal: float
    rules_any: tuple[float, float, float]
    rules_medium: tuple[float, float, float]

    @property
    def base(self) -> float:
        return self.positives / self.n if self.n else math.nan

    def goal(self) -> str:
        """The detectors that reach recall 0.50 at precision base + 0.15, each at a
        threshold chosen before these figures: the classifier at its operating or
        high-precision threshold (chosen on validation folds), the rules as they are."""
        need = self.base + 0.15
        met = []
        for label, (p, r, _f) in (
            ("clf op", self.op),
            ("clf hp", self.hp),
            ("rules", self.rules_any),
            ("rules m+", self.rules_medium),
        ):
            if r >= 0.5 and p >= need:
                met.append(label)
        return ", ".join(met) or "no"


def measure(
    s: EvalSet, model: HeldOut, rules: Rules, held: str
) -> tuple[Row, list[float], list[int]]:
    model.language_hint = s.language
    scores = [model.score(t, s.language) for t in s.texts]
    sub = model.for_language(s.language)
    op = sub.thresholds.get("operating", 0.5)
    hp = sub.thresholds.get("high_precision", op)
    any_, medium = rules.fire(s.texts, s.language)
    row = Row(
        s.name,
        s.language,
        held,
        len(s.labels),
        sum(s.labels),
        auc(scores, s.labels),
        prf([int(x >= op) for x in scores], s.labels),
        prf([int(x >= hp) for x in scores], s.labels),
        recall_at_goal(scores, s.labels),
        prf(any_, s.labels),
        prf(medium, s.labels),
    )
    return row, scores, any_


def throughput(texts: Iterable[tuple[str, str]]) -> dict[str, tuple[float, float]]:
    """Texts per second on this core for talk-page-length texts (a set's texts joined
    until they are 300 to 400 characters long), per language, with that language's model:
    the best of three runs over 600 texts, each run a freshly loaded model that has first
    scored up to 3,000 other texts of the language (its token cache as in a running
    monitor; the texts measured still bring tokens it has not seen). Also the mean length."""
    out = {}
    by_language: dict[str, list[str]] = {}
    for language, text in texts:
        by_language.setdefault(language, []).append(text)
    for language, items in sorted(by_language.items()):
        joined, buf = [], ""
        for t in items:
            buf = f"{buf} {t}" if buf else t
            if len(buf) >= 300:
                joined.append(buf[:400])
                buf = ""
        if len(joined) < 100:
            continue
        test = joined[-600:] if len(joined) >= 1200 else joined[len(joined) // 2 :]
        warm = joined[: len(joined) - len(test)][:3000]
        best = 0.0
        for _ in range(3):
            fresh = load_model(shipped_model_dirs()["toxicity"])
            for t in warm:
                fresh.score(t, language)
            t0 = time.perf_counter()
            for t in test:
                fresh.score(t, language)
            best = max(best, len(test) / (time.perf_counter() - t0))
        out[language] = (best, sum(map(len, test)) / len(test))
    return out


# -- one model or one per language -------------------------------------------------------------


def design_comparison(
    terms: list[str], folds: int = 3, seed: int = 13
) -> dict[str, dict[str, float]]:
    """Out-of-fold AUC per language of three designs on the shipped recipe's data, with
    the same features and folds: one model for every language (one intercept, classes
    balanced over all rows), the same with an intercept and class balance per language,
    and a model per language (what ships). AUC does not depend on the calibration, so
    the designs compare on their ranking alone."""
    import numpy as np
    from scipy.sparse import csr_matrix, hstack
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from detectors.classifier.features import FeatureConfig, feature_sets, tokens
    from detectors.classifier.train import TrainConfig, _folds, _matrix, train

    examples, _ = shared_recipe(require(LABELED), terms, seed=seed)
    fc = FeatureConfig(identity_terms=frozenset(terms), tokenizer=2)
    config = TrainConfig(features=fc, folds=folds, seed=seed)
    out: dict[str, dict[str, float]] = {}
    print("design: a model per language ...", flush=True)
    result = train(examples, config, name="design", version="0")
    out["a model per language"] = {"en": result.validation["auc"]} | {
        k: v["auc"] for k, v in result.languages.items()
    }
    print("design: one model for every language ...", flush=True)
    language = np.asarray([e.language or "en" for e in examples])
    blocks = [feature_sets(tokens(e.text, fc), fc) for e in examples]
    df: dict[str, int] = {}
    for words, chars in blocks:
        for block in (words, chars):
            for f in block:
                df[f] = df.get(f, 0) + 1
    vocab = {f: j for j, f in enumerate(sorted(f for f, n in df.items() if n >= config.min_df))}
    x = _matrix(blocks, vocab)
    del blocks, df
    y = np.asarray([e.label for e in examples])
    w = np.asarray([e.weight for e in examples], dtype=float)
    validation = [i for i, e in enumerate(examples) if e.validate]
    fold = np.full(len(examples), -1)
    strata = [examples[i].source for i in validation]
    for i, k in zip(
        validation,
        _folds([examples[i].label for i in validation], folds, seed, strata),
        strict=True,
    ):
        fold[i] = k
    codes = sorted(set(language))
    own = csr_matrix(np.asarray([[float(code == c) for c in codes] for code in language]))
    balanced = w.copy()
    for c in codes:
        mine = language == c
        pos, neg = (w[mine] * y[mine]).sum(), (w[mine] * (1 - y[mine])).sum()
        if pos and neg:
            balanced[mine & (y == 1)] *= w[mine].sum() / (2 * pos)
            balanced[mine & (y == 0)] *= w[mine].sum() / (2 * neg)
    for name, xs, ws, cw in (
        ("one model for every language", x, w, "balanced"),
        (
            "one model, an intercept and class balance per language",
            hstack([x, own]).tocsr(),
            balanced,
            None,
        ),
    ):
        oof = np.zeros(len(examples))
        for k in range(folds):
            clf = LogisticRegression(
                C=config.c, solver="liblinear", class_weight=cw, max_iter=5000, random_state=seed
            )
            clf.fit(xs[fold != k], y[fold != k], sample_weight=ws[fold != k])
            oof[fold == k] = clf.decision_function(xs[fold == k])
        figures = {}
        for c in codes:
            held = (language == c) & (fold >= 0)
            if 0 < y[held].sum() < held.sum():
                figures[str(c)] = float(roc_auc_score(y[held], oof[held]))
        out[name] = figures
    return out


# -- the run ---------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.multilingual_eval", description=__doc__)
    ap.add_argument("--max-rows", type=int, default=None, help="sample each set to N rows")
    ap.add_argument("--markdown", type=Path, default=None, help="also write the report here")
    ap.add_argument("--refresh", action="store_true", help="recompute the held-out scores")
    ap.add_argument(
        "--design",
        action="store_true",
        help="also compare one model for all languages with one per language (3 folds; "
        "about twenty minutes more)",
    )
    args = ap.parse_args(argv)
    out = Report()
    model_dir = shipped_model_dirs()["toxicity"]
    shipped = load_model(model_dir)
    print("held-out scores of the training rows (cached after the first run) ...", flush=True)
    oof = held_out_scores(model_dir, shipped, refresh=args.refresh)
    model = HeldOut(shipped, oof["scores"])
    rules = rules_with(model)
    labeled = require(LABELED)

    ship_sets = multilingual_sets(labeled, SHIP_SAFE_SETS)
    other_sets = multilingual_sets(labeled, MEASURE_ONLY_SETS)
    english = [s for s in evaluation_sets(labeled) if s.name not in ("bias madlibs",)]
    madlibs = next(s for s in evaluation_sets(labeled) if s.name == "bias madlibs")

    rows: list[Row] = []
    t_rules = [0.0, 0]
    for full in sorted(ship_sets, key=lambda x: (x.language, x.name)):
        s = cap(full, args.max_rows)
        held = "out-of-fold"
        if not shipped.covers(s.language):
            held = "language not covered: scored as en"
        t0 = time.perf_counter()
        row, _scores, _ = measure(s, model, rules, held)
        t_rules[0] += time.perf_counter() - t0
        t_rules[1] += row.n
        rows.append(row)
    for full in sorted(other_sets, key=lambda x: (x.language, x.name)):
        s = cap(full, args.max_rows)
        held = "never trained on (licence)"
        if not shipped.covers(s.language):
            held += "; language not covered: scored as en"
        rows.append(measure(s, model, rules, held)[0])
    en_rows = [measure(cap(s, args.max_rows), model, rules, "never trained on")[0] for s in english]
    dev = training_sample(labeled)
    dev = EvalSet("jigsaw dev (validation rows)", dev.texts, dev.labels, dev.groups, True, "en")
    en_rows.append(measure(cap(dev, args.max_rows), model, rules, "out-of-fold")[0])

    own_texts = [t for t, _, _ in OWN_CASES]
    own_labels = [y for _, y, _ in OWN_CASES]
    model.language_hint = "en"
    own_scores = [shipped.score(t, "en") for t in own_texts]
    own_any, own_medium = rules.fire(own_texts, "en")
    own_critical = []
    for n, text in enumerate(own_texts):
        change, ctx = talk_edit(text, "en", n)
        found = [f for f in rules.detect(change, ctx) if f.category == Category.HARASSMENT]
        own_critical.append(int(any(f.severity == Severity.CRITICAL for f in found)))

    ml = madlibs if args.max_rows is None else cap(madlibs, args.max_rows * 5)
    ml_scores = [shipped.score(t, "en") for t in ml.texts]
    ml_any, ml_medium = rules.fire(ml.texts, "en")

    speed = throughput(
        [(s.language, t) for s in ship_sets + other_sets for t in s.texts[:6000]]
        + [("en", t) for s in english[:4] for t in s.texts[:6000]],
    )
    size = sum(p.stat().st_size for p in model_dir.iterdir() if p.is_file())
    per_file = {
        p.name: p.stat().st_size
        for p in sorted(model_dir.iterdir())
        if p.name.startswith("weights")
    }

    # ---- report ----
    out(f"# Harassment detection per language: {shipped.name} {shipped.version}")
    out()
    sampled = f" --max-rows {args.max_rows}" if args.max_rows else ""
    out(f"Reproduce: `python -m bench.multilingual_eval{sampled}` (one run; figures below).")
    out(
        f"Model: {size / 1e6:.1f} MB on disk in all ({len(per_file)} weights files, "
        f"{', '.join(f'{k} {v / 1e6:.2f}' for k, v in per_file.items())} MB); covers "
        f"{', '.join(shipped.covered_languages)}."
    )
    out()
    same = _compare(oof["figures"], shipped)
    out(
        "Held-out scores: the ship-safe sets' rows are scored by the fold models of a rerun "
        "of the shipped model's training (same recipe, data, seed and folds), each row by a "
        f"model that never saw it; {same}"
    )
    out()
    out("## Per language and labeled set")
    out()
    out(
        "clf = classifier alone at the language's thresholds (op: best F1, hp: precision "
        "0.90, both chosen on validation folds); R@goal = the best recall at precision >= "
        "base + 0.15 over every threshold (chosen on these scores: it flatters); rules = the "
        "shipped packs through build_detection, any harassment finding, or medium+; goal met "
        "by = the detectors with recall >= 0.50 at precision >= base + 0.15 at the thresholds "
        "above."
    )
    out()
    out(
        "| lang | set | held out | rows | base | clf AUC | clf op P/R/F1 | clf hp P/R/F1 | "
        "clf R@goal | rules any P/R/F1 | rules m+ P/R/F1 | goal met by |"
    )
    out("|---|---|---|---:|---:|---:|---|---|---:|---|---|---|")
    for r in [*rows, *en_rows]:
        out(
            f"| {r.language} | {r.name} | {r.held_out} | {r.n:,} | {r.base:.2f} | {f3(r.auc)} | "
            f"{_prf(r.op)} | {_prf(r.hp)} | {f3(r.r_goal)} | {_prf(r.rules_any)} | "
            f"{_prf(r.rules_medium)} | {r.goal()} |"
        )
    out()
    out("## The 14 languages of the goal (recall >= 0.50 at precision >= base + 0.15)")
    out()
    out("| lang | labeled sets | classifier | goal met by |")
    out("|---|---|---|---|")
    met = 0
    for language in TARGET:
        mine = [r for r in rows if r.language == language]
        cls = "covered" if shipped.covers(language) else "not covered"
        if not mine:
            out(f"| {language} | none (lexicons only) | {cls} | not measurable here |")
            continue
        verdicts = [f"{r.name}: {r.goal()}" for r in mine]
        ok = all(r.goal() != "no" for r in mine)
        met += ok
        out(f"| {language} | {len(mine)} | {cls} | {'; '.join(verdicts)} |")
    out()
    out(f"Goal met on every labeled set of the language: {met} of {len(TARGET)} languages.")
    out()
    out("## English beyond the training domain (own cases, `OWN_CASES` in the benchmark)")
    out()
    hp_en = shipped.thresholds.get("high_precision", 0.5)
    out(f"Classifier at the English high-precision threshold ({hp_en:.2f}); rules as above.")
    out()
    out("| class | cases | label | clf >= hp | rules any | rules m+ | rules critical |")
    out("|---|---:|---:|---:|---:|---:|---:|")
    for cls in dict.fromkeys(c for _, _, c in OWN_CASES):
        idx = [i for i, (_t, _y, c) in enumerate(OWN_CASES) if c == cls]
        out(
            f"| {cls} | {len(idx)} | {own_labels[idx[0]]} | "
            f"{sum(own_scores[i] >= hp_en for i in idx)} | {sum(own_any[i] for i in idx)} | "
            f"{sum(own_medium[i] for i in idx)} | {sum(own_critical[i] for i in idx)} |"
        )
    out()
    out("## Identity terms (bias madlibs: share of rows flagged)")
    out()
    op_en = shipped.thresholds.get("operating", 0.5)
    out("| detector | NOT_BAD (false positives) | BAD |")
    out("|---|---:|---:|")
    for label, flags in (
        (f"classifier @op {op_en:.2f}", [int(x >= op_en) for x in ml_scores]),
        (f"classifier @hp {hp_en:.2f}", [int(x >= hp_en) for x in ml_scores]),
        ("rules, any", ml_any),
        ("rules, medium+", ml_medium),
    ):
        rates = {}
        for g in ("NOT_BAD", "BAD"):
            idx = [i for i, x in enumerate(ml.groups) if x == g]
            rates[g] = sum(flags[i] for i in idx) / max(len(idx), 1)
        out(f"| {label} | {rates['NOT_BAD']:.4f} | {rates['BAD']:.4f} |")
    out()
    out(
        "No identity template sets exist in the other languages; the identity terms "
        "dropped before scoring are English ones (config/models/identity_terms.txt)."
    )
    out()
    out("## Speed (one core, this machine)")
    out()
    out(
        "Classifier alone, texts of 300 to 400 characters (a set's texts joined), best of "
        "three runs of 600 texts after 3,000 others (`throughput` in the benchmark)."
    )
    out()
    out("| lang | mean characters | texts/s |")
    out("|---|---:|---:|")
    for language, (rate, length) in speed.items():
        out(f"| {language} | {length:.0f} | {rate:,.0f} |")
    if t_rules[0]:
        out()
        out(
            f"Rules and classifier through build_detection: {t_rules[1] / t_rules[0]:,.0f} "
            "texts/s over the ship-safe sets (their own lengths)."
        )
    if args.design:
        trained = shipped.meta.get("trained_with") or {}
        terms = read_identity_terms(model_dir.parent / str(trained.get("identity_terms_file")))
        designs = design_comparison(terms)
        out()
        out("## One model for every language, or one per language (AUC, 3 folds)")
        out()
        codes = sorted({c for d in designs.values() for c in d})
        out("| design | " + " | ".join(codes) + " |")
        out("|---|" + "---:|" * len(codes))
        for name, figures in designs.items():
            cells = [f3(figures.get(c, math.nan)) for c in codes]
            out(f"| {name} | " + " | ".join(cells) + " |")
    if args.markdown is not None:
        args.markdown.write_text("\n".join(out.lines) + "\n")
        print(f"written: {args.markdown}")


def _prf(t: tuple[float, float, float]) -> str:
    return f"{t[0]:.2f}/{t[1]:.2f}/{t[2]:.2f}"


def _compare(figures: Mapping[str, Any], shipped: TextClassifier) -> str:
    """Whether the rerun's validation figures equal the ones the shipped model records."""
    differ = []
    for language, fig in figures.items():
        sub = shipped.for_language(language)
        recorded = (
            sub.meta.get("validation") if sub is not shipped else shipped.meta.get("validation")
        )
        if not isinstance(recorded, dict) or not isinstance(fig, dict):
            differ.append(language)
            continue
        if abs(float(recorded.get("auc") or 0) - float(fig.get("auc") or 0)) > 5e-4:
            differ.append(language)
    if differ:
        return (
            f"the rerun's figures DIFFER from the recorded ones for {', '.join(differ)} "
            "(data or code changed since the model was trained: retrain it)."
        )
    return "the rerun's AUC per language equals the one the training run recorded."


if __name__ == "__main__":
    main()
