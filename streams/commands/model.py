"""``rcwatch model``: train, inspect and try the text classifiers rules use.

- ``train`` rebuilds a model from the shared labeled data (``--shared``), from an
  operator's own labeled CSV (``--csv``), or both; prints the validation figures (chosen
  on validation folds of the training data) per language and writes the model directory
  with its manifest. Needs the ``train`` extra (scikit-learn).
- ``eval`` measures a model on a labeled CSV (never used to choose anything).
- ``score`` prints the score and the terms behind it for texts given or read from stdin.
- ``info`` prints what a model is: version, size, thresholds and validation figures per
  language, the languages it does not cover, and its data.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from detectors.classifier import ModelError, TextClassifier, load_model
from detectors.classifier.features import FeatureConfig
from sinks.alert import printable
from streams.settings import Settings, shipped_config_dir

__all__ = ["run_model_command"]

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def run_model_command(settings: Settings, args: argparse.Namespace) -> int:
    if args.model_command == "train":
        return _train(args)
    try:
        model = _model(settings, args)
    except ModelError as exc:
        print(f"rcwatch: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.model_command == "score":
        return _score(model, args)
    if args.model_command == "eval":
        return _eval(model, Path(args.csv), getattr(args, "language", None))
    return _info(model, args)


def _model(settings: Settings, args: argparse.Namespace) -> TextClassifier:
    if args.model:
        return load_model(args.model)
    dirs = settings.detectors.model_dirs()
    if args.name not in dirs:
        raise ModelError(f"no model named {args.name!r} (known: {', '.join(sorted(dirs))})")
    return load_model(dirs[args.name])


# -- train ------------------------------------------------------------------------------------


def _train(args: argparse.Namespace) -> int:
    try:
        from detectors.classifier.train import TrainConfig, train
    except ImportError as exc:
        print(
            f"rcwatch: training needs the 'train' extra ({exc.name} is missing): "
            "pip install 'rcwatch[train]'",
            file=sys.stderr,
        )
        return EXIT_USAGE
    from streams.commands.model_data import (
        DataError,
        read_identity_terms,
        read_labeled_csv,
        shared_recipe,
    )

    if not args.shared and not args.csv:
        print("rcwatch: give --shared DIR and/or --csv FILE", file=sys.stderr)
        return EXIT_USAGE
    started = time.monotonic()

    def say(msg: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {msg}", file=sys.stderr, flush=True)

    terms_path = (
        Path(args.identity_terms)
        if args.identity_terms
        else shipped_config_dir() / "models" / "identity_terms.txt"
    )
    default = TrainConfig().default_language
    try:
        terms = read_identity_terms(terms_path)
        examples, records = [], []
        if args.shared:
            got, recs = shared_recipe(
                Path(args.shared), terms, max_rows=args.max_rows_per_source, seed=args.seed
            )
            examples += got
            records += recs
        for csv_path in args.csv:
            rows, rec = read_labeled_csv(
                Path(csv_path),
                weight=args.csv_weight,
                max_rows=args.max_rows_per_source,
                seed=args.seed,
                language=getattr(args, "csv_language", "") or "",
            )
            # the CSV's rows validate their languages: the shared recipe's validation
            # rows in those languages become training rows only
            own = {e.language or default for e in rows}
            examples = [
                _train_only(e) if e.validate and (e.language or default) in own else e
                for e in examples
            ]
            examples += rows
            records.append(rec)
    except DataError as exc:
        print(f"rcwatch: {exc}", file=sys.stderr)
        return EXIT_USAGE
    config = TrainConfig(
        features=FeatureConfig(identity_terms=frozenset(terms), tokenizer=2),
        c=args.c,
        folds=args.folds,
        seed=args.seed,
        max_features=args.max_features,
    )
    say(f"{len(examples):,} examples from {len(records)} sources")
    try:
        result = train(examples, config, name=args.name, version=args.model_version, log=say)
    except ValueError as exc:
        print(f"rcwatch: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from detectors.classifier.model import save_model

    for code, sub in result.model.languages.items():
        sub.meta = {"validation": _rounded(result.languages[code])}
    out = Path(args.out)
    save_model(
        result.model,
        out,
        {
            "validation": _rounded(result.validation),
            "not_covered": _rounded(result.not_covered),
            "trained_with": {
                "command": "rcwatch model train " + " ".join(_argv_for_manifest(args)),
                "seed": args.seed,
                "folds": args.folds,
                "c": args.c,
                "max_features": args.max_features,
                "identity_terms_file": terms_path.name,
            },
        },
    )
    sources = []
    for r in records:
        entry = r.to_json()
        why = result.not_covered.get(r.language)
        if why is not None and r.role != "evaluation only (never trained on)":
            entry["role"] = f"not used: language {r.language} not covered ({why['reason']})"
        sources.append(entry)
    manifest = {
        "model": args.name,
        "version": args.model_version,
        "sources": sources,
        "examples": len(examples),
        "positives": sum(e.label for e in examples),
        "validation_sources": result.validation["sources"],
        "languages": result.model.covered_languages,
        "languages_not_covered": {k: v["reason"] for k, v in sorted(result.not_covered.items())},
    }
    (out / "MANIFEST.json").write_bytes(
        orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    )
    say(f"written to {out}")
    _print_validation(result.validation, load_model(out))
    return EXIT_OK


def _train_only(e: Any) -> Any:
    from detectors.classifier.train import TrainExample

    return TrainExample(e.text, e.label, e.weight, e.source, False)


def _argv_for_manifest(args: argparse.Namespace) -> list[str]:
    out = []
    if args.shared:
        out += ["--shared", Path(args.shared).name]
    for c in args.csv:
        out += ["--csv", Path(c).name]
    if getattr(args, "csv_language", ""):
        out += ["--csv-language", args.csv_language]
    out += ["--out", Path(args.out).name, "--seed", str(args.seed)]
    if args.max_rows_per_source:
        out += ["--max-rows-per-source", str(args.max_rows_per_source)]
    return out


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _figures_line(code: str, v: Mapping[str, Any]) -> str:
    """One language's validation figures on one line."""
    n, positives = v.get("examples", 0), v.get("positives", 0)
    line = f"  {code:<5} {n:>7,} {positives:>6,}  AUC {_f(v.get('auc'))}"
    op = v.get("operating")
    if isinstance(op, dict):
        line += (
            f"  operating {_f(op.get('threshold'))}: P {_f(op.get('precision'))} "
            f"R {_f(op.get('recall'))} F1 {_f(op.get('f1'))}"
        )
    hp = v.get("high_precision")
    if isinstance(hp, dict):
        line += (
            f"  high-precision {_f(hp.get('threshold'))}: P {_f(hp.get('precision'))} "
            f"R {_f(hp.get('recall'))} F1 {_f(_f1(hp))}"
        )
    elif isinstance(op, dict):
        line += "  high-precision: never reached"
    sources = v.get("sources")
    if isinstance(sources, list) and sources:
        line += f"  [{', '.join(map(str, sources))}]"
    return line


