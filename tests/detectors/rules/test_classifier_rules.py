"""Classifier conditions: parsed with file and line, composed with facts, scored into the
finding and the alert (masked terms, never the text)."""

from __future__ import annotations

from pathlib import Path

import pytest

from detectors.classifier import TextClassifier
from detectors.classifier.features import FeatureConfig
from detectors.rules.engine import RuleEngine
from detectors.rules.examples import example_change, run_examples
from detectors.rules.loader import load_rules
from detectors.rules.model import ClassifierCond, Example
from streams.pipeline.alerting import build_alerts
from tests.privatedata import HOSTS

TOY = TextClassifier(
    "toy",
    "1",
    FeatureConfig(),
    -3.0,
    {"w:idiot": 30.0, "w:moron": 20.0, "w:thanks": -20.0},
    thresholds={"operating": 0.5},
)

RULE = """\
rules:
  - id: harassment.toy-attack
    title: Personal attack
    category: harassment
    severity: high
    match:
      all:
        - {field: added_text, classifier: toy, min_score: 0.6}
        - fact: second_person
          field: added_text
    examples:
      match:
        - {title: "Talk:Page", added_text: "you are an idiot"}
      no_match:
        - {title: "Talk:Page", added_text: "the idiot in the film"}
        - {title: "Talk:Page", added_text: "you are right, thanks"}
"""


def _rules(tmp_path: Path, text: str, names: tuple[str, ...] = ("toy",)) -> list:  # type: ignore[type-arg]
    (tmp_path / "r.yaml").write_text(text)
    rules, issues = load_rules([tmp_path], names)
    assert issues == []
    return rules


def test_a_classifier_condition_is_parsed(tmp_path: Path) -> None:
    [rule] = _rules(tmp_path, RULE)
    cond = rule.match.conditions[0]
    assert cond == ClassifierCond("added_text", "toy", 0.6, 8)


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("{field: added_text, classifier: nope, min_score: 0.5}", "unknown classifier 'nope'"),
        ("{field: added_text, classifier: toy}", "needs min_score"),
        ("{field: added_text, classifier: toy, min_score: 1.5}", "above 0, at most 1"),
        ("{field: namespace, classifier: toy, min_score: 0.5}", "needs a text field"),
    ],
)
def test_a_bad_classifier_condition_names_file_and_line(
    tmp_path: Path, condition: str, message: str
) -> None:
    text = RULE.replace("{field: added_text, classifier: toy, min_score: 0.6}", condition)
    (tmp_path / "r.yaml").write_text(text)
    _, issues = load_rules([tmp_path], ("toy",))
    assert len(issues) == 1 and message in issues[0].message
    assert issues[0].file.endswith("r.yaml") and issues[0].line == 8


def test_the_rule_fires_on_a_scored_attack_at_a_person_only(tmp_path: Path) -> None:
    rules = _rules(tmp_path, RULE)
    count, failures = run_examples(rules, classifiers={"toy": TOY})
    assert count == 3 and failures == []
    engine = RuleEngine(rules, classifiers={"toy": TOY})
    change, ctx = example_change(Example(title="Talk:Page", added_text="you are an idiot"))
    [finding] = engine.evaluate(change, ctx)
    score = TOY.score("you are an idiot")
    assert finding.score == pytest.approx(score)
    assert finding.reason == f"Personal attack (toy {score:.2f})"
    kinds = [(s.kind, s.redacted) for s in finding.spans]
    assert ("toy", f"{score:.2f}") in kinds and ("term", "i***t") in kinds


def test_the_alert_shows_the_score_and_masked_terms_never_the_text(tmp_path: Path) -> None:
    rules = _rules(tmp_path, RULE)
    engine = RuleEngine(rules, classifiers={"toy": TOY})
    change, ctx = example_change(
        Example(title="User talk:Someone", added_text="you moron, you idiot")
    )
    findings = engine.evaluate(change, ctx)
    [alert] = build_alerts(change, ctx, findings, "2026-11-30T00:00:00Z", HOSTS)
    line = alert.one_line()
    assert f"toy {TOY.score('you moron, you idiot'):.2f} in added_text" in line
    assert "i***t" in line and "m***n" in line
    assert "idiot" not in alert.to_json().decode() and "moron" not in line


def test_words_of_address_are_no_explanation(tmp_path: Path) -> None:
    """Issue 20, item 16: the demo's personal-attack alert explained itself with "term
    y*u", "term Y**r", "term *": the words that address someone weigh a lot but tell
    on-call nothing. They are passed over, and the terms that follow them are shown."""
    heavy_you = TextClassifier(
        "toy",
        "1",
        FeatureConfig(),
        -3.0,
        {"w:you": 40.0, "w:your": 35.0, "w:u": 30.0, "w:idiot": 20.0, "w:clown": 10.0},
        thresholds={"operating": 0.5},
    )
    engine = RuleEngine(_rules(tmp_path, RULE), classifiers={"toy": heavy_you})
    change, ctx = example_change(
        Example(title="Talk:Page", added_text="Your edits, u idiot: you clown")
    )
    [finding] = engine.evaluate(change, ctx)
    terms = [s.redacted for s in finding.spans if s.kind == "term"]
    assert terms == ["i***t", "c***n"]


def test_an_engine_without_the_model_a_rule_names_refuses_it(tmp_path: Path) -> None:
    rules = _rules(tmp_path, RULE)
    with pytest.raises(ValueError, match=r"r\.yaml:8: unknown classifier 'toy'"):
        RuleEngine(rules, classifiers={})


def test_a_classifier_on_added_text_asks_for_the_content(tmp_path: Path) -> None:
    engine = RuleEngine(_rules(tmp_path, RULE), classifiers={"toy": TOY})
    change, _ = example_change(Example(title="Talk:Page", summary="x"))
    assert engine.needs_content(change)


def test_the_shipped_model_is_used_when_none_is_given(tmp_path: Path) -> None:
    text = RULE.replace("classifier: toy", "classifier: toxicity")
    (tmp_path / "r.yaml").write_text(text)
    rules, issues = load_rules([tmp_path])  # the shipped names
    assert issues == []
    engine = RuleEngine(rules)
    assert set(engine.classifiers) == {"toxicity"}
    change, ctx = example_change(
        Example(title="Talk:Page", added_text="you are a stupid idiot, shut up")
    )
    assert [f.rule for f in engine.evaluate(change, ctx)] == ["harassment.toy-attack"]
