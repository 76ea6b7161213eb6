"""``rcwatch model train|eval|score|info`` as a rule maintainer runs them: retrain on one's
own labels, measure, try texts, and use the new model from a rule."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import orjson
import pytest

from detectors.classifier import load_model
from streams.commands.model import auc, precision_recall
from streams.commands.model_data import DataError, read_labeled_csv
from tests.conftest import shared_data
from tests.streams.commands.test_cli import rcwatch

ATTACKS = [
    "you are a {a} {n}", "shut up you {a} {n}", "nobody wants you here, {n}",
    "what a {a} {n} you are", "go away you {n}", "you {a} {n}, stop editing",
]  # fmt: skip
CIVIL = [
    "thanks for the {t} source", "I added a citation about the {t}", "please see the {t} talk",
    "the {t} section needs a reference", "good point about the {t}", "I moved the {t} paragraph",
]  # fmt: skip
INSULT_ADJ = ["stupid", "pathetic", "useless", "dim", "worthless", "clueless"]
INSULT_NOUN = ["clown", "buffoon", "halfwit", "nitwit", "dolt", "muppet"]
TOPICS = ["history", "river", "election", "album", "bridge", "species", "novel", "festival"]


def _verdicts_csv(path: Path, n: int, seed: int) -> Path:
    """An operator's own labeled CSV (text,label), e.g. exported on-call verdicts."""
    rng = random.Random(seed)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for _ in range(n):
            if rng.random() < 0.4:
                text = rng.choice(ATTACKS).format(
                    a=rng.choice(INSULT_ADJ), n=rng.choice(INSULT_NOUN)
                )
                w.writerow([text, 1])
            else:
                w.writerow([rng.choice(CIVIL).format(t=rng.choice(TOPICS)), 0])
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("model")
    data = _verdicts_csv(tmp / "verdicts.csv", 400, seed=1)
    out = rcwatch(
        "model", "train", "--csv", str(data), "--out", str(tmp / "clown"), "--name", "clowns",
        "--model-version", "t1", "--folds", "3", "--max-features", "2000",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "validation" in out.stdout + out.stderr
    return tmp / "clown"


def test_train_on_your_own_csv_writes_a_plain_versioned_model(trained: Path) -> None:
    assert sorted(p.name for p in trained.iterdir()) == [
        "MANIFEST.json", "model.json", "weights.tsv.gz",
    ]  # fmt: skip
    meta = orjson.loads((trained / "model.json").read_bytes())
    assert meta["name"] == "clowns" and meta["version"] == "t1"
    assert 0 < meta["thresholds"]["operating"] < 1
    assert meta["validation"]["auc"] > 0.9  # the toy task is easy; training must learn it
    manifest = orjson.loads((trained / "MANIFEST.json").read_bytes())
    [source] = manifest["sources"]
    assert source["file"] == "verdicts.csv" and source["rows"] == 400
    assert len(source["sha256"]) == 64  # provenance: which file exactly
    assert "--csv" in meta["trained_with"]["command"]
    model = load_model(trained)
    assert model.score("you are a useless muppet") > model.thresholds["operating"]
    assert model.score("thanks for the river source") < model.thresholds["operating"]


def test_training_is_repeatable(trained: Path, tmp_path: Path) -> None:
    data = _verdicts_csv(tmp_path / "verdicts.csv", 400, seed=1)
    out = rcwatch(
        "model", "train", "--csv", str(data), "--out", str(tmp_path / "again"), "--name",
        "clowns", "--model-version", "t1", "--folds", "3", "--max-features", "2000",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    again = tmp_path / "again"
    assert (again / "weights.tsv.gz").read_bytes() == (trained / "weights.tsv.gz").read_bytes()
    first, second = (orjson.loads((d / "model.json").read_bytes()) for d in (trained, again))
    for meta in (first, second):  # the command line names the CSV's path
        del meta["trained_with"]["command"]
    assert first == second


def test_score_info_and_eval(trained: Path, tmp_path: Path) -> None:
    out = rcwatch("model", "score", "--model", str(trained), "you are a useless muppet")
    assert out.returncode == 0, out.stderr
    score, _, rest = out.stdout.strip().partition("  ")
    assert float(score) > 0.5 and "muppet" in rest
    info = rcwatch("model", "info", "--model", str(trained))
    assert info.returncode == 0 and info.stdout.startswith("clowns t1:")
    held_out = _verdicts_csv(tmp_path / "held_out.csv", 200, seed=2)
    ev = rcwatch("model", "eval", "--model", str(trained), "--csv", str(held_out))
    assert ev.returncode == 0, ev.stderr
    assert "200 texts" in ev.stdout and "AUC" in ev.stdout and "operating threshold" in ev.stdout


def test_a_rule_uses_a_model_from_the_settings(trained: Path, tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text(
        "rules:\n  - id: own.clown\n    title: Clowning\n    category: harassment\n"
        "    severity: medium\n"
        "    match: {field: added_text, classifier: clowns, min_score: 0.5}\n"
        "    examples:\n      match: [{added_text: 'shut up you dim dolt'}]\n"
        "      no_match: [{added_text: 'good point about the bridge'}]\n"
    )
    config = tmp_path / "rcwatch.yaml"
    config.write_text(
        f"detectors:\n  rules_paths: [{rules}]\n  classifiers:\n    clowns: {trained}\n"
    )
    out = rcwatch("rules", "test", "--config", str(config))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 examples of 1 rules passed" in out.stdout
    config.write_text(
        f"detectors:\n  rules_paths: [{rules}]\n"
    )  # without the model, the rule is an error
    out = rcwatch("rules", "validate", "--config", str(config))
    assert out.returncode == 1
    assert "r.yaml:6:" in out.stdout and "unknown classifier 'clowns'" in out.stdout


def test_a_bad_csv_line_is_named_and_nothing_is_written(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nfine,0\nrude,maybe\n")
    out = rcwatch("model", "train", "--csv", str(bad), "--out", str(tmp_path / "m"))
    assert out.returncode == 2
    assert f"{bad}:3" in out.stderr and "label" in out.stderr
    assert not (tmp_path / "m").exists()
    out = rcwatch("model", "train", "--out", str(tmp_path / "m"))
    assert out.returncode == 2 and "--shared" in out.stderr


def test_the_shared_recipe_runs_on_a_sample(tmp_path: Path) -> None:
    """The command that rebuilt the shipped model, on 150 rows per source (the full run
    takes minutes; bench/harassment_eval.py measures the shipped result)."""
    out = rcwatch(
        "model", "train", "--shared", str(shared_data("labeled")), "--out", str(tmp_path / "m"),
        "--max-rows-per-source", "150", "--folds", "3", "--max-features", "5000",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    manifest = orjson.loads((tmp_path / "m" / "MANIFEST.json").read_bytes())
    roles = {s["file"]: s["role"] for s in manifest["sources"]}
    jigsaw = "jigsaw_toxic_subset/jigsaw_subset_merged_dedup.csv.gz"
    assert roles[f"{jigsaw} (source=fastbert_train_sample)"] == "train+validation"
    # what it never trains on is recorded too
    assert roles["toxicity_training/cat_small.csv.gz"].startswith("evaluation only")
    files = [s for s in manifest["sources"] if not s["file"].startswith("(generated)")]
    assert all(len(s["sha256"]) == 64 for s in files)


def test_auc_and_precision_recall_helpers() -> None:
    assert auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    assert auc([0.5, 0.5], [0, 1]) == 0.5  # a tie counts half
    assert precision_recall([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], 0.35) == (2 / 3, 1.0)


GERMAN_ATTACKS = ["du {a} {n}", "halt die klappe, du {n}", "was für ein {a} {n}", "hau ab, {n}"]
GERMAN_CIVIL = [
    "danke für die {t} quelle",
    "ich habe den {t} abschnitt belegt",
    "gute idee zum {t}",
]
GERMAN_ADJ = ["dummer", "blöder", "elender", "mieser"]
GERMAN_NOUN = ["idiot", "trottel", "depp", "vollpfosten", "dummkopf"]
GERMAN_TOPIC = ["fluss", "wahl", "roman", "brücke", "festival"]


def _two_languages_csv(path: Path, n: int, seed: int) -> Path:
    """An operator's CSV with a language column: rows without one are English."""
    _verdicts_csv(path, n, seed)
    rng = random.Random(seed)
    rows = [[*row, ""] for row in csv.reader(path.open())]
    rows[0][-1] = "language"
    for _ in range(n):
        if rng.random() < 0.5:
            text = rng.choice(GERMAN_ATTACKS).format(
                a=rng.choice(GERMAN_ADJ), n=rng.choice(GERMAN_NOUN)
            )
            rows.append([text, "1", "de"])
        else:
            rows.append([rng.choice(GERMAN_CIVIL).format(t=rng.choice(GERMAN_TOPIC)), "0", "de"])
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def test_a_model_per_language_and_what_it_does_not_cover(tmp_path: Path) -> None:
    data = _two_languages_csv(tmp_path / "verdicts.csv", 300, seed=3)
    out = rcwatch(
        "model", "train", "--csv", str(data), "--out", str(tmp_path / "m"), "--name", "clowns",
        "--model-version", "t2", "--folds", "3", "--max-features", "2000",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    meta = orjson.loads((tmp_path / "m" / "model.json").read_bytes())
    assert meta["default_language"] == "en" and sorted(meta["languages"]) == ["de"]
    german = meta["languages"]["de"]
    assert german["weights_file"] == "weights.de.tsv.gz"
    assert german["validation"]["examples"] == 300 and german["validation"]["auc"] > 0.9
    assert 0 < german["thresholds"]["operating"] < 1
    manifest = orjson.loads((tmp_path / "m" / "MANIFEST.json").read_bytes())
    assert manifest["languages"] == ["en", "de"]

    info = rcwatch("model", "info", "--model", str(tmp_path / "m"))
    assert info.returncode == 0, info.stderr
    lines = info.stdout.splitlines()
    assert lines[0].startswith("clowns t2:") and "a model of its own for de" in lines[0]
    en_line = next(ln for ln in lines if ln.startswith("  en "))
    de_line = next(ln for ln in lines if ln.startswith("  de "))
    assert "AUC" in en_line and "operating" in en_line
    assert "    300 " in de_line and "AUC" in de_line and "operating" in de_line
    [missing] = [ln for ln in lines if "not covered" in ln]
    assert "fr" in missing and "zh" in missing and " de" not in missing.split(":", 1)[1]

    model = load_model(tmp_path / "m")
    assert model.score("du blöder trottel", "de") > model.for_language("de").thresholds["operating"]
    assert model.score("danke für die fluss quelle", "de") < 0.5
    score = rcwatch("model", "score", "--model", str(tmp_path / "m"), "--language", "it", "ciao")
    assert score.returncode == 0 and "does not cover 'it'" in score.stderr
    score = rcwatch(
        "model", "score", "--model", str(tmp_path / "m"), "--language", "de", "du dummer depp"
    )
    assert score.returncode == 0 and not score.stderr and "depp" in score.stdout


def test_csv_language_names_the_language_of_rows_without_one(tmp_path: Path) -> None:
    data = _verdicts_csv(tmp_path / "verdicts.csv", 200, seed=4)
    rows, record = read_labeled_csv(data, language="nl")
    assert {r.language for r in rows} == {"nl"} and record.language == "nl"
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label,language\nfine,0,German\n")
    with pytest.raises(DataError, match=r"bad\.csv:2: language must be a code"):
        read_labeled_csv(bad)
