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


# -- languages (issue 21) -------------------------------------------------------------------

TOKENIZER2 = FeatureConfig(identity_terms=frozenset({"gay"}), tokenizer=2)


def test_tokenizer_2_keeps_marks_normalises_and_windows_unspaced_scripts() -> None:
    # Devanagari vowel signs stay in their word (tokenizer 1 cut it in pieces)
    assert tokens("नमस्ते दुनिया", TOKENIZER2) == ["नमस्ते", "दुनिया"]
    assert tokens("नमस्ते", CONFIG) != ["नमस्ते"]
    # a Chinese sentence is overlapping windows of two characters, not one token
    assert tokens("你是傻逼吧", TOKENIZER2) == ["你是", "是傻", "傻逼", "逼吧"]
    assert tokens("你是傻逼吧", CONFIG) == ["你是傻逼吧"]
    # Latin within a Chinese run is its own token; full-width letters read as plain ones
    assert tokens("gdp也是", TOKENIZER2) == ["gdp", "也是"]
    assert tokens("ＩＤＩＯＴ ｶﾞｷ", TOKENIZER2) == ["idiot", "ガキ"]
    # English reads as before; identity terms are still dropped
    text = "You IDIOOOOT, don't be a gay-bashing troll"
    assert tokens(text, TOKENIZER2) == tokens(
        text, FeatureConfig(identity_terms=frozenset({"gay"}))
    )


@pytest.mark.parametrize(
    "text",
    ["你是傻逼吧，真的", "gdp也是服了你了", "ＡＢＣ ｶﾞｷ you", "नमस्ते दुनिया", "שָׁלוֹם חבר", "abc你好ｶﾞｷ"],
)
def test_tokenizer_2_spans_are_its_tokens_and_lie_in_the_text(text: str) -> None:
    spans = token_spans(text, TOKENIZER2)
    assert [w for _, _, w in spans] == tokens(text, TOKENIZER2)
    assert all(0 <= s < e <= len(text) for s, e, _ in spans)


def test_tokenizer_2_fast_score_equals_the_reference_definition() -> None:
    rng = random.Random(4)
    words = [*WORDS, "你是傻逼", "東京がええよ", "नमस्ते", "ｶﾞｷ", "Müller", "바보야"]
    weights: dict[str, float] = {}
    for w in words:
        found, chars = feature_sets(tokens(w, TOKENIZER2), TOKENIZER2)
        for f in [*found, *chars]:
            weights[f] = rng.uniform(-2, 2)
    model = TextClassifier("toy", "1", TOKENIZER2, -1.0, weights)
    for _ in range(200):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(0, 20)))
        assert model.score(text) == pytest.approx(_reference(model, text), abs=1e-12), text


def _multilingual() -> TextClassifier:
    """A default (English) model; German with the default weights and a calibration of its
    own; Chinese with weights of its own."""
    base = TextClassifier(
        "toy", "1", TOKENIZER2, -1.0, {"w:idiot": 3.0, "w:dummkopf": 2.0, "w:thanks": -2.0},
        (1.5, 0.2), {"operating": 0.5},
    )  # fmt: skip
    german = base.recalibrated((0.5, -1.0), {"operating": 0.3}, {"validation": {"auc": 0.8}})
    chinese = TextClassifier(
        "toy", "1", TOKENIZER2, -2.0, {"w:傻逼": 12.0}, (1.0, 0.0), {"operating": 0.6},
        {"validation": {"auc": 0.9}},
    )  # fmt: skip
    base.languages = {"de": german, "zh": chinese}
    return base


def test_a_text_is_scored_with_its_languages_calibration_and_weights() -> None:
    model = _multilingual()
    text = "du dummkopf"
    z = model.linear(text)
    assert model.score(text) == model.probability(z)  # no language: the default's
    assert model.score(text, "en") == model.score(text)
    german = model.score(text, "de")
    assert german == pytest.approx(1 / (1 + math.exp(-(0.5 * z - 1.0))))
    assert german != model.score(text)
    assert model.score(text, "de-AT") == german == model.score(text, "DE")  # primary subtag
    # Chinese has a model of its own: its weights and its tokenizer
    assert model.score("你是傻逼", "zh") > 0.8 > model.score("你是傻逼")
    assert [("你是傻逼"[t.start : t.end]) for t in model.explain("你是傻逼", language="zh")] == [
        "傻逼"
    ]
    assert model.for_language("zh").thresholds == {"operating": 0.6}


def test_a_language_the_model_does_not_cover_falls_back_to_the_default() -> None:
    model = _multilingual()
    for code in ("it", "es", "pt-br", "xx-yy"):
        assert model.score("du dummkopf", code) == model.score("du dummkopf")
        assert not model.covers(code)
        assert model.for_language(code) is model
    assert all(model.covers(c) for c in ("en", "en-GB", "de", "zh", None))
    assert model.covered_languages == ["en", "de", "zh"]


def test_save_and_load_keep_every_language(tmp_path: Path) -> None:
    model = _multilingual()
    (tmp_path / "weights.fr.tsv.gz").write_bytes(b"stale")  # a language no longer there
    save_model(model, tmp_path, {"validation": {"auc": 0.7}})
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "model.json", "weights.tsv.gz", "weights.zh.tsv.gz",
    ]  # fmt: skip
    again = load_model(tmp_path)
    assert again.covered_languages == ["en", "de", "zh"]
    assert again.languages["de"].weights is again.weights  # shared, not a copy
    assert again.languages["de"].meta["validation"] == {"auc": 0.8}
    assert again.for_language("de").thresholds == {"operating": 0.3}
    for text, code in [("du dummkopf", "de"), ("你是傻逼", "zh"), ("thanks", None)]:
        assert again.score(text, code) == pytest.approx(model.score(text, code), abs=1e-6)


def test_a_version_1_model_still_loads_and_covers_its_default_language(tmp_path: Path) -> None:
    import orjson

    save_model(_model({"w:idiot": 1.0}), tmp_path, {})
    meta = orjson.loads((tmp_path / "model.json").read_bytes())
    for key in ("languages", "default_language"):
        del meta[key]
    meta["format_version"] = 1
    (tmp_path / "model.json").write_bytes(orjson.dumps(meta))
    model = load_model(tmp_path)
    assert model.covered_languages == ["en"] and not model.covers("de")
    assert model.score("idiot", "de") == model.score("idiot")


def test_a_bad_language_entry_is_refused_with_the_file_named(tmp_path: Path) -> None:
    import orjson

    save_model(_multilingual(), tmp_path, {})
    meta = orjson.loads((tmp_path / "model.json").read_bytes())
    meta["languages"]["German"] = meta["languages"].pop("de")
    (tmp_path / "model.json").write_bytes(orjson.dumps(meta))
    with pytest.raises(ModelError, match=r"languages\.German: not a lower-case language code"):
        load_model(tmp_path)
    meta["languages"]["de"] = meta["languages"].pop("German")
    meta["languages"]["zh"]["weights_sha256"] = "0" * 64
    (tmp_path / "model.json").write_bytes(orjson.dumps(meta))
    with pytest.raises(ModelError, match=r"does not match languages\.zh\.weights_sha256"):
        load_model(tmp_path)
