"""Rule files: every problem reported at once, with file, line and rule id."""

from __future__ import annotations

from pathlib import Path

from detectors.rules.loader import load_rules
from detectors.rules.model import AllOf, KeywordCond, Not, RegexCond

GOOD = """\
rules:
  - id: test.one
    title: One
    category: harassment
    severity: medium
    match:
      all:
        - {field: summary, keywords: [idiot], keywords_file: words.txt}
        - not: {field: namespace, in: [0]}
    examples:
      match:
        - summary: idiot
"""


def test_a_good_file(tmp_path: Path) -> None:
    (tmp_path / "words.txt").write_text("# comment\nmoron\n\nimbecile  # inline\n")
    (tmp_path / "r.yaml").write_text(GOOD)
    rules, issues = load_rules([tmp_path])
    assert issues == []
    [rule] = rules
    assert rule.file.endswith("r.yaml") and rule.line == 2
    assert isinstance(rule.match, AllOf)
    kw, neg = rule.match.conditions
    assert isinstance(kw, KeywordCond) and kw.keywords == ("idiot", "moron", "imbecile")
    assert isinstance(neg, Not)


BAD = """\
rules:
  - id: bad.one
    title: Bad
    category: harassment
    severity: extreme
    match:
      field: summary
      regex: '(?=lookahead)'
    colour: red
  - id: bad.two
    title: Two
    category: privacy
    severity: low
    match:
      any:
        - {field: summary, recognizer: palmprint}
        - {field: bogus, keywords: [x]}
        - {fact: astrology}
        - {field: summary, keywords_file: missing.txt}
        - {field: title, gt: 5}
  - id: bad.one
    title: Duplicate
    category: privacy
    severity: low
    enabled: true
    match: {field: summary, regex: 'x'}
"""


def test_every_problem_at_once_with_lines(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    _rules, issues = load_rules([path])
    text = "\n".join(str(i) for i in issues)
    expected = [
        f"{path}:5: [rule bad.one] rules[0].severity: expected one of 'low'",
        f"{path}:8: [rule bad.one] rules[0].match.regex: RE2 cannot compile",
        f"{path}:9: [rule bad.one] rules[0].colour: unknown key",
        f"{path}:16: [rule bad.two] rules[1].match.any[0].recognizer: "
        "unknown recognizer 'palmprint'",
        f"{path}:17: [rule bad.two] rules[1].match.any[1].field: unknown field 'bogus'",
        f"{path}:18: [rule bad.two] rules[1].match.any[2].fact: unknown fact 'astrology'",
        f"{path}:19: [rule bad.two] rules[1].match.any[3].keywords_file: cannot read keyword list",
        f"{path}:20: [rule bad.two] rules[1].match.any[4].gt: gt needs a numeric field",
        f"{path}:21: [rule bad.one] id: duplicate rule id (first defined at",
        f"{path}:21: [rule bad.one] examples.match: an enabled rule needs at least one example",
    ]
    for line in expected:
        assert line in text, f"missing: {line}\n--- got:\n{text}"


def test_yaml_syntax_errors_and_empty_dirs(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("rules:\n  - id: [unclosed\n")
    _rules, issues = load_rules([tmp_path])
    assert "YAML syntax error" in str(issues[0]) and "broken.yaml:" in str(issues[0])
    _rules, issues = load_rules([tmp_path / "nothing-here"])
    assert "no such rule file or directory" in str(issues[0])
    (tmp_path / "empty").mkdir()
    _rules, issues = load_rules([tmp_path / "empty"])
    assert "no rule files found" in str(issues[0])


def test_regex_normalization_steps_are_validated(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(
        GOOD.replace(
            "{field: summary, keywords: [idiot], keywords_file: words.txt}",
            "{field: summary, regex: 'x', normalize: [casefold, rot13]}",
        )
    )
    _rules, issues = load_rules([path])
    assert "unknown normalization ['rot13']" in str(issues[0])
    path.write_text(
        GOOD.replace(
            "{field: summary, keywords: [idiot], keywords_file: words.txt}",
            "{field: summary, regex: 'x', normalize: [leet, casefold]}",
        )
    )
    rules, issues = load_rules([path])
    assert not issues
    cond = rules[0].match.conditions[0]  # type: ignore[union-attr]
    assert isinstance(cond, RegexCond) and cond.normalize == ("casefold", "leet")
