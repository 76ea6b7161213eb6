"""``rcwatch model``: train, inspect and try the text classifiers rules use.

- ``train`` rebuilds a model from the shared labeled data (``--shared``), from an
  operator's own labeled CSV (``--csv``), or both; prints the validation figures (chosen
  on validation folds of the training data) and writes the model directory with its
  manifest. Needs the ``train`` extra (scikit-learn).
- ``eval`` measures a model on a labeled CSV (never used to choose anything).
- ``score`` prints the score and the terms behind it for texts given or read from stdin.
- ``info`` prints what a model is: version, size, thresholds, validation figures, data.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
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
        return _eval(model, Path(args.csv))
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
            )
            if args.shared:  # the shared recipe's validation rows become training only
                examples = [e if not e.validate else _train_only(e) for e in examples]
            examples += rows
            records.append(rec)
    except DataError as exc:
        print(f"rcwatch: {exc}", file=sys.stderr)
        return EXIT_USAGE
    config = TrainConfig(
        features=FeatureConfig(identity_terms=frozenset(terms)),
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

    out = Path(args.out)
    save_model(
        result.model,
        out,
        {
            "validation": _rounded(result.validation),
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
    manifest = {
        "model": args.name,
        "version": args.model_version,
        "sources": [r.to_json() for r in records],
        "examples": len(examples),
        "positives": sum(e.label for e in examples),
        "validation_sources": result.validation["sources"],
    }
    (out / "MANIFEST.json").write_bytes(
        orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    )
    say(f"written to {out}")
    _print_validation(result.validation, result.model)
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


def _print_validation(v: dict[str, Any], model: TextClassifier) -> None:
    print(f"model {model.name} {model.version}: {len(model.weights):,} features")
    print(
        f"validation (out-of-fold, {v['folds']} folds): {v['examples']:,} examples, "
        f"{v['positives']:,} positive, from {', '.join(v['sources'])}"
    )
    print(f"  AUC {v['auc']:.3f}")
    op = v["operating"]
    print(
        f"  operating threshold {op['threshold']:.3f}: precision {op['precision']:.3f} "
        f"recall {op['recall']:.3f} F1 {op['f1']:.3f}"
    )
    hp = v.get("high_precision")
    if hp:
        print(
            f"  high-precision threshold {hp['threshold']:.3f}: precision {hp['precision']:.3f} "
            f"recall {hp['recall']:.3f} (target {hp['target']:.2f})"
        )
    else:
        print("  high-precision threshold: precision never reached the target")


# -- eval, score, info ------------------------------------------------------------------------


def _eval(model: TextClassifier, path: Path) -> int:
    from streams.commands.model_data import DataError, read_labeled_csv

    try:
        rows, _ = read_labeled_csv(path)
    except DataError as exc:
        print(f"rcwatch: {exc}", file=sys.stderr)
        return EXIT_USAGE
    scores = [model.score(e.text) for e in rows]
    labels = [e.label for e in rows]
    print(f"{path}: {len(rows):,} texts, {sum(labels):,} positive")
    print(f"  AUC {auc(scores, labels):.3f}")
    for name, t in sorted(model.thresholds.items(), key=lambda kv: kv[1]):
        p, r = precision_recall(scores, labels, t)
        print(f"  {name} threshold {t:.3f}: precision {p:.3f} recall {r:.3f}")
    return EXIT_OK


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
    texts = args.texts or [ln.rstrip("\n") for ln in sys.stdin if ln.strip()]
    for text in texts:
        terms = model.explain(text)
        why = ", ".join(printable(text[t.start : t.end], 40) for t in terms) or "-"
        print(f"{model.score(text):.3f}  {printable(text, 80)}  [{why}]")
    return EXIT_OK


def _info(model: TextClassifier, args: argparse.Namespace) -> int:
    meta = model.meta
    print(f"{model.name} {model.version}: {len(model.weights):,} features")
    print(f"  thresholds: {dict(model.thresholds)}")
    v = meta.get("validation")
    if isinstance(v, dict):
        print(f"  validation: {orjson.dumps(v).decode()}")
    trained = meta.get("trained_with")
    if isinstance(trained, dict):
        print(f"  trained with: {trained.get('command')}")
    return EXIT_OK
