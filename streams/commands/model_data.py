"""Labeled text for training and measuring the toxicity classifier: readers and the recipe.

The *shared recipe* reads ``../shared/data/labeled`` (see its SOURCES.md) and decides what
trains the shipped model and what is kept away from it to measure it:

=====================================  ==========================  =======================
source                                 label                       role
=====================================  ==========================  =======================
Davidson tweets                        hate or offensive = 1       train
ParaDetox pairs                        toxic = 1, rewrites = 0     train
s-nlp detox (Civil Comments)           file name                   train
Jigsaw ``fastbert_train_sample``       toxic, insult or threat     train + validation
                                                                   folds (weight 5)
neutral templates (generated here)     0                           train
Jigsaw other samples                   toxic, insult or threat     evaluation only
CAT (gc, gn, small), detox 250         as labeled                  evaluation only
HateCheck, bias madlibs                as labeled                  evaluation only
=====================================  ==========================  =======================

Only 1,000 of the training rows are Wikipedia talk comments (the Jigsaw sample): they are
weighted up and are the only validation data, so thresholds and calibration are chosen on
Wikipedia text. Every Wikipedia set not used for that is kept for evaluation.

An operator's own CSV (``text,label`` and optionally ``weight``; label 1/0, true/false,
yes/no) is in-domain by definition: its rows train and form the validation folds.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detectors.classifier.train import TrainExample

__all__ = [
    "DataError",
    "EvalSet",
    "SourceRecord",
    "evaluation_sets",
    "neutral_sentences",
    "read_identity_terms",
    "read_labeled_csv",
    "shared_recipe",
]

JIGSAW = "jigsaw_toxic_subset/jigsaw_subset_merged_dedup.csv.gz"
JIGSAW_TRAIN_SOURCE = "fastbert_train_sample"
JIGSAW_SUSPECT_SOURCE = (
    "fastbert_val_sample"  # labels disagree with the text (bench/harassment_eval.py)
)
TT = "toxicity_training/"


class DataError(Exception):
    """Labeled data that cannot be read; the message names the file (and line)."""


@dataclass(frozen=True)
class SourceRecord:
    """One source as the manifest records it."""

    file: str
    sha256: str
    rows: int
    positives: int
    label: str  # how the label was read
    role: str  # "train", "train+validation", "evaluation"
    weight: float = 1.0

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "sha256": self.sha256,
            "rows": self.rows,
            "positives": self.positives,
            "label": self.label,
            "role": self.role,
            "weight": self.weight,
        }


@dataclass(frozen=True)
class EvalSet:
    name: str
    texts: list[str]
    labels: list[int]
    groups: list[str]  # per text: its source, template or functionality
    wikipedia: bool  # Wikipedia talk-page text


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _open_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
        return data.decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot be read as UTF-8 text ({exc})") from None


def _rows(path: Path, delimiter: str = ",") -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(_open_text(path)), delimiter=delimiter))


def _lines(path: Path) -> list[str]:
    return [ln.strip() for ln in _open_text(path).split("\n") if ln.strip()]


def _need(root: Path, name: str) -> Path:
    path = root / name
    if not path.is_file():
        raise DataError(f"{path} not found (is {root} the shared data's labeled/ directory?)")
    return path


def _jigsaw_positive(row: dict[str, str]) -> int:
    return int("1" in (row.get("toxic"), row.get("insult"), row.get("threat")))


def _cap(items: list[Any], max_rows: int | None, seed: int) -> list[Any]:
    if max_rows is None or len(items) <= max_rows:
        return items
    rng = random.Random(seed)
    return rng.sample(items, max_rows)


def neutral_sentences(identity_terms: Iterable[str], seed: int = 13) -> list[str]:
    """Neutral sentences naming people and groups, and compliments: negatives that teach
    the model that "you are a ..." and identity words are not attacks by themselves.
    Generated, so their provenance is this function (recorded in the manifest). They
    resemble the shapes of the bias madlibs probe, which therefore flatters the model:
    HateCheck's neutral identity mentions are the independent check."""
    rng = random.Random(seed)
    ids = sorted(identity_terms) or ["person"]
    good = [
        "great",
        "kind",
        "wonderful",
        "fantastic",
        "brilliant",
        "helpful",
        "thoughtful",
        "good",
        "friendly",
        "talented",
        "careful",
        "generous",
        "patient",
        "smart",
        "lovely",
        "fun",
        "nice",
    ]
    nouns = [
        "editor",
        "person",
        "friend",
        "writer",
        "colleague",
        "neighbour",
        "teacher",
        "reviewer",
        "contributor",
        "admin",
        "researcher",
        "student",
        "photographer",
    ]
    frames = [
        "you are a {a} {n}",
        "you are such a {a} {n}",
        "thanks, you are a {a} {n}",
        "she is a {a} {n}",
        "he is a {a} {n}",
        "they are {a} people",
        "what a {a} {n} you are",
        "i am a {i} {n}",
        "i am {i}",
        "as a {i} {n}, i agree",
        "my {n} is {i}",
        "being {i} is fine",
        "our {a} {n} is {i}",
        "the article is about {i} {n}s",
        "{i} {n}s contributed to this page",
        "i am a proud {i} {n}",
        "she is {i} and a {a} {n}",
        "{p} is a {a} {n}",
        "{p} is a {a} {i}",
        "{p} is {a}",
        "{p} is {i}",
        "{p} and {q} are {a} {n}s",
        "you are a {a} {i}",
    ]
    # given names from many languages: a name is not an identity term, and "X is a ..."
    # is how many attacks start, so the model must also see it end kindly
    people = [
        "Amara",
        "Sven",
        "Mei",
        "Oluwaseun",
        "Ravi",
        "Ingrid",
        "Tomás",
        "Aiko",
        "Yusuf",
        "Noa",
        "Dmitri",
        "Priya",
        "Kwame",
        "Lucía",
        "Mateus",
        "Hana",
        "Elif",
        "Kofi",
        "Siobhan",
        "Arjun",
        "Farah",
        "Jonas",
        "Thandiwe",
        "Ngozi",
        "Chen",
        "Marta",
    ]
    out: set[str] = set()
    for frame in frames:
        for _ in range(60):
            p, q = rng.sample(people, 2)
            text = frame.format(
                a=rng.choice(good), n=rng.choice(nouns), i=rng.choice(ids), p=p, q=q
            )
            out.add(text.lower())
    return sorted(out)


