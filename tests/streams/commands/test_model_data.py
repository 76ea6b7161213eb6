"""Training data: an operator's CSV read strictly, the shared recipe's generated negatives,
and the evaluation sets kept apart from training."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from streams.commands.model_data import (
    MEASURE_ONLY_SETS,
    SHIP_SAFE_SETS,
    DataError,
    beyond_domain_sentences,
    evaluation_sets,
    neutral_sentences,
    read_identity_terms,
    read_labeled_csv,
    shared_recipe,
)
from tests.conftest import shared_data

REPO = Path(__file__).resolve().parents[3]


def test_a_labeled_csv_with_weights_and_quoted_lines(tmp_path: Path) -> None:
    path = tmp_path / "verdicts.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write('text,label,weight\n"you are, truly,\na clown",true,2\nthanks,0,\n,1,\n')
    rows, record = read_labeled_csv(path, weight=5.0)
    assert [(r.text, r.label, r.weight) for r in rows] == [
        ("you are, truly,\na clown", 1, 2.0),
        ("thanks", 0, 5.0),  # no weight of its own: the command's
    ]  # an empty text is skipped, not trained on
    assert (record.file, record.rows, record.positives) == ("verdicts.csv.gz", 2, 1)
    assert all(r.validate for r in rows), "an operator's rows also form the validation folds"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("words,label\nx,1\n", ":1: needs a header with 'text' and 'label'"),
        ("text,label\nfine,0\nrude,maybe\n", ":3: label must be"),
        ("text,label,weight\nfine,0,heavy\n", ":2: weight must be a number"),
        ("text,label,weight\nfine,0,-1\n", ":2: weight must be positive"),
        (b"text,label\n\xff\xfe,1\n", "UTF-8"),
    ],
)
def test_a_bad_csv_names_file_and_line(tmp_path: Path, content: str | bytes, message: str) -> None:
    path = tmp_path / "bad.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(DataError) as err:
        read_labeled_csv(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_neutral_sentences_are_deterministic_and_name_groups() -> None:
    terms = read_identity_terms(REPO / "config" / "models" / "identity_terms.txt")
    assert "muslim" in terms and "gay" in terms
    one, two = neutral_sentences(terms, seed=13), neutral_sentences(terms, seed=13)
    assert one == two and len(one) > 500
    assert any("muslim" in s.lower() for s in one)
    assert neutral_sentences(terms, seed=14) != one


def test_evaluation_sets_are_the_ones_never_trained_on() -> None:
    sets = {s.name: s for s in evaluation_sets(shared_data("labeled"))}
    assert list(sets)[:4] == [
        "jigsaw held-out", "jigsaw val-sample (suspect labels)", "detox 250", "CAT (gc, gn, small)",
    ]  # fmt: skip
    assert all(sets[n].wikipedia for n in list(sets)[:4])
    held = sets["jigsaw held-out"]
    assert "fastbert_train_sample" not in set(held.groups), "the training rows stay out"
    assert len(held.texts) == len(held.labels) > 200 and 0 < sum(held.labels) < len(held.labels)
    hatecheck = set(sets["HateCheck"].groups)
    assert {"counter_quote_nh", "ident_neutral_nh", "negate_neg_nh"} <= hatecheck


def test_the_recipe_trains_only_on_sets_marked_ship_yes(tmp_path: Path) -> None:
    sources = (shared_data("labeled") / "multilingual" / "SOURCES.md").read_text()
    assert "| de_gahd |" in sources
    (tmp_path / "multilingual").mkdir()
    lines = [
        ln.replace("| CC BY 4.0 | yes |", "| CC BY 4.0 | no |") if "| de_gahd |" in ln else ln
        for ln in sources.splitlines()
    ]
    (tmp_path / "multilingual" / "SOURCES.md").write_text("\n".join(lines))
    with pytest.raises(DataError, match="de_gahd is not marked ship = yes"):
        shared_recipe(tmp_path, [])
    assert not set(SHIP_SAFE_SETS) & set(MEASURE_ONLY_SETS)


def test_the_recipe_reads_every_ship_safe_language_and_no_other(tmp_path: Path) -> None:
    examples, records = shared_recipe(shared_data("labeled"), ["gay"], max_rows=20)
    languages = {e.language for e in examples}
    assert languages == {"", *SHIP_SAFE_SETS.values()}
    files = {r.file for r in records}
    assert not any(name in f for f in files for name in MEASURE_ONLY_SETS)
    assert all(e.validate for e in examples if e.language)  # each language's own folds
    german = [r for r in records if r.language == "de"]
    assert len(german) == 2 and all(len(r.sha256) == 64 for r in german)


def test_beyond_domain_templates_cover_every_class_and_are_deterministic() -> None:
    rows = beyond_domain_sentences(13)
    assert rows == beyond_domain_sentences(13)
    classes = {c: {y for _, y, c_ in rows if c_ == c} for _, _, c in rows}
    assert classes == {
        "technical": {0}, "encyclopedic": {0}, "figurative": {0}, "counter speech": {0},
        "quotation": {0}, "self-deprecation": {0}, "attack without an insult word": {1},
    }  # fmt: skip
    assert all(len([r for r in rows if r[2] == c]) >= 80 for c in classes)
    assert any("should be killed" in t for t, _, c in rows if c == "technical")
