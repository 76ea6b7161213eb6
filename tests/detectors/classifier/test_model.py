"""The text classifier: scoring equals its reference definition; files are checked."""

from __future__ import annotations

import gzip
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from detectors.classifier.features import FeatureConfig, feature_sets, token_spans, tokens
from detectors.classifier.model import ModelError, TextClassifier, load_model, save_model
from tests.conftest import REPO

CONFIG = FeatureConfig(identity_terms=frozenset({"gay", "muslim", "woman"}))


def _model(weights: dict[str, float], intercept: float = -1.0) -> TextClassifier:
    return TextClassifier("toy", "1", CONFIG, intercept, weights, (1.5, 0.2), {"operating": 0.5})


def _reference(model: TextClassifier, text: str) -> float:
    """The score as the features module defines it (word block binary, character block
    counted over distinct tokens), each normalised by its size."""
    words, chars = feature_sets(tokens(text, model.features), model.features)
    z = model.intercept
    if words:
        z += sum(model.weights.get(f, 0.0) for f in words) / math.sqrt(len(words))
    if chars:
        total = sum(chars.values())
        z += sum(model.weights.get(f, 0.0) * k for f, k in chars.items()) / math.sqrt(total)
    return model.probability(z)


WORDS = ["you", "are", "an", "idiot", "thanks", "for", "the", "source", "moron", "stupid",
         "Idiiiiot", "don't", "gay", "page", "édition", "naïve", "ёж", "你好"]  # fmt: skip


def test_the_fast_score_equals_the_reference_definition() -> None:
    rng = random.Random(3)
    weights = {}
    for w in WORDS:
        t = tokens(w, CONFIG)
        words, chars = feature_sets(t, CONFIG)
        for f in [*words, *chars]:
            weights[f] = rng.uniform(-2, 2)
    weights["b:you are"] = 0.7
    weights["b:an idiot"] = 1.9
    model = _model(weights)
    for _ in range(300):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 30)))
        assert model.score(text) == pytest.approx(_reference(model, text), abs=1e-12), text


def test_identity_terms_carry_no_weight_and_repeats_are_squeezed() -> None:
    model = _model({"w:idiot": 3.0, "c:idi": 1.0})
    assert model.score("I am a gay Muslim woman") == model.score("I am a")
    assert model.score("you IDIOOOOOT") == model.score("you idioot")  # 3+ repeats: two
    assert model.score("") == model.probability(model.intercept)


def test_only_the_first_max_chars_are_read() -> None:
    config = FeatureConfig(max_chars=20)
    model = TextClassifier("toy", "1", config, 0.0, {"w:idiot": 5.0})
    assert model.score("x" * 30 + " idiot") == model.score("x" * 30)
    assert model.score("idiot " + "x" * 30) > model.score("x" * 30)


def test_explain_names_the_tokens_that_pushed_the_score_up() -> None:
    model = _model({"w:idiot": 3.0, "w:moron": 1.0, "w:thanks": -2.0, "b:you idiot": 1.0})
    text = "Thanks, but you Idiot, you moron"
    terms = model.explain(text)
    assert [text[t.start : t.end] for t in terms] == ["Idiot", "moron", "you"]
    assert terms[0].weight > terms[1].weight > 0
    assert model.explain("thanks") == []


def test_token_spans_point_at_the_tokens() -> None:
    text = "A gay editor SAID: niiiice!"
    spans = token_spans(text, CONFIG)
    assert [w for _, _, w in spans] == tokens(text, CONFIG)
    assert [text[s:e] for s, e, _ in spans] == ["A", "editor", "SAID", "niiiice"]


def test_save_and_load_give_the_same_scores(tmp_path: Path) -> None:
    model = _model({"w:idiot": 3.25, "b:you idiot": 1.0, "c: id": 0.125, "c:ot ": -0.5})
    save_model(model, tmp_path, {"validation": {"auc": 0.9}})
    again = load_model(tmp_path)
    assert again.meta["validation"] == {"auc": 0.9}
    assert again.thresholds == {"operating": 0.5}
    for text in ("you idiot", "thanks for the source", ""):
        assert again.score(text) == pytest.approx(model.score(text), abs=1e-6)
    first = (tmp_path / "weights.tsv.gz").read_bytes()
    save_model(model, tmp_path, {"validation": {"auc": 0.9}})
    assert (tmp_path / "weights.tsv.gz").read_bytes() == first, "deterministic bytes"


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("format", "not an rcwatch text classifier"),
        ("version", "format version 99"),
        ("checksum", "does not match weights_sha256"),
        ("line", "expected 'feature<TAB>weight'"),
        ("json", "is not JSON"),
        ("escape", "must be a file name"),
    ],
)
def test_a_damaged_model_is_refused_with_the_file_named(
    tmp_path: Path, damage: str, message: str
) -> None:
    import orjson

    save_model(_model({"w:idiot": 1.0}), tmp_path, {})
    meta_path = tmp_path / "model.json"
    meta = orjson.loads(meta_path.read_bytes())
    if damage == "format":
        meta["format"] = "pickle"
    elif damage == "version":
        meta["format_version"] = 99
    elif damage == "checksum":
        (tmp_path / "weights.tsv.gz").write_bytes(gzip.compress(b"w:idiot\t9\n"))
    elif damage == "line":
        blob = gzip.compress(b"w:idiot 9\n")
        (tmp_path / "weights.tsv.gz").write_bytes(blob)
        meta.pop("weights_sha256")
    elif damage == "escape":
        meta["weights_file"] = "../weights.tsv.gz"
    if damage == "json":
        meta_path.write_text("{torn")
    else:
        meta_path.write_bytes(orjson.dumps(meta))
    with pytest.raises(ModelError, match=message) as info:
        load_model(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_a_score_is_the_same_in_every_process_whatever_its_hash_seed() -> None:
    """Scores were sums over sets of strings, whose order changes with each process's
    hash seed: two replays of the same events gave evidence differing in the last digits
    (and explanations in a different order on ties). They are now exactly rounded."""
    script = (
        "import sys; from pathlib import Path; from detectors.classifier import load_model; "
        "from detectors.classifier import shipped_model_dirs; "
        "m = load_model(shipped_model_dirs()['toxicity']); "
        "texts = ['you are a complete idiot and everyone on this talk page knows it, "
        "stop editing my articles you moron', 'thanks for the fix, the citation looks "
        "right to me now, well done', 'idiot idiot moron stupid dumb fool jerk']; "
        "print([repr(m.linear(t)) for t in texts], [[w.start for w in m.explain(t, 10)] "
        "for t in texts])"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", script],
            cwd=REPO,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
            check=True,
        ).stdout
        for seed in ("1", "2", "3", "4", "5", "6")
    }
    assert len(outs) == 1, outs