def shared_recipe(
    root: Path,
    identity_terms: Iterable[str],
    *,
    max_rows: int | None = None,
    seed: int = 13,
    jigsaw_weight: float = 5.0,
) -> tuple[list[TrainExample], list[SourceRecord]]:
    """The shipped model's training data from the shared ``labeled/`` directory (see the
    module docstring); ``max_rows`` samples each source down (quick runs and tests)."""
    examples: list[TrainExample] = []
    records: list[SourceRecord] = []

    def add(
        name: str, label: str, items: list[tuple[str, int]], role: str, weight: float = 1.0
    ) -> None:
        items = _cap(items, max_rows, seed)
        validate = role == "train+validation"
        file = name.split(" (", 1)[0]
        examples.extend(
            TrainExample(t, y, weight, file.rsplit("/", 1)[-1], validate) for t, y in items if t
        )
        path = root / file
        records.append(
            SourceRecord(
                name,
                _sha256(path) if path.is_file() else "-",
                len(items),
                sum(y for _, y in items),
                label,
                role,
                weight,
            )
        )

    davidson = _rows(_need(root, TT + "davidson_labeled_data.csv.gz"))
    add(
        TT + "davidson_labeled_data.csv.gz",
        "class 0 (hate) or 1 (offensive) = 1; 2 (neither) = 0",
        [(r["tweet"], int(r["class"] in ("0", "1"))) for r in davidson],
        "train",
    )
    para: list[tuple[str, int]] = []
    for r in _rows(_need(root, TT + "paradetox.tsv.gz"), "\t"):
        para.append((r["toxic"], 1))
        para.extend((r[k], 0) for k in ("neutral1", "neutral2", "neutral3") if r.get(k))
    add(TT + "paradetox.tsv.gz", "toxic = 1; neutral1-3 = 0", para, "train")
    for split in ("dev", "test_10k"):
        for kind, y in (("toxic", 1), ("normal", 0)):
            name = f"{TT}sdetox_{split}_{kind}.txt.gz"
            add(
                name,
                f"file name: {kind} = {y}",
                [(t, y) for t in _lines(_need(root, name))],
                "train",
            )
    jig = [r for r in _rows(_need(root, JIGSAW)) if r.get("source") == JIGSAW_TRAIN_SOURCE]
    add(
        JIGSAW + f" (source={JIGSAW_TRAIN_SOURCE})",
        "toxic or insult or threat = 1",
        [(r["comment_text"], _jigsaw_positive(r)) for r in jig],
        "train+validation",
        jigsaw_weight,
    )
    add(
        "(generated) streams.commands.model_data.neutral_sentences",
        "0",
        [(t, 0) for t in neutral_sentences(identity_terms, seed)],
        "train",
    )
    for name, label in (
        (JIGSAW + " (other sources)", "toxic or insult or threat = 1"),
        (TT + "cat_large_gc.csv.gz", "label"),
        (TT + "cat_large_gn.csv.gz", "label"),
        (TT + "cat_small.csv.gz", "label_oc"),
        (TT + "wikipedia-detox-250-line-data.tsv.gz", "Sentiment"),
        (TT + "hatecheck_test_suite_cases.csv.gz", "label_gold = hateful"),
        ("bias_madlibs_77k/bias_madlibs_77k.csv.gz", "Label = BAD"),
    ):
        path = root / name.split(" (")[0]
        records.append(
            SourceRecord(
                name,
                _sha256(path) if path.is_file() else "-",
                0,
                0,
                label,
                "evaluation only (never trained on)",
            )
        )
    return examples, records


