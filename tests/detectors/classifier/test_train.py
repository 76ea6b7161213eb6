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


# -- languages (issue 21) -------------------------------------------------------------------

XX_BAD = ["blorg", "snerk", "vlunt", "grabo", "zupp"]
XX_GOOD = ["danko", "mirel", "sofa", "tavi", "lumo"]
XX_FILLER = ["ka", "te", "ro", "mi", "sa", "lo", "pe", "du"]


def _language(n: int, seed: int, language: str, share: float) -> list[TrainExample]:
    """A made-up language with its own words, ``share`` of it abusive, all validation."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        label = int(rng.random() < share)
        words = [*rng.sample(XX_FILLER, 3), rng.choice(XX_BAD if label else XX_GOOD)]
        if rng.random() < 0.1:
            label = 1 - label
        rng.shuffle(words)
        out.append(TrainExample(" ".join(words), label, 1.0, f"{language}_set", True, language))
    return out


def test_each_language_gets_its_own_model_calibration_and_figures() -> None:
    data = [*_data(300, 1), *_language(300, 2, "xx", 0.6)]
    result = train(data, CONFIG, name="toy", version="1")
    model = result.model
    assert model.covered_languages == ["en", "xx"]
    xx = model.languages["xx"]
    assert xx.weights is not model.weights and "w:blorg" in xx.weights
    assert "w:blorg" not in model.weights  # English never saw the other language
    assert model.score("ka blorg te", "xx") > xx.thresholds["operating"]
    assert model.score("ka danko te", "xx") < xx.thresholds["operating"]
    figures = result.languages["xx"]
    assert figures["examples"] == 300 and figures["sources"] == ["xx_set"]
    assert figures["auc"] > 0.8 and "operating" in figures
    assert xx.meta["validation"] is figures
    # the calibration reads on the default language's share of abuse, not on the set's
    english = result.validation["positives"] / result.validation["examples"]
    assert figures["calibration_prior"] == pytest.approx(english)
    oof = [result.out_of_fold[i] for i, e in enumerate(data) if e.language == "xx"]
    assert len(oof) == 300
    labels = [e.label for e in data if e.language == "xx"]
    share = sum(labels) / len(labels)
    w = [english / share if y else (1 - english) / (1 - share) for y in labels]
    mean = sum(wi * p for wi, p in zip(w, oof, strict=True)) / sum(w)
    assert mean == pytest.approx(english, abs=0.01)
    assert mean < share - 0.2  # a raw calibration would have read about 0.6


def test_a_language_without_enough_validation_is_reported_not_covered() -> None:
    few = _language(60, 3, "yy", 0.1)  # about 6 positive: fewer than 50 of a label
    one_label = [TrainExample("ze hurt ze", 1, 1.0, "zz_set", True, "zz")] * 30
    data = [*_data(300, 1), *_language(300, 2, "xx", 0.6), *few, *one_label]
    result = train(data, CONFIG, name="toy", version="1")
    assert result.model.covered_languages == ["en", "xx"]
    assert set(result.not_covered) == {"yy", "zz"}
    assert (
        "of each label" in result.not_covered["yy"]["reason"]
        or "fewer than 50" in (result.not_covered["yy"]["reason"])
    )
    assert result.not_covered["zz"]["reason"] == "its examples have one label only"
    assert not result.model.covers("yy")
    assert result.model.score("ka blorg", "yy") == result.model.score("ka blorg")
