"""Labeled text for training and measuring the toxicity classifier: readers and the recipe.

The *shared recipe* reads ``../shared/data/labeled`` (see its SOURCES.md) and decides what
trains the shipped model and what is kept away from it to measure it. English (the
default language):

=====================================  ==========================  =======================
source                                 label                       role
=====================================  ==========================  =======================
Davidson tweets                        hate or offensive = 1       train
ParaDetox pairs                        toxic = 1, rewrites = 0     train
s-nlp detox (Civil Comments)           file name                   train
Jigsaw ``fastbert_train_sample``       toxic, insult or threat     train + validation
                                                                   folds (weight 5)
neutral templates (generated here)     0                           train
beyond-the-domain templates (here)     0 or 1 by class             train
Jigsaw other samples                   toxic, insult or threat     evaluation only
CAT (gc, gn, small), detox 250         as labeled                  evaluation only
HateCheck, bias madlibs                as labeled                  evaluation only
=====================================  ==========================  =======================

Only 1,000 of the training rows are Wikipedia talk comments (the Jigsaw sample): they are
weighted up and are the only validation data, so thresholds and calibration are chosen on
Wikipedia text. Every Wikipedia set not used for that is kept for evaluation.

Other languages: every set of ``multilingual/`` that its SOURCES.md marks ``ship = yes``
(``SHIP_SAFE_SETS``; the recipe refuses to run when SOURCES.md says otherwise) trains its
language's model and forms that language's validation folds. Sets marked ``no``
(non-commercial licences: ``MEASURE_ONLY_SETS``) never train what ships: the benchmark
measures on them, and an operator may opt in to train a model of their own on them with
``rcwatch model train --csv FILE --csv-language LANG``.

An operator's own CSV (``text,label`` and optionally ``weight``; label 1/0, true/false,
yes/no) is in-domain by definition: its rows train and form the validation folds.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import random
import re
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

MULTILINGUAL = "multilingual/"
# the sets of multilingual/ a shipped model may be trained on (SOURCES.md: ship = yes)
SHIP_SAFE_SETS: dict[str, str] = {
    "de_germeval2018_train": "de",
    "de_gahd": "de",
    "fr_mlma": "fr",
    "ar_mlma": "ar",
    "pt_told_br": "pt",
    "ko_kocohub_hatespeech": "ko",
    "zh_cold": "zh",
    "ru_vk_distorted_toxicity": "ru",
    "tr_offenseval2020_train": "tr",
    "ja_inspection_toxicity": "ja",
    "he_olah450_offensive_spans": "he",
}
# sets with a non-commercial licence (ship = no): to measure, or an operator's opt-in
MEASURE_ONLY_SETS: dict[str, str] = {
    "es_hateval2019_train": "es",
    "pt_hatebr": "pt",
    "id_ibrohim2019_multilabel": "id",
}
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
    language: str = "en"

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "sha256": self.sha256,
            "rows": self.rows,
            "positives": self.positives,
            "label": self.label,
            "role": self.role,
            "weight": self.weight,
            "language": self.language,
        }


@dataclass(frozen=True)
class EvalSet:
    name: str
    texts: list[str]
    labels: list[int]
    groups: list[str]  # per text: its source, template or functionality
    wikipedia: bool  # Wikipedia talk-page text
    language: str = "en"


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


# -- English beyond the training domain (issue 21, item 5) ------------------------------------
#
# The training data is tweets and news comments: violence words there are nearly always
# abuse, and so the model learned "kill" and "die" as abuse, and an attack needed a listed
# word. These templates (written here, not taken from any evaluation set) add the classes
# the data lacks: technical and encyclopedic uses of violence words, figurative ones,
# counter speech, quotation of abuse in order to report it, and self-deprecation (all 0),
# and attacks that use no insult word (1). Each class is a few hundred sentences, so that
# the model learns frames ("kill the process", "called me a") rather than sentences.

_THINGS = [
    "process",
    "job",
    "daemon",
    "thread",
    "bot",
    "script",
    "cache",
    "branch",
    "feature flag",
    "legacy flag",
    "template",
    "cron job",
    "server",
    "container",
    "session",
    "query",
    "build",
    "pipeline",
    "loop",
    "redirect",
    "stub",
    "tab",
    "parameter",
    "module",
    "gadget",
    "worker",
    "old infobox",
    "legacy API",
    "test",
    "task",
    "queue",
    "lua module",
    "deprecated field",
]
_TECH_FRAMES = [
    "kill the {t} and restart it",
    "just kill this {t}",
    "you can kill the {t} with ctrl-c",
    "the {t} should be killed after the migration",
    "we should nuke the {t}",
    "the {t} died again overnight",
    "the {t} is dead, please restart it",
    "the {t} keeps crashing, kill it",
    "execute the {t} after the merge",
    "terminate the {t} before it eats all the memory",
    "this change kills the {t}'s performance",
    "that {t} is useless now, remove it",
    "remove the useless blank line in the {t}",
    "the {t} is stupidly slow",
    "a dumb {t} that nobody uses any more",
    "destroy the {t} after use",
    "the {t} hangs, shoot it down",
    "abort the {t} if it takes longer than a minute",
    "the {t} was killed by the OOM killer",
    "kill -9 the {t}",
    "the {t} dies on empty input",
    "force-kill the {t} and try again",
    "the {t} got murdered by the last deploy",
    "the {t} is a dead end, let us drop it",
    "the new {t} crushes the old one in benchmarks",
    "the {t} is brain-dead about time zones",
    "purge the {t} and rebuild",
    "that {t} is garbage, rewrite it",
    "let the {t} die quietly",
    "the {t} should be executed daily",
    "killing the {t} fixed the lag",
    "hit the {t} with a larger timeout",
    "the {t} attacks the problem from the wrong side",
    "the {t}'s attack surface is too large",
    "the {t} was a stupid idea of mine",
]
_HISTORY_FRAMES = [
    "the source says he was {v} in {y}",
    "{n} was {v} during the siege of {y}",
    "according to the census, thousands were {v} in {y}",
    "the article should say she was {v}",
    "was the king {v} or did he die of illness? the sources disagree",
    "the battle of {y} left many dead",
    "he died in {y}, not in {y2}",
    "the victims were {v} by the regime, see the cited report",
    "{n} was sentenced to death in {y}",
    "the massacre of {y} killed hundreds of civilians",
    "the film is about a hitman who kills for money",
    "in the novel, {n} murders the duke in chapter three",
    "the character dies at the end of season {s}",
]
_FIGURATIVE = [
    "I'd die of embarrassment",
    "I'm dying to see the new version",
    "this joke killed me",
    "you killed it with that rewrite",
    "that deadline is killing me",
    "I could murder a coffee",
    "break a leg at the meetup",
    "the suspense is killing me",
    "I'm dead tired, more tomorrow",
    "my feet are killing me after the edit-a-thon",
    "I nearly died laughing at that edit summary",
    "I'd kill for a source this good",
    "this bug will be the death of me",
    "shoot, I forgot the citation",
    "I want to strangle this template",
    "this formatting drives me insane",
    "I'm going to lose my mind over this table",
    "honestly I'd rather die than format another citation by hand",
    "you absolute legend, you nailed it",
    "that layout is to die for",
    "the new logo slays",
    "we crushed the backlog this week",
    "the drive absolutely destroyed its target",
    "I'm so mad at myself for missing that",
    "ugh, kill me now, the bot reverted it again",
    "that is a killer feature",
    "my laptop is dying",
    "the article is dead in the water without sources",
    "this discussion is beating a dead horse",
    "I could scream, the template broke again",
]
_INSULTS = [
    "idiot",
    "moron",
    "stupid",
    "loser",
    "jerk",
    "clown",
    "fool",
    "imbecile",
    "dumbass",
    "pig",
    "troll",
    "hack",
    "liar",
    "coward",
]
_ATTACKS_QUOTED = [
    "you are {an}",
    "shut up, {i}",
    "go away, {i}",
    "what {an}",
    "you {i}, stop editing",
    "nobody wants you here, {i}",
    "get lost, you {i}",
]
_COUNTER = [
    "calling someone {an} is not acceptable here",
    "please don't call other editors {i}s",
    "calling people {i}s is a personal attack; please strike it",
    "nobody deserves to be called {an}",
    "I removed a comment that called {p} {an}",
    'personal attacks like "{a}" are against policy',
    'saying "{a}" to a newcomer is exactly what drives people away',
    "we don't call each other {i}s on this project",
    "it is wrong to call {p} {an} over a content dispute",
    'comments such as "{a}" will get you blocked',
    "stop calling {p} {an}, it does not help",
    "labelling editors as {i}s is not how we resolve disputes",
    "I object to {p} being called {an}",
    'there is no place here for telling people "{a}"',
]
_QUOTED = [
    '{p} wrote "{a}" on my talk page, can an admin look?',
    'the edit summary said "{a}"; please revdel',
    'the IP called me "{i}" in this diff',
    'reporting: {p} left "{a}" on my user page',
    'for the record, the message was "{a}"',
    'he said "{a}" and then reverted me',
    'the vandal replaced the lead with "{a}"',
    'I was told "{a}" in the edit summary, is that allowed?',
    'diff: {p} writes "{a}". this is the third time',
    'quoting the reply: "{a}"',
    'the lyrics include the line "{a}", which the article quotes',
    'the tweet cited in the article reads "{a}"',
]
_SELF = [
    "I'm such {an}, I forgot the citation",
    "stupid me, I reverted the wrong version",
    "my dumb mistake, sorry",
    "I feel like {an} for missing that",
    "what {an} I am, fixed now",
    "I was being {an}, thanks for catching it",
    "I'm {an}, the date was wrong all along",
    "silly me, I pasted the wrong link",
    "sorry, brain fart on my part",
    "I'm hopeless with templates",
    "I'm a total {i} with tables, can someone help?",
    "ignore me, I'm being stupid today",
    "I made a fool of myself in that thread",
    "my stupid typo broke the infobox",
    "I'm the {i} who merged the wrong branch",
    "call me {an}, but I had the years swapped",
]
_SUBJECTS = ["you", "you people", "people like you", "your kind", "the lot of you"]
_UNLISTED_ATTACKS = [
    "nobody wants {s} here",
    "do everyone a favour and leave the project",
    "people like you are the reason this project is dying",
    "go back to whatever hole {s} crawled out of",
    "{s} should be ashamed of yourselves",
    "you have the reading comprehension of a toddler",
    "crawl back under your rock",
    "{s} are a waste of space",
    "get lost and never come back",
    "{s} don't belong here",
    "nobody cares what {s} think",
    "I know where you live",
    "watch your back",
    "you will regret this",
    "I'll make sure you never edit again",
    "do the world a favour and disappear",
    "I hope something terrible happens to {s}",
    "{s} are the worst thing that happened to this article",
    "go play in traffic",
    "you're not fit to edit a shopping list",
    "were you dropped on your head as a child?",
    "is english your first language or are you just slow?",
    "{s} make me sick",
    "{s} are a disgrace",
    "why don't you go away and stay away",
    "everyone here is laughing at {s}",
    "{s} should never have been born",
    "I will find out who you are",
    "your family must be so embarrassed by you",
    "{s} are too dense to understand a single sentence",
    "{s} have the brains of a goldfish",
    "keep it up and you will find out what happens",
    "nobody would miss {s} if you left",
    "I'd be ashamed to be {s}",
    "{s} contribute nothing but noise",
    "{s} are beneath contempt",
    "{s} ruin everything you touch",
    "what a pathetic little life {s} must lead",
    "your edits are as worthless as {s} are",
    "how does it feel to be so useless?",
]
_NAMES = [
    "Amara",
    "Sven",
    "Mei",
    "Ravi",
    "Ingrid",
    "Tomás",
    "Yusuf",
    "Dmitri",
    "Priya",
    "Kofi",
    "Farah",
    "Jonas",
]


def beyond_domain_sentences(seed: int = 13) -> list[tuple[str, int, str]]:
    """(text, label, class) for the classes the training data lacks (the comment above):
    technical, encyclopedic and figurative violence words, counter speech, quotation and
    self-deprecation (0), attacks without an insult word (1). Deterministic."""
    rng = random.Random(seed)
    out: dict[str, tuple[int, str]] = {}

    def add(text: str, label: int, cls: str) -> None:
        out.setdefault(text, (label, cls))

    def insult() -> dict[str, str]:
        word = rng.choice(_INSULTS)
        return {"i": word, "an": ("an " if word[0] in "aeiou" else "a ") + word}

    def attack() -> str:
        return rng.choice(_ATTACKS_QUOTED).format(**insult())

    for frame in _TECH_FRAMES:
        for t in rng.sample(_THINGS, 10):
            add(frame.format(t=t), 0, "technical")
    verbs = ["killed", "executed", "murdered", "shot", "hanged", "beheaded", "assassinated"]
    for frame in _HISTORY_FRAMES:
        for _ in range(12):
            y = rng.randint(1200, 1990)
            add(
                frame.format(
                    v=rng.choice(verbs),
                    y=y,
                    y2=y + rng.randint(1, 9),
                    n=rng.choice(_NAMES),
                    s=rng.randint(1, 8),
                ),
                0,
                "encyclopedic",
            )
    for text in _FIGURATIVE:
        add(text, 0, "figurative")
        add(text.capitalize() + "!", 0, "figurative")
        add(text + " :)", 0, "figurative")
        add(f"{rng.choice(_NAMES)}, {text[0].lower()}{text[1:]}", 0, "figurative")
    for name, frames in (
        ("counter speech", _COUNTER),
        ("quotation", _QUOTED),
        ("self-deprecation", _SELF),
    ):
        for frame in frames:
            for _ in range(15):
                add(frame.format(**insult(), p=rng.choice(_NAMES), a=attack()), 0, name)
    for frame in _UNLISTED_ATTACKS:
        for _ in range(8):
            text = frame.format(s=rng.choice(_SUBJECTS))
            add(text, 1, "attack without an insult word")
            add(f"{rng.choice(_NAMES)}, {text}", 1, "attack without an insult word")
    return sorted((t, y, c) for t, (y, c) in out.items())


def _ship_column(root: Path) -> dict[str, str]:
    """File name -> its ``ship`` cell in multilingual/SOURCES.md."""
    path = _need(root, MULTILINGUAL + "SOURCES.md")
    out: dict[str, str] = {}
    header: list[str] = []
    for line in _open_text(path).split("\n"):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if "file" in cells and "ship" in cells:
            header = cells
        elif header and len(cells) == len(header) and not set(line) <= set("|-: "):
            out[cells[header.index("file")]] = cells[header.index("ship")].lower()
        elif not line.strip():
            header = [] if out else header
    return out


def read_multilingual_set(root: Path, name: str) -> list[tuple[str, int]]:
    """One ``multilingual/<name>.csv.gz`` set (``text,label``)."""
    path = _need(root, f"{MULTILINGUAL}{name}.csv.gz")
    out = []
    for n, row in enumerate(_rows(path), 2):
        label = _label(row.get("label") or "")
        if label is None:
            raise DataError(f"{path}:{n}: label must be 1 or 0")
        if row.get("text"):
            out.append((row["text"], label))
    return out


def multilingual_sets(root: Path, names: Iterable[str]) -> list[EvalSet]:
    """Sets of ``multilingual/`` to measure on, each with its language."""
    language = {**SHIP_SAFE_SETS, **MEASURE_ONLY_SETS}
    sets = []
    for name in names:
        rows = read_multilingual_set(root, name)
        sets.append(
            EvalSet(name, [t for t, _ in rows], [y for _, y in rows], [name] * len(rows), False,
                    language[name])
        )  # fmt: skip
    return sets


def shared_recipe(
    root: Path,
    identity_terms: Iterable[str],
    *,
    max_rows: int | None = None,
    seed: int = 13,
    jigsaw_weight: float = 5.0,
    languages: bool = True,
) -> tuple[list[TrainExample], list[SourceRecord]]:
    """The shipped model's training data from the shared ``labeled/`` directory (see the
    module docstring); ``max_rows`` samples each source down (quick runs and tests);
    ``languages=False`` leaves the other languages out (English only)."""
    examples: list[TrainExample] = []
    records: list[SourceRecord] = []
    if languages:  # before anything is read: a set that may not ship is never trained on
        ship = _ship_column(root)
        for name in SHIP_SAFE_SETS:
            if ship.get(name) != "yes":
                raise DataError(
                    f"{root / MULTILINGUAL / 'SOURCES.md'}: {name} is not marked ship = yes; "
                    "a shipped model may not be trained on it"
                )

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
    add(
        "(generated) streams.commands.model_data.beyond_domain_sentences",
        "by class: technical, encyclopedic, figurative, counter speech, quotation, "
        "self-deprecation = 0; attack without an insult word = 1",
        [(t, y) for t, y, _c in beyond_domain_sentences(seed)],
        "train",
    )
    if languages:
        for name, language in SHIP_SAFE_SETS.items():
            items = _cap(read_multilingual_set(root, name), max_rows, seed)
            file = f"{MULTILINGUAL}{name}.csv.gz"
            examples.extend(TrainExample(t, y, 1.0, name, True, language) for t, y in items)
            records.append(
                SourceRecord(
                    file, _sha256(root / file), len(items), sum(y for _, y in items),
                    "label column (1/0), as SOURCES.md maps it", "train+validation", 1.0,
                    language,
                )
            )  # fmt: skip
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


_LANGUAGE_CODE = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{1,8})*")


def read_labeled_csv(
    path: Path,
    *,
    weight: float = 1.0,
    max_rows: int | None = None,
    seed: int = 13,
    language: str = "",
) -> tuple[list[TrainExample], SourceRecord]:
    """An operator's labeled CSV: a header with ``text`` and ``label`` (and optionally
    ``weight`` and ``language``, a code such as ``es``; rows without one are in
    ``language``, ``""`` being the model's default language). Every problem names the
    file and line."""
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
        lang = (row.get("language") or language).strip().lower()
        if lang and not _LANGUAGE_CODE.fullmatch(lang):
            raise DataError(f"{path}:{line}: language must be a code such as 'es' or 'pt-br'")
        if row.get("text"):
            items.append(TrainExample(row["text"], label, w, path.name, True, lang))
    items = _cap(items, max_rows, seed)
    languages = sorted({e.language or "default" for e in items})
    record = SourceRecord(
        path.name,
        _sha256(path),
        len(items),
        sum(e.label for e in items),
        "label column (1/0)",
        "train+validation",
        weight,
        ",".join(languages),
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
