"""The engine: shared matchers must give exactly what each rule alone gives."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest

from detectors.base import DetectionContext, Finding
from detectors.event import RecentChange, decode_event
from detectors.rules.engine import RuleEngine
from detectors.rules.examples import example_change, run_examples
from detectors.rules.loader import load_rules
from detectors.rules.model import Example, Rule

REPO = Path(__file__).resolve().parents[3]


def _rules(tmp_path: Path, text: str) -> list[Rule]:
    path = tmp_path / "r.yaml"
    path.write_text("rules:\n" + text)
    rules, issues = load_rules([path])
    assert not issues, "\n".join(map(str, issues))
    return rules


def _rule(rid: str, match: str, scope: str = "", category: str = "harassment") -> str:
    return f"""
  - id: {rid}
    title: {rid}
    category: {category}
    severity: medium
    enabled: false
{scope}
    match: {match}
"""


def _ids(findings: list[Finding]) -> set[str]:
    return {f.rule for f in findings}


def _summary(text: str, **kw: object) -> tuple[RecentChange, DetectionContext]:
    return example_change(Example(summary=text, **kw))  # type: ignore[arg-type]


def test_condition_kinds(tmp_path: Path) -> None:
    rules = _rules(
        tmp_path,
        "".join(
            [
                _rule("kw", "{field: summary, keywords: [idiot]}"),
                _rule("re", "{field: summary, regex: '(?i)\\bdoxx?(ed|ing)\\b'}"),
                _rule(
                    "all",
                    "{all: [{field: summary, keywords: [idiot]}, {field: namespace, in: [3]}]}",
                ),
                _rule(
                    "any",
                    "{any: [{field: summary, keywords: [moron]}, {field: size_delta, gt: 5000}]}",
                ),
                _rule(
                    "not",
                    "{all: [{field: summary, keywords: [idiot]},"
                    " {not: {field: summary, regex: 'film'}}]}",
                ),
                _rule("big", "{field: size_delta, gte: 10000}"),
            ]
        ),
    )
    engine = RuleEngine(rules, include_disabled=True)
    assert _ids(engine.evaluate(*_summary("you IDIOT"))) == {"kw", "not"}
    assert _ids(engine.evaluate(*_summary("idiot film review"))) == {"kw"}
    assert _ids(engine.evaluate(*_summary("got doxxed", size_delta=6000))) == {"re", "any"}
    assert _ids(engine.evaluate(*_summary("idiot", title="User talk:X"))) == {"kw", "all", "not"}
    assert _ids(engine.evaluate(*_summary("ok", size_delta=12000))) == {"any", "big"}
    assert engine.evaluate(*_summary("")) == []


def test_scope(tmp_path: Path) -> None:
    scoped = """    scope:
      wikis: ["de*"]
      namespaces: [3]
      performers: [ip]
