"""Training: deterministic, thresholds from out-of-fold validation scores only."""

from __future__ import annotations

import random

import pytest

from detectors.classifier.features import FeatureConfig
from detectors.classifier.train import TrainConfig, TrainExample, _thresholds, train

BAD = ["idiot", "moron", "stupid", "loser", "jerk", "clown", "fool"]
GOOD = ["thanks", "source", "citation", "agree", "helpful", "reference", "update"]
FILLER = ["the", "page", "you", "this", "edit", "is", "a", "your", "on", "talk"]


def _data(n: int, seed: int, validate_every: int = 3) -> list[TrainExample]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = int(rng.random() < 0.3)
        words = [*rng.sample(FILLER, 4), rng.choice(BAD if label else GOOD)]
        if rng.random() < 0.1:  # label noise, so the scores are not all 0 or 1
            label = 1 - label
        rng.shuffle(words)
        out.append(TrainExample(" ".join(words), label, 1.0, "toy", i % validate_every == 0))
    return out


CONFIG = TrainConfig(features=FeatureConfig(), folds=3, min_df=1, max_features=500)


def test_training_is_deterministic_and_separates_the_classes() -> None:
    data = _data(300, 1)
    first = train(data, CONFIG, name="toy", version="1")
    second = train(data, CONFIG, name="toy", version="1")
    assert first.model.weights == second.model.weights
    assert first.model.thresholds == second.model.thresholds
    assert first.validation == second.validation
    model = first.model
    assert len(model.weights) <= 500
    assert model.score("you are an idiot") > model.thresholds["operating"]
    assert model.score("thanks for the source") < model.thresholds["operating"]
    v = first.validation
    assert v["examples"] == 100 and v["auc"] > 0.8 and 0 < v["operating"]["threshold"] < 1


def test_the_validation_figures_come_from_the_validation_examples_only() -> None:
    data = _data(300, 2)
    base = train(data, CONFIG, name="toy", version="1").validation
    # relabel every training-only example at random: the validation pool is unchanged,
    # its out-of-fold scores change (models differ) but the pool's size and labels not
    rng = random.Random(5)
    noisy = [e if e.validate else TrainExample(e.text, rng.randint(0, 1)) for e in data]
    other = train(noisy, CONFIG, name="toy", version="1").validation
    assert (other["examples"], other["positives"]) == (base["examples"], base["positives"])


def test_data_that_cannot_make_a_model_is_refused() -> None:
    with pytest.raises(ValueError, match="both labels"):
        train([TrainExample("a", 0, validate=True)] * 20, CONFIG, name="t", version="1")
    few = [TrainExample("idiot", 1), TrainExample("thanks", 0)] * 20
    few.append(TrainExample("idiot", 1, validate=True))
    with pytest.raises(ValueError, match="validation examples need"):
        train(few, CONFIG, name="t", version="1")


def test_thresholds_best_f1_and_high_precision() -> None:
    scores = [0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2] * 3
    labels = [1, 1, 1, 1, 0, 1, 0, 0, 0, 0] * 3
    thresholds, figures = _thresholds(scores, labels, 0.9)
    assert thresholds["operating"] == 0.6  # F1 1.0 would need 0.7 excluded: 15/18
    assert figures["operating"]["recall"] == 1.0
    assert thresholds["high_precision"] == 0.8 and figures["high_precision"]["precision"] == 1.0
