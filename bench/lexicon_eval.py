"""A language's lexicon rules on the labeled sets of that language, for whoever writes or
prunes the word lists (docs/rules.md, "Adding a language").

    python -m bench.lexicon_eval [--lang de ...] [--entries N] [--max-rows N]

Each text of ``../shared/data/labeled/multilingual/<lang>_*.csv.gz`` is run through
``config/rules/languages/<lang>.yaml`` alone as text added to an article talk page of that
language's Wikipedia (so the language condition sees what it would see there). Per set:
recall (share of abusive texts flagged by any of the file's rules), false-positive rate
(share of the others flagged) and precision, all rules together, then per rule.

``--entries N`` lists, per word list, the N entries that are found most often in the texts
labeled not abusive (with how often in the abusive ones): the candidates to prune. An entry
found on negatives is not wrong by itself (sets label insults of public figures or banter
differently), but one found more often on negatives than on positives pages people for
nothing. Measure with every set, but never add to a list what only a non-commercial set
taught you (../shared/data/labeled/multilingual/SOURCES.md, column ``ship``).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

from bench.common import SHARED_DATA, require
from detectors.keywords import KeywordIndex, phrase_tokens
from detectors.normalize import normalize
from detectors.rules.engine import RuleEngine
from detectors.rules.examples import example_change
from detectors.rules.loader import load_rules
from detectors.rules.model import DEFAULT_KEYWORD_STEPS, Example, KeywordCond, Rule

LABELED = SHARED_DATA / "labeled" / "multilingual"
LANGUAGES_DIR = Path(__file__).resolve().parents[1] / "config" / "rules" / "languages"
csv.field_size_limit(sys.maxsize)


def read_set(path: Path, max_rows: int | None) -> list[tuple[str, int]]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
        rows = [(r["text"], int(r["label"])) for r in csv.DictReader(fh)]
    return rows[:max_rows] if max_rows else rows


def talk_page_change(lang: str, text: str, seq: int):  # type: ignore[no-untyped-def]
    ex = Example(wiki=f"{lang}wiki", title="Talk:Example page", namespace=1, added_text=text)
    return example_change(ex, seq)


def keyword_lists(rules: Sequence[Rule]) -> dict[str, tuple[str, ...]]:
    """The keyword conditions on added text, by list file (or rule id for inline lists)."""
    out: dict[str, tuple[str, ...]] = {}

    def walk(cond: object, rule: Rule) -> None:
        if isinstance(cond, KeywordCond):
            if cond.field == "added_text":
                key = rule.id.rsplit(".", 1)[-1]
                out.setdefault(key, cond.keywords)
            return
        for attr in ("conditions", "condition"):
            child = getattr(cond, attr, None)
            if child is None:
                continue
            for c in child if isinstance(child, tuple) else (child,):
                walk(c, rule)

    for rule in rules:
        walk(rule.match, rule)
    return out


def entry_hits(
    entries: Sequence[str], rows: Sequence[tuple[str, int]]
) -> tuple[Counter[str], Counter[str]]:
    index = KeywordIndex()
    for i, e in enumerate(entries):
        index.add(phrase_tokens(normalize(e, DEFAULT_KEYWORD_STEPS).text), i)
    pos: Counter[str] = Counter()
    neg: Counter[str] = Counter()
    for text, label in rows:
        for i in index.match_text(normalize(text, DEFAULT_KEYWORD_STEPS).text):
            (pos if label else neg)[entries[i]] += 1
    return pos, neg


def pct(a: int, b: int) -> str:
    return f"{100 * a / b:5.1f}%" if b else "    -"


def evaluate(lang: str, max_rows: int | None, top_entries: int) -> None:
    rule_file = LANGUAGES_DIR / f"{lang}.yaml"
    rules, issues = load_rules([rule_file])
    if issues:
        raise SystemExit("\n".join(str(i) for i in issues))
    engine = RuleEngine(rules)
    sets = sorted(LABELED.glob(f"{lang}_*.csv.gz"))
    if not sets:
        print(f"{lang}: no labeled set (only the rule file's examples vouch for it)\n")
        return
    for path in sets:
        rows = read_set(path, max_rows)
        n_pos = sum(label for _t, label in rows)
        n_neg = len(rows) - n_pos
        tp = fp = 0
        per_rule: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for seq, (text, label) in enumerate(rows):
            change, ctx = talk_page_change(lang, text, seq)
            fired = {f.rule for f in engine.evaluate(change, ctx)}
            for rid in fired:
                per_rule[rid][0 if label else 1] += 1
            if fired:
                tp += label
                fp += 1 - label
        name = path.name.removesuffix(".csv.gz")
        print(
            f"{name}: {len(rows)} texts, {n_pos} abusive | recall {pct(tp, n_pos)}"
            f"  false-positive rate {pct(fp, n_neg)}  precision {pct(tp, tp + fp)}"
            f"  (base rate {pct(n_pos, len(rows))})"
        )
        for rid in sorted(per_rule):
            p, q = per_rule[rid]
            print(
                f"    {rid:42} {p:5} on abusive ({pct(p, n_pos)}),"
                f" {q:5} on others ({pct(q, n_neg)})"
            )
        if top_entries:
            for list_name, entries in keyword_lists(rules).items():
                pos, neg = entry_hits(entries, rows)
                worst = sorted(neg, key=lambda e: (-neg[e], pos[e]))[:top_entries]
                if worst:
                    shown = ", ".join(f"{e} {neg[e]}/{pos[e]}" for e in worst)
                    print(f"    {list_name} entries on others/abusive: {shown}")
        print()


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lang", action="append", help="language code (repeatable); default: all")
    ap.add_argument("--entries", type=int, default=0, help="show the N entries most on negatives")
    ap.add_argument("--max-rows", type=int, default=None)
    args = ap.parse_args(argv)
    require(LABELED)
    langs = args.lang or sorted(p.stem for p in LANGUAGES_DIR.glob("*.yaml"))
    for lang in langs:
        evaluate(lang, args.max_rows, args.entries)


if __name__ == "__main__":
    main()