def _f(x: Any) -> str:
    return f"{x:.3f}" if isinstance(x, int | float) and math.isfinite(x) else "-"


def _f1(point: Mapping[str, Any]) -> float:
    p, r = point.get("precision"), point.get("recall")
    if "f1" in point:
        return float(point["f1"])
    if isinstance(p, int | float) and isinstance(r, int | float) and p + r:
        return 2 * p * r / (p + r)
    return math.nan


def _print_validation(v: dict[str, Any], model: TextClassifier) -> None:
    print(f"model {model.name} {model.version}: {len(model.weights):,} features")
    print(
        f"validation (out-of-fold, {v['folds']} folds), per language: examples, positives, "
        "AUC, and precision/recall/F1 at the thresholds chosen there"
    )
    print(_figures_line(model.default_language, v))
    for code in sorted(model.languages):
        sub = model.languages[code].meta.get("validation")
        if isinstance(sub, dict):
            print(_figures_line(code, sub))
    not_covered = model.meta.get("not_covered") if model.meta else None
    for code, why in sorted((not_covered or {}).items()):
        print(f"  {code:<5} not covered: {why.get('reason')}")


# -- eval, score, info ------------------------------------------------------------------------


def _eval(model: TextClassifier, path: Path, language: str | None) -> int:
    from streams.commands.model_data import DataError, read_labeled_csv

    try:
        rows, _ = read_labeled_csv(path)
    except DataError as exc:
        print(f"rcwatch: {exc}", file=sys.stderr)
        return EXIT_USAGE
    scores = [model.score(e.text, e.language or language) for e in rows]
    labels = [e.label for e in rows]
    print(f"{path}: {len(rows):,} texts, {sum(labels):,} positive")
    if language and not model.covers(language):
        print(f"  {_not_covered_note(model, language)}")
    print(f"  AUC {auc(scores, labels):.3f}")
    for name, t in sorted(model.for_language(language).thresholds.items(), key=lambda kv: kv[1]):
        p, r = precision_recall(scores, labels, t)
        print(f"  {name} threshold {t:.3f}: precision {p:.3f} recall {r:.3f}")
    return EXIT_OK


