"""Fitting a ``TextClassifier``: logistic regression over the shared features, one model
per language.

Needs the ``train`` extra (scikit-learn, NumPy, SciPy); scoring never does.

The recipe (``train``), for every language of the examples apart (``TrainExample.language``;
``""`` is the default language):

1. Every example becomes its two binary feature blocks (``features.feature_sets``); the
   vocabulary is every feature of the language's examples seen in at least ``min_df`` of
   them.
2. Validation folds: the examples marked ``validate`` (in-domain data: Wikipedia talk
   comments, an operator's own verdicts, a language's labeled sets) are split into
   ``folds`` folds, stratified by source and label. For each fold a model is fitted on
   everything else of the language and scores the fold, so every validation example gets
   an out-of-fold score from a model that never saw it.
3. Those out-of-fold scores choose everything that is chosen: the calibration (a logistic
   fit of the label on the linear score, so that a score reads as a probability) and the
   thresholds (``operating``: best F1; ``high_precision``: the lowest score at which
   precision reaches ``high_precision_target``, when it does). Nothing is chosen on an
   evaluation set. The default language's calibration reads as a probability on its own
   validation data; every other language's is fitted with its examples reweighted to the
   default language's share of positives (``prior``), because labeled sets are collected
   with very different shares of abuse (20% to 80%) and a rule's ``min_score`` must mean
   the same in every language.
4. The final model is fitted on all of the language's examples and its weights pruned to
   the ``max_features`` largest in magnitude (each file stays a few MB).

A language other than the default is covered (``TextClassifier.languages``) only when its
validation examples hold at least ``min_validation_per_class`` of each label and its
out-of-fold AUC is at least ``min_validation_auc``; otherwise the result says why
(``not_covered``) and texts in it are scored as the default language's.

One model per language rather than one for all was measured (three folds of the shared
data, ``config/models/toxicity/EVALUATION.md``): languages that share a script with
English lost up to 0.02 AUC in a joint model (German, Portuguese) and Korean 0.04 until it
had an intercept of its own.

Deterministic for the same data and seed.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from detectors.classifier.features import FeatureConfig, feature_sets, tokens
from detectors.classifier.model import TextClassifier

__all__ = ["TrainConfig", "TrainExample", "TrainResult", "train"]


@dataclass(frozen=True, slots=True)
class TrainExample:
    text: str
    label: int  # 1: the class (toxic), 0: not
    weight: float = 1.0
    source: str = ""
    validate: bool = False  # in-domain: its out-of-fold scores choose the thresholds
    language: str = ""  # "": the default language


@dataclass(frozen=True)
class TrainConfig:
    features: FeatureConfig = field(default_factory=FeatureConfig)
    c: float = 2.0  # inverse regularisation strength
    folds: int = 5
    seed: int = 13
    min_df: int = 2
    max_features: int = 150_000
    high_precision_target: float = 0.9
    default_language: str = "en"
    min_validation_per_class: int = 50  # for a language other than the default to be covered
    min_validation_auc: float = 0.65  # and its out-of-fold AUC


@dataclass
class TrainResult:
    model: TextClassifier
    validation: dict[str, Any]  # out-of-fold figures on the default language's examples
    # every other language covered -> its out-of-fold figures
    languages: dict[str, dict[str, Any]] = field(default_factory=dict)
    # every language not covered -> why (and its figures, when it had some)
    not_covered: dict[str, dict[str, Any]] = field(default_factory=dict)
    # example index -> its out-of-fold probability (the validation examples of the default
    # and of every covered language): what a benchmark scores held-out rows with
    out_of_fold: dict[int, float] = field(default_factory=dict)


def _matrix(blocks: Sequence[tuple[set[str], Counter[str]]], vocab: dict[str, int]) -> Any:
    indptr, indices, values = [0], [], []
    for words, chars in blocks:
        if words:
            v = 1.0 / math.sqrt(len(words))
            for f in words:
                j = vocab.get(f)
                if j is not None:
                    indices.append(j)
                    values.append(v)
        if chars:
            norm = 1.0 / math.sqrt(sum(chars.values()))
            for f, k in chars.items():
                j = vocab.get(f)
                if j is not None:
                    indices.append(j)
                    values.append(k * norm)
        indptr.append(len(indices))
    return csr_matrix((values, indices, indptr), shape=(len(blocks), len(vocab)))


def _fit(x: Any, y: Any, w: Any, config: TrainConfig) -> Any:
    clf = LogisticRegression(
        C=config.c,
        solver="liblinear",
        class_weight="balanced",
        max_iter=5000,
        random_state=config.seed,
    )
    clf.fit(x, y, sample_weight=w)
    return clf


def _folds(labels: Sequence[int], k: int, seed: int, strata: Sequence[str] = ()) -> list[int]:
    """A fold number per example, stratified by label (and stratum: the source), and
    deterministic."""
    rng = random.Random(seed)
    fold = [0] * len(labels)
    keys = [(strata[i] if strata else "", y) for i, y in enumerate(labels)]
    for key in sorted(set(keys)):
        idx = [i for i, k_ in enumerate(keys) if k_ == key]
        rng.shuffle(idx)
        for n, i in enumerate(idx):
            fold[i] = n % k
    return fold


def _calibrate(
    z: Sequence[float], y: Sequence[int], prior: float | None = None
) -> tuple[float, float]:
    """Platt scaling: ``sigmoid(a*z + b)`` fitted to the out-of-fold scores; with a
    ``prior``, the examples are reweighted so that positives make that share of them."""
    labels = np.asarray(y)
    weights = None
    if prior is not None:
        share = float(labels.mean())
        weights = np.where(labels == 1, prior / share, (1 - prior) / (1 - share))
    clf = LogisticRegression(C=1e6, solver="lbfgs", max_iter=1000)
    clf.fit(np.asarray(z).reshape(-1, 1), labels, sample_weight=weights)
    return float(clf.coef_[0][0]), float(clf.intercept_[0])


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _thresholds(
    p: Sequence[float], y: Sequence[int], target: float
) -> tuple[dict[str, float], dict[str, Any]]:
    """The operating threshold (best F1) and the high-precision one, with their figures."""
    pairs = sorted(zip(p, y, strict=True), key=lambda t: -t[0])
    positives = sum(y)
    tp = fp = 0
    best_f1, best_t, best_pr = -1.0, 0.5, (0.0, 0.0)
    high: tuple[float, float, float] | None = None  # threshold, precision, recall
    for i, (score, label) in enumerate(pairs):
        tp += label
        fp += 1 - label
        if i + 1 < len(pairs) and pairs[i + 1][0] == score:
            continue  # a threshold admits every example with the same score
        precision, recall = tp / (tp + fp), tp / positives if positives else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        if f1 > best_f1:
            best_f1, best_t, best_pr = f1, score, (precision, recall)
        if precision >= target and tp >= 10:
            high = (score, precision, recall)
    thresholds = {"operating": best_t}
    figures: dict[str, Any] = {
        "operating": {"threshold": best_t, "precision": best_pr[0], "recall": best_pr[1],
                      "f1": best_f1},
    }  # fmt: skip
    if high is not None:
        thresholds["high_precision"] = high[0]
        figures["high_precision"] = {
            "threshold": high[0], "precision": high[1], "recall": high[2], "target": target,
        }  # fmt: skip
    return thresholds, figures


def _auc(p: Sequence[float], y: Sequence[int]) -> float:
    return float(roc_auc_score(list(y), list(p))) if 0 < sum(y) < len(y) else float("nan")


@dataclass
class _Fitted:
    model: TextClassifier
    figures: dict[str, Any]
    out_of_fold: dict[int, float]  # example index -> out-of-fold probability


def _train_language(
    examples: Sequence[TrainExample],
    rows: Sequence[int],
    config: TrainConfig,
    *,
    name: str,
    version: str,
    language: str,
    prior: float | None,
    say: Any,
) -> _Fitted | dict[str, Any]:
    """One language's model from ``examples[i] for i in rows``, or why there is none."""
    validation = [i for i in rows if examples[i].validate]
    val_labels = [examples[i].label for i in validation]
    positives = sum(val_labels)
    if min(positives, len(val_labels) - positives) < config.folds:
        return {
            "reason": f"validation examples need at least {config.folds} of each label "
            f"(got {positives} positive of {len(val_labels)})",
            "examples": len(val_labels),
            "positives": positives,
        }
    fc = config.features
    say(f"{language}: features of {len(rows):,} examples")
    blocks = [feature_sets(tokens(examples[i].text, fc), fc) for i in rows]
    df: dict[str, int] = {}
    for words, chars in blocks:
        for block in (words, chars):
            for f in block:
                df[f] = df.get(f, 0) + 1
    vocab = {f: j for j, f in enumerate(sorted(f for f, n in df.items() if n >= config.min_df))}
    x = _matrix(blocks, vocab)
    del blocks, df
    y = np.asarray([examples[i].label for i in rows])
    w = np.asarray([examples[i].weight for i in rows], dtype=float)
    say(f"{language}: vocabulary {len(vocab):,} features (seen in {config.min_df}+ examples)")

    position = {i: n for n, i in enumerate(rows)}
    strata = [examples[i].source for i in validation]
    fold_of = np.full(len(rows), -1)
    for i, k in zip(validation, _folds(val_labels, config.folds, config.seed, strata), strict=True):
        fold_of[position[i]] = k
    oof = np.zeros(len(rows))
    for k in range(config.folds):
        held = np.flatnonzero(fold_of == k)
        fit_rows = np.flatnonzero(fold_of != k)
        clf = _fit(x[fit_rows], y[fit_rows], w[fit_rows], config)
        oof[held] = clf.decision_function(x[held])
        say(f"{language}: fold {k + 1}/{config.folds}: {len(held)} validation examples scored")
    val_pos = [position[i] for i in validation]
    z = [float(oof[n]) for n in val_pos]
    a, b = _calibrate(z, val_labels, prior)
    probs = [_sigmoid(a * v + b) for v in z]
    thresholds, figures = _thresholds(probs, val_labels, config.high_precision_target)

    clf = _fit(x, y, w, config)
    coef = clf.coef_[0]
    names = sorted(vocab, key=vocab.__getitem__)
    order = np.argsort(-np.abs(coef), kind="stable")[: config.max_features]
    weights = {names[j]: float(coef[j]) for j in sorted(order) if coef[j] != 0.0}
    figures.update(
        {
            "examples": len(validation),
            "positives": positives,
            "folds": config.folds,
            "auc": _auc(probs, val_labels),
            "sources": sorted({examples[i].source for i in validation}),
        }
    )
    if prior is not None:
        figures["calibration_prior"] = prior
    model = TextClassifier(
        name, version, fc, float(clf.intercept_[0]), weights, (a, b), thresholds,
        {"validation": figures},
    )  # fmt: skip
    return _Fitted(model, figures, dict(zip(validation, probs, strict=True)))