def _label(value: str) -> int | None:
    v = value.strip().lower()
    if v in ("1", "true", "yes", "toxic"):
        return 1
    if v in ("0", "false", "no", "ok"):
        return 0
    return None


def read_labeled_csv(
    path: Path, *, weight: float = 1.0, max_rows: int | None = None, seed: int = 13
) -> tuple[list[TrainExample], SourceRecord]:
    """An operator's labeled CSV: a header with ``text`` and ``label`` (and optionally
    ``weight``). Every problem names the file and line."""
    text = _open_text(path)
    reader = csv.DictReader(io.StringIO(text))
    fields = reader.fieldnames or []
    if "text" not in fields or "label" not in fields:
        raise DataError(f"{path}:1: needs a header with 'text' and 'label' (got {fields})")
    items: list[TrainExample] = []
    for row in reader:
        line = reader.line_num
        label = _label(row.get("label") or "")
        if label is None:
            raise DataError(f"{path}:{line}: label must be 1/0, true/false or yes/no")
        w = weight
        if row.get("weight"):
            try:
                w = float(row["weight"])
            except ValueError:
                raise DataError(f"{path}:{line}: weight must be a number") from None
            if not w > 0:
                raise DataError(f"{path}:{line}: weight must be positive")
        if row.get("text"):
            items.append(TrainExample(row["text"], label, w, path.name, True))
    items = _cap(items, max_rows, seed)
    record = SourceRecord(
        path.name,
        _sha256(path),
        len(items),
        sum(e.label for e in items),
        "label column (1/0)",
        "train+validation",
        weight,
    )
    return items, record


def training_sample(root: Path) -> EvalSet:
    """The Jigsaw rows the shipped recipe trains (and validates) on, as a set to score:
    figures on it are in-sample, reported beside the held-out ones for comparison."""
    rows = [r for r in _rows(_need(root, JIGSAW)) if r.get("source") == JIGSAW_TRAIN_SOURCE]
    return EvalSet(
        "jigsaw dev (IN-SAMPLE)",
        [r["comment_text"] for r in rows],
        [_jigsaw_positive(r) for r in rows],
        [r["source"] for r in rows],
        True,
    )


def evaluation_sets(root: Path) -> list[EvalSet]:
    """The sets the shipped model never trained on, Wikipedia talk pages first."""
    sets: list[EvalSet] = []

    def add(name: str, rows: Iterable[tuple[str, int, str]], wikipedia: bool) -> None:
        items = [r for r in rows if r[0]]
        sets.append(
            EvalSet(
                name,
                [t for t, _, _ in items],
                [y for _, y, _ in items],
                [g for _, _, g in items],
                wikipedia,
            )
        )

    jig = _rows(_need(root, JIGSAW))
    held = [r for r in jig if r.get("source") not in (JIGSAW_TRAIN_SOURCE, JIGSAW_SUSPECT_SOURCE)]
    add(
        "jigsaw held-out",
        ((r["comment_text"], _jigsaw_positive(r), r["source"]) for r in held),
        True,
    )
    suspect = [r for r in jig if r.get("source") == JIGSAW_SUSPECT_SOURCE]
    add(
        "jigsaw val-sample (suspect labels)",
        ((r["comment_text"], _jigsaw_positive(r), r["source"]) for r in suspect),
        True,
    )
    add(
        "detox 250",
        (
            (r["SentimentText"], int(r["Sentiment"]), "detox250")
            for r in _rows(_need(root, TT + "wikipedia-detox-250-line-data.tsv.gz"), "\t")
        ),
        True,
    )
    cat: list[tuple[str, int, str]] = []
    for name in ("cat_large_gc", "cat_large_gn"):
        cat += [
            (r["text"], int(r["label"]), name) for r in _rows(_need(root, f"{TT}{name}.csv.gz"))
        ]
    cat += [
        (r["text"], int(r["label_oc"]), "cat_small")
        for r in _rows(_need(root, TT + "cat_small.csv.gz"))
    ]
    add("CAT (gc, gn, small)", cat, True)
    add(
        "HateCheck",
        (
            (r["test_case"], int(r["label_gold"] == "hateful"), r["functionality"])
            for r in _rows(_need(root, TT + "hatecheck_test_suite_cases.csv.gz"))
        ),
        False,
    )
    add(
        "bias madlibs",
        (
            (r["Text"], int(r["Label"] == "BAD"), r["Label"])
            for r in _rows(_need(root, "bias_madlibs_77k/bias_madlibs_77k.csv.gz"))
        ),
        False,
    )
    return sets


def read_identity_terms(path: Path) -> list[str]:
    """One term per line (``#`` comments)."""
    return [
        w.strip().lower()
        for ln in _open_text(path).split("\n")
        for w in ln.split("#", 1)[0].split()
        if w.strip()
    ]
