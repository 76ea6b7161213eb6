"""Training data: an operator's CSV read strictly, the shared recipe's generated negatives,
and the evaluation sets kept apart from training."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from streams.commands.model_data import (
    DataError,
    evaluation_sets,
    neutral_sentences,
    read_identity_terms,
    read_labeled_csv,
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