"""
    rules = _rules(tmp_path, _rule("s", "{field: summary, keywords: [idiot]}", scoped))
    engine = RuleEngine(rules, include_disabled=True)
    ok = dict(wiki="dewiki", title="User talk:X", user="203.0.113.1")
    assert _ids(engine.evaluate(*_summary("idiot", **ok))) == {"s"}
    assert engine.evaluate(*_summary("idiot", **{**ok, "wiki": "enwiki"})) == []
    assert engine.evaluate(*_summary("idiot", **{**ok, "user": "Registered"})) == []
    assert engine.evaluate(*_summary("idiot", **{**ok, "title": "Talk:X"})) == []
    assert _ids(engine.evaluate(*_summary("idiot"), ignore_scope=True)) == {"s"}
    bots = _rules(tmp_path, _rule("b", "{field: summary, keywords: [idiot]}"))
    bot_change = _summary("idiot", user="SomeBot", bot=True)
    assert RuleEngine(bots, include_disabled=True).evaluate(*bot_change) == []


def test_spans_are_redacted_and_point_at_the_original(tmp_path: Path) -> None:
    rules = _rules(
        tmp_path,
        "".join(
            [
                _rule("h", "{field: summary, keywords: [idiot]}"),
                _rule("p", "{field: summary, regex: '\\d{3}-\\d{4}'}", category="privacy"),
            ]
        ),
    )
    change, ctx = _summary("ＩＤＩＯＴ, call 555-0147")
    by_rule = {f.rule: f for f in RuleEngine(rules, include_disabled=True).evaluate(change, ctx)}
    [h] = by_rule["h"].spans
    assert change.comment[h.start : h.end] == "ＩＤＩＯＴ" and h.redacted == "Ｉ***Ｔ"
    assert not h.sensitive
    [p] = by_rule["p"].spans
    assert change.comment[p.start : p.end] == "555-0147"
    assert p.redacted == "[redacted, 8 chars]" and p.sensitive


def test_disabled_rules_are_skipped_unless_asked(tmp_path: Path) -> None:
    rules = _rules(tmp_path, _rule("d", "{field: summary, keywords: [idiot]}"))
    assert RuleEngine(rules).rules == ()
    assert len(RuleEngine(rules, include_disabled=True).rules) == 1


def test_needs_content(tmp_path: Path) -> None:
    rules = _rules(
        tmp_path,
        "".join(
            [
                _rule(
                    "c", "{field: added_text, keywords: [idiot]}", "    scope: {namespaces: [3]}\n"
                ),
                _rule("s", "{field: summary, keywords: [idiot]}"),
            ]
        ),
    )
    engine = RuleEngine(rules, include_disabled=True)
    assert engine.needs_content(_summary("x", title="User talk:X")[0])
    assert not engine.needs_content(_summary("x", title="Talk:X")[0])


def _shipped() -> list[Rule]:
    rules, issues = load_rules([REPO / "config" / "rules"])
    assert not issues
    return rules


def _all_examples(rules: list[Rule]) -> list[tuple[RecentChange, DetectionContext]]:
    return [
        example_change(ex)
        for r in rules
        if r.window is None
        for events, _line in (*r.examples.match, *r.examples.no_match)
        for ex in events
    ]


def test_all_rules_together_equal_each_rule_alone(sample_events: list[bytes]) -> None:
    """The shared matchers, trigger index and de-duplicated conditions change nothing."""
    rules = _shipped()
    together = RuleEngine(rules, include_disabled=True)
    alone = [RuleEngine([r], include_disabled=True) for r in rules]
    cases = _all_examples(rules)
    cases += [(decode_event(e), DetectionContext()) for e in sample_events]
    hits = 0
    for change, ctx in cases:
        fired = {f.rule for engine in alone for f in engine.evaluate(change, ctx)}
        by_id = {r.id: r for r in rules}
        expected = {  # what suppressed_by removes when its suppressor fired too
            r
            for r in fired
            if not any(
                fnmatch.fnmatchcase(o, p) for p in by_id[r].suppressed_by for o in fired - {r}
            )
        }
        assert _ids(together.evaluate(change, ctx)) == expected
        hits += bool(expected)
    assert hits > 30


@pytest.mark.parametrize("rule", _shipped(), ids=lambda r: r.id)
def test_shipped_rule_examples(rule: Rule) -> None:
    count, failures = run_examples([rule], context=_shipped())
    assert count >= 2, "every shipped rule has match and no_match examples"
    assert not failures, "\n".join(map(str, failures))


def test_near_needs_the_matches_close_together(tmp_path: Path) -> None:
    near = (
        "{near: {within_chars: 20, conditions: ["
        "{field: added_text, keywords: [idiot]}, {field: added_text, keywords: [you]}]}}"
    )
    engine = RuleEngine(_rules(tmp_path, _rule("n", near)), include_disabled=True)

    def hit(text: str) -> bool:
        return bool(engine.evaluate(*example_change(Example(added_text=text))))

    assert hit("you are an idiot")
    assert hit("1D10T, that is what y0u are")  # obfuscated on both sides
    assert not hit("you wrote a fine paragraph about many things; the idiot vandal was blocked")
    assert not hit("idiot")


def test_near_rejects_conditions_without_matches(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(
        "rules:\n"
        + _rule(
            "n",
            "{near: {conditions: [{field: summary, keywords: [a]},"
            " {fact: second_person, field: summary}]}}",
        )
    )
    _, issues = load_rules([path])
    assert "near compares matches" in str(issues[0])


def test_masked_letters_in_text(tmp_path: Path) -> None:
    engine = RuleEngine(
        _rules(tmp_path, _rule("m", "{field: summary, keywords: [fuck, motherfuckers]}")),
        include_disabled=True,
    )
    for text in ("f*ck this", "you motherf#ckers", "f**k"):
        assert engine.evaluate(*_summary(text)), text
    for text in ("/* Early life */ copyedit", "5 * 3 = 15", "*** bold ***"):
        assert not engine.evaluate(*_summary(text)), text


@pytest.mark.timeout(60)
def test_large_adversarial_texts_stay_linear() -> None:
    """Events of 1 MiB are accepted; no regex in normalization, recognizers or rules may
    backtrack on long runs (a 1 MiB summary once took minutes). 256 KiB per shape here;
    a quadratic step would take hours, a linear one takes seconds."""
    engine = RuleEngine(_shipped())
    n = 1 << 18
    shapes = ["x" * n, "1" * n, "1 " * (n // 2), "a@" * (n // 2), "1." * (n // 2),
              "k i l " * (n // 6), "f*" * (n // 2), "x" * n + " jane.roe@example.org"]  # fmt: skip
    for text in shapes:
        change, ctx = example_change(Example(summary=text, added_text=text, title="Talk:X"))
        findings = engine.evaluate(change, ctx)
        if text.endswith("example.org"):
            assert "privacy.email-in-summary" in _ids(findings)


@pytest.mark.parametrize(
    ("example", "needed"),
    [
        (Example(title="User talk:Someone"), True),  # harassment, doxxing, PII in text
        (Example(title="Talk:Example page"), True),
        (Example(title="Example page"), False),  # articles: summary and title rules only
        (Example(title="File:Example.jpg"), False),
        (Example(title="User talk:Someone", type="log", log_type="block"), False),
        (Example(title="Example page", bot=True, user="SomeBot"), False),
    ],
)
def test_content_is_fetched_only_where_it_can_change_a_result(
    example: Example, needed: bool
) -> None:
    engine = RuleEngine(_shipped())
    change, _ctx = example_change(example)
    assert engine.needs_content(change) is needed


def test_a_language_condition_reads_the_texts_language(tmp_path: Path) -> None:
    rules = _rules(
        tmp_path,
        _rule(
            "t.de-insult",
            "{all: [{field: summary, language: [de, gsw]}, {field: summary, keywords: [idiot]}]}",
        ),
    )
    engine = RuleEngine(rules, include_disabled=True)
    assert _ids(engine.evaluate(*_summary("so ein idiot", wiki="dewiki"))) == {"t.de-insult"}
    assert _ids(engine.evaluate(*_summary("so ein idiot", wiki="frwiki"))) == set()
    # an English text on dewiki is English: the German rule stays quiet
    english = "you are an idiot and you should never edit this article again, ever"
    assert _ids(engine.evaluate(*_summary(english, wiki="dewiki"))) == set()
    # on Commons (no language of its own) the text tells
    german = "du bist ein idiot und solltest diesen Artikel nie wieder bearbeiten"
    assert _ids(engine.evaluate(*_summary(german, wiki="commonswiki"))) == {"t.de-insult"}
    assert _ids(engine.evaluate(*_summary("idiot!", wiki="commonswiki"))) == set()


def test_a_bad_language_code_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("rules:\n" + _rule("t.x", "{field: summary, language: [German]}"))
    _, issues = load_rules([path])
    assert len(issues) == 1 and "language codes" in issues[0].message
    assert issues[0].line == 9 and "'German'" in issues[0].message


def test_the_digest_is_the_same_in_every_process() -> None:
    """A scale-out worker's answer is used only when its rules' digest equals the detect
    stage's: a language condition kept its codes in a set, whose order (and so the
    digest) followed each process's hash seed, and every answer went unused."""
    import os
    import subprocess
    import sys

    code = (
        "from detectors.rules.engine import RuleEngine\n"
        "from detectors.rules.loader import load_rules\n"
        "from streams.settings import SHIPPED_RULES\n"
        "rules, _ = load_rules([SHIPPED_RULES], ('toxicity',))\n"
        "print(RuleEngine(rules).digest)\n"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True, text=True, check=True, timeout=120,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout.strip()
        for seed in ("1", "2", "3")
    }  # fmt: skip
    assert len(digests) == 1, digests