def _not_covered_note(model: TextClassifier, language: str) -> str:
    return (
        f"the model does not cover {language!r}: scored as {model.default_language!r}, "
        "which is no judgement of a text in another language"
    )


def auc(scores: list[float], labels: list[int]) -> float:
    """Area under the ROC curve (ties count half); nan with one class only."""
    pos = sum(labels)
    neg = len(labels) - pos
    if not pos or not neg:
        return math.nan
    ranked = sorted(zip(scores, labels, strict=True))
    rank_sum, i = 0.0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        mid = (i + j + 1) / 2  # average 1-based rank of the tie group
        rank_sum += mid * sum(lab for _, lab in ranked[i:j])
        i = j
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


def precision_recall(scores: list[float], labels: list[int], t: float) -> tuple[float, float]:
    tp = sum(1 for s, y in zip(scores, labels, strict=True) if s >= t and y)
    fp = sum(1 for s, y in zip(scores, labels, strict=True) if s >= t and not y)
    pos = sum(labels)
    return (tp / (tp + fp) if tp + fp else 0.0, tp / pos if pos else 0.0)


def _score(model: TextClassifier, args: argparse.Namespace) -> int:
    language = getattr(args, "language", None)
    if language and not model.covers(language):
        print(f"rcwatch: {_not_covered_note(model, language)}", file=sys.stderr)
    texts = args.texts or [ln.rstrip("\n") for ln in sys.stdin if ln.strip()]
    for text in texts:
        terms = model.explain(text, language=language)
        why = ", ".join(printable(text[t.start : t.end], 40) for t in terms) or "-"
        print(f"{model.score(text, language):.3f}  {printable(text, 80)}  [{why}]")
    return EXIT_OK


# the languages rcwatch has labeled data or word lists for (../shared/data): the ones info
# names as not covered when the model has no figures for them
KNOWN_LANGUAGES = (
    "ar", "cs", "de", "en", "es", "fa", "fr", "he", "hi", "id", "it", "ja", "ko", "nl", "pl",
    "pt", "ru", "sv", "tr", "uk", "zh",
)  # fmt: skip


def _info(model: TextClassifier, args: argparse.Namespace) -> int:
    meta = model.meta
    own = [c for c, m in sorted(model.languages.items()) if m.weights is not model.weights]
    print(
        f"{model.name} {model.version}: {len(model.weights):,} features"
        + (f", and a model of its own for {', '.join(own)}" if own else "")
    )
    print(f"  thresholds ({model.default_language}): {dict(model.thresholds)}")
    print(
        "  validation (out-of-fold) per language: examples, positives, AUC, "
        "precision/recall/F1 at each threshold"
    )
    v = meta.get("validation")
    print(_figures_line(model.default_language, v if isinstance(v, dict) else {}))
    for code in sorted(model.languages):
        sub = model.languages[code]
        figures = sub.meta.get("validation")
        print(_figures_line(code, figures if isinstance(figures, dict) else {}))
        print(f"  {'':<5} thresholds: {dict(sub.thresholds)}")
    reasons = meta.get("not_covered")
    reasons = reasons if isinstance(reasons, dict) else {}
    missing = sorted({c for c in (*KNOWN_LANGUAGES, *reasons) if not model.covers(c)})
    if missing:
        named = ", ".join(
            f"{c} ({reasons[c].get('reason')})" if isinstance(reasons.get(c), dict) else c
            for c in missing
        )
        print(
            f"  not covered (scored as {model.default_language}, which is no judgement of "
            f"their texts): {named}"
        )
    trained = meta.get("trained_with")
    if isinstance(trained, dict):
        print(f"  trained with: {trained.get('command')}")
    return EXIT_OK