def train(
    examples: Sequence[TrainExample],
    config: TrainConfig,
    *,
    name: str,
    version: str,
    log: Any = None,
) -> TrainResult:
    """Fit, validate and calibrate a model per language (see the module docstring).
    ``ValueError`` when the data cannot make one for the default language (one class
    only, no validation examples)."""
    say = log or (lambda _msg: None)
    default = config.default_language
    by_language: dict[str, list[int]] = {}
    for i, e in enumerate(examples):
        by_language.setdefault(e.language or default, []).append(i)
    rows = by_language.pop(default, [])
    labels = {examples[i].label for i in rows}
    if len(labels) < 2:
        raise ValueError(
            f"the training data needs both labels (0 and 1) in the default language {default!r}"
        )
    first = _train_language(
        examples, rows, config, name=name, version=version, language=default, prior=None,
        say=say,
    )  # fmt: skip
    if not isinstance(first, _Fitted):
        raise ValueError(str(first["reason"]))
    model = first.model
    model.default_language = default
    result = TrainResult(model, first.figures, out_of_fold=dict(first.out_of_fold))
    prior = first.figures["positives"] / first.figures["examples"]
    languages: dict[str, TextClassifier] = {}
    for language in sorted(by_language):
        part = by_language[language]
        if len({examples[i].label for i in part}) < 2:
            result.not_covered[language] = {
                "reason": "its examples have one label only",
                "examples": sum(1 for i in part if examples[i].validate),
                "positives": sum(examples[i].label for i in part if examples[i].validate),
            }
            continue
        fitted = _train_language(
            examples, part, config, name=name, version=version, language=language,
            prior=prior, say=say,
        )  # fmt: skip
        if not isinstance(fitted, _Fitted):
            result.not_covered[language] = fitted
            continue
        f = fitted.figures
        need = config.min_validation_per_class
        if min(f["positives"], f["examples"] - f["positives"]) < need:
            why = f"fewer than {need} validation examples of a label"
        elif not f["auc"] >= config.min_validation_auc:
            why = f"out-of-fold AUC below {config.min_validation_auc}"
        else:
            languages[language] = fitted.model
            result.languages[language] = f
            result.out_of_fold.update(fitted.out_of_fold)
            continue
        result.not_covered[language] = {"reason": why, **f}
        say(f"{language}: not covered ({why})")
    model.languages = languages
    return result
