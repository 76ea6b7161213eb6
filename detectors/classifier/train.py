"""Fitting a ``TextClassifier``: logistic regression over the shared features.

Needs the ``train`` extra (scikit-learn, NumPy, SciPy); scoring never does.

The recipe (``train``):

1. Every example becomes its two binary feature blocks (``features.feature_sets``); the
   vocabulary is every feature seen in at least ``min_df`` examples.
2. Validation folds: the examples marked ``validate`` (in-domain data: Wikipedia talk
   comments, or an operator's own verdicts) are split into ``folds`` stratified folds. For
   each fold a model is fitted on everything else and scores the fold, so every validation
   example gets an out-of-fold score from a model that never saw it.
3. Those out-of-fold scores choose everything that is chosen: the calibration (a logistic
   fit of the label on the linear score, so that a score reads as a probability on
   in-domain data) and the thresholds (``operating``: best F1; ``high_precision``: the
   lowest score at which precision reaches ``high_precision_target``, when it does).
   Nothing is chosen on an evaluation set.
4. The final model is fitted on all examples and its weights pruned to the
   ``max_features`` largest in magnitude (the file stays a few MB).

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


@dataclass(frozen=True)
class TrainConfig:
    features: FeatureConfig = field(default_factory=FeatureConfig)
    c: float = 2.0  # inverse regularisation strength
    folds: int = 5
    seed: int = 13
    min_df: int = 2
    max_features: int = 150_000
    high_precision_target: float = 0.9


@dataclass
class TrainResult:
    model: TextClassifier
    validation: dict[str, Any]  # out-of-fold figures on the validation examples


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


def _folds(labels: Sequence[int], k: int, seed: int) -> list[int]:
    """A stratified fold number per example (deterministic)."""
    rng = random.Random(seed)
    fold = [0] * len(labels)
    for cls in (0, 1):
        idx = [i for i, y in enumerate(labels) if y == cls]
        rng.shuffle(idx)
        for n, i in enumerate(idx):
            fold[i] = n % k
    return fold


def _calibrate(z: Sequence[float], y: Sequence[int]) -> tuple[float, float]:
    """Platt scaling: ``sigmoid(a*z + b)`` fitted to the out-of-fold scores."""
    clf = LogisticRegression(C=1e6, solver="lbfgs", max_iter=1000)
    clf.fit(np.asarray(z).reshape(-1, 1), np.asarray(y))
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


def train(
    examples: Sequence[TrainExample],
    config: TrainConfig,
    *,
    name: str,
    version: str,
    log: Any = None,
) -> TrainResult:
    """Fit, validate and calibrate a model (see the module docstring). ``ValueError``
    when the data cannot make one (one class only, no validation examples)."""
    say = log or (lambda _msg: None)
    labels = [e.label for e in examples]
    if len(set(labels)) < 2:
        raise ValueError("the training data needs both labels (0 and 1)")
    validation = [i for i, e in enumerate(examples) if e.validate]
    val_labels = [examples[i].label for i in validation]
    if len(set(val_labels)) < 2 or min(sum(val_labels), len(val_labels) - sum(val_labels)) < (
        config.folds
    ):
        raise ValueError(
            f"validation examples need at least {config.folds} of each label "
            f"(got {sum(val_labels)} positive of {len(val_labels)})"
        )
    fc = config.features
    say(f"features: {len(examples):,} examples")
    blocks = [feature_sets(tokens(e.text, fc), fc) for e in examples]
    df: dict[str, int] = {}
    for words, chars in blocks:
        for block in (words, chars):
            for f in block:
                df[f] = df.get(f, 0) + 1
    vocab = {f: j for j, f in enumerate(sorted(f for f, n in df.items() if n >= config.min_df))}
    x = _matrix(blocks, vocab)
    y = np.asarray(labels)
    w = np.asarray([e.weight for e in examples], dtype=float)
    say(f"vocabulary: {len(vocab):,} features (seen in {config.min_df}+ examples)")

    fold_of = dict(zip(validation, _folds(val_labels, config.folds, config.seed), strict=True))
    oof = np.zeros(len(validation))
    position = {i: n for n, i in enumerate(validation)}
    for k in range(config.folds):
        held = [i for i in validation if fold_of[i] == k]
        held_set = set(held)
        fit_rows = [i for i in range(len(examples)) if i not in held_set]
        clf = _fit(x[fit_rows], y[fit_rows], w[fit_rows], config)
        z = clf.decision_function(x[held])
        for i, zi in zip(held, z, strict=True):
            oof[position[i]] = zi
        say(f"fold {k + 1}/{config.folds}: {len(held)} validation examples scored")
    a, b = _calibrate([float(v) for v in oof], val_labels)
    probs = [_sigmoid(a * float(z) + b) for z in oof]
    thresholds, figures = _thresholds(probs, val_labels, config.high_precision_target)

    clf = _fit(x, y, w, config)
    coef = clf.coef_[0]
    names = sorted(vocab, key=vocab.__getitem__)
    order = np.argsort(-np.abs(coef), kind="stable")[: config.max_features]
    weights = {names[j]: float(coef[j]) for j in sorted(order) if coef[j] != 0.0}
    model = TextClassifier(name, version, fc, float(clf.intercept_[0]), weights, (a, b), thresholds)
    figures.update(
        {
            "examples": len(validation),
            "positives": int(sum(val_labels)),
            "folds": config.folds,
            "auc": _auc(probs, val_labels),
            "sources": sorted({examples[i].source for i in validation}),
        }
    )
    return TrainResult(model, figures)
