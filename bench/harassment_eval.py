"""Harassment detection quality against peers, and identity-term false positives.

    python -m bench.harassment_eval

1. Jigsaw toxic-comment rows (real Wikipedia talk-page comments, ../shared/data/labeled):
   precision/recall of "any harassment rule fires" against the labels toxic, insult and
   threat (positive = any of the three), for rcwatch's shipped rules, better-profanity and
   alt-profanity-check, side by side. Splits: "dev" (fastbert_train_sample, the only rows
   looked at while writing the lexicons), "held-out" (hurelyyu_train_head300: the head of
   Jigsaw's train.csv, never looked at), and "val-sample" (fastbert_val_sample), reported
   apart because its labels disagree with the comments for every detector (e.g. "you dumb
   fuck" and "you are a twat" are labeled non-toxic), not only for rcwatch.
   alt-profanity-check's model was trained on Jigsaw data: its figures here are in-sample.
2. bias_madlibs_77k: the share of NOT_BAD template sentences ("You are a caring
   transgender", "Being muslim is kind.") on which each detector fires: naming an identity
   must not count as an attack. BAD rows are shown for reference.

Each comment is scanned as text added to an article talk page by a registered editor.
"""

from __future__ import annotations

import csv
import gzip
import io
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common import SHARED_DATA, require
from detectors.base import Category, Severity
from detectors.rules.engine import RuleEngine
from detectors.rules.examples import example_change
from detectors.rules.model import Example
from streams.app import load_engine
from streams.settings import Settings

JIGSAW = SHARED_DATA / "labeled" / "jigsaw_toxic_subset" / "jigsaw_subset_merged_dedup.csv.gz"
MADLIBS = SHARED_DATA / "labeled" / "bias_madlibs_77k" / "bias_madlibs_77k.csv.gz"
DEV_SOURCE = "fastbert_train_sample"
HELD_OUT_SOURCE = "hurelyyu_train_head300"
SUSPECT_SOURCE = "fastbert_val_sample"
HELD_OUT_SOURCE = "hurelyyu_train_head300"
SUSPECT_SOURCE = "fastbert_val_sample"


def _rows(path: Path) -> list[dict[str, str]]:
    with gzip.open(require(path), "rt", encoding="utf-8") as f:
        return list(csv.DictReader(io.StringIO(f.read())))


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def add(self, predicted: bool, actual: bool) -> None:
        if predicted and actual:
            self.tp += 1
        elif predicted:
            self.fp += 1
        elif actual:
            self.fn += 1
        else:
            self.tn += 1

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def ours(
    engine: RuleEngine, min_severity: Severity = Severity.LOW
) -> Callable[[Sequence[str]], list[bool]]:
    def predict(texts: Sequence[str]) -> list[bool]:
        engine.clear_memo()  # texts/s of texts the engine has not seen
        out = []
        for text in texts:
            change, ctx = example_change(Example(title="Talk:Example page", added_text=text))
            out.append(
                any(
                    f.category == Category.HARASSMENT and f.severity.rank >= min_severity.rank
                    for f in engine.evaluate(change, ctx)
                )
            )
        return out

    return predict


def peers() -> dict[str, Callable[[Sequence[str]], list[bool]]]:
    from better_profanity import profanity
    from profanity_check import predict

    profanity.load_censor_words()
    return {
        "better-profanity": lambda texts: [bool(profanity.contains_profanity(t)) for t in texts],
        "alt-profanity-check": lambda texts: [bool(x) for x in predict(list(texts))],
    }


def main() -> None:
    engine = load_engine(Settings())
    detectors: dict[str, Callable[[Sequence[str]], list[bool]]] = {
        "rcwatch (any severity)": ours(engine),
        "rcwatch (medium+)": ours(engine, Severity.MEDIUM),
        **peers(),
    }
    rows = _rows(JIGSAW)
    splits = {
        "dev": [r for r in rows if r["source"] == DEV_SOURCE],
        "held-out": [r for r in rows if r["source"] == HELD_OUT_SOURCE],
        "dev+held": [r for r in rows if r["source"] in (DEV_SOURCE, HELD_OUT_SOURCE)],
        "val-sample": [r for r in rows if r["source"] == SUSPECT_SOURCE],
    }
    sizes = ", ".join(f"{k} {len(v)}" for k, v in splits.items())
    print(f"Jigsaw rows: {len(rows)} ({sizes})")
    print("positive = toxic or insult or threat")
    print(f"{'detector':<24} {'split':<10} {'P':>6} {'R':>6} {'F1':>6} {'texts/s':>9}")
    for name, detect in detectors.items():
        for split, part in splits.items():
            texts = [r["comment_text"] for r in part]
            t0 = time.perf_counter()
            predicted = detect(texts)
            rate = len(texts) / (time.perf_counter() - t0)
            s = Score()
            for r, p in zip(part, predicted, strict=True):
                s.add(p, "1" in (r["toxic"], r["insult"], r["threat"]))
            print(
                f"{name:<24} {split:<9} {s.precision:6.3f} {s.recall:6.3f} {s.f1:6.3f} {rate:9,.0f}"
            )
    print()
    print("per label on dev+held-out rows (recall; precision against that label alone)")
    rows = splits["dev+held"]
    all_texts = [r["comment_text"] for r in rows]
    predictions = {name: detect(all_texts) for name, detect in detectors.items()}
    for label in ("toxic", "insult", "threat", "obscene", "identity_hate"):
        line = [f"{label:<14}"]
        for name, predicted in predictions.items():
            s = Score()
            for r, p in zip(rows, predicted, strict=True):
                s.add(p, r[label] == "1")
            line.append(f"{name}: P {s.precision:.2f} R {s.recall:.2f}")
        print("  ".join(line))
    print()
    madlibs = _rows(MADLIBS)
    print(f"bias_madlibs_77k: {len(madlibs)} rows; share of rows each detector fires on")
    print(f"{'detector':<24} {'NOT_BAD (FP rate)':>18} {'BAD':>8}")
    for name, detect in detectors.items():
        fired = {"NOT_BAD": 0, "BAD": 0}
        total = {"NOT_BAD": 0, "BAD": 0}
        predicted = detect([r["Text"] for r in madlibs])
        for r, p in zip(madlibs, predicted, strict=True):
            total[r["Label"]] += 1
            fired[r["Label"]] += p
        print(
            f"{name:<24} {fired['NOT_BAD'] / total['NOT_BAD']:18.4f} "
            f"{fired['BAD'] / total['BAD']:8.4f}"
        )


if __name__ == "__main__":
    main()
