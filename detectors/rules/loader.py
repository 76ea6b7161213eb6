"""Rule files (YAML) into ``Rule`` values, with every problem reported at once.

A rule file is a mapping with a ``rules`` list (or just the list). Each problem names the
file, the line and the rule id: unknown keys, wrong types, regexes RE2 cannot compile,
unknown recognizers, facts or fields, missing keyword files, duplicate ids, and enabled
rules without an example that must match.

Condition syntax (one kind key per mapping)::

    all: [cond, ...]        any: [cond, ...]        not: cond
    field: summary, regex: '(?i)\\bdoxx?(ed|ing)?\\b', normalize: [casefold]
    field: added_text, keywords: [idiot, moron], keywords_file: lists/insults.en.txt
    field: summary, recognizer: phone, min_confidence: 0.6
    field: added_text, classifier: toxicity, min_score: 0.8
    field: namespace, in: [2, 3]        field: size_delta, gt: 5000
    fact: others_user_space             fact: second_person, field: added_text
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import Any

import re2
import yaml

from detectors.base import Severity
from detectors.classifier import shipped_model_dirs
from detectors.confload import ConfigIssue, NodeLoader, compose_file, node_line
from detectors.facts import CONTEXT_FACTS, CONTEXT_FACTS_WITH_FIELD, FACTS, FIELD_FACTS
from detectors.normalize import STEPS
from detectors.recognizers import RECOGNIZERS
from detectors.rules.model import (
    DEFAULT_KEYWORD_STEPS,
    TEXT_FIELDS,
    VALUE_FIELDS,
    AllOf,
    AnyOf,
    ClassifierCond,
    Condition,
    Example,
    FactCond,
    FindingCond,
    KeywordCond,
    LanguageCond,
    Near,
    Not,
    RecognizerCond,
    RegexCond,
    Rule,
    RuleExamples,
    ValueCond,
)

__all__ = ["RE2_OPTIONS", "load_rules", "rule_files"]

_KINDS = ("all", "any", "near", "not", "regex", "keywords", "keywords_file", "recognizer",
          "classifier", "language", "fact", "finding", "equals", "in", "gt", "gte", "lt",
          "lte")  # fmt: skip
_LANGUAGE_CODE = re.compile(r"[a-z]{2,3}(?:-[a-z]+)*")
_MODIFIERS = ("field", "normalize", "min_confidence", "min_score")
_VALUE_OPS = ("equals", "in", "gt", "gte", "lt", "lte")
_NUMERIC_FIELDS = ("namespace", "size_delta")

RE2_OPTIONS = re2.Options()
RE2_OPTIONS.log_errors = False


def rule_files(paths: Iterable[str | Path]) -> list[Path]:
    """Rule files under the given files and directories, in a stable order."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(x for x in p.rglob("*.y*ml") if x.suffix in (".yaml", ".yml")))
        else:
            out.append(p)
    return out


class RuleLoader(NodeLoader):
    def __init__(self, file: str, base_dir: Path, classifiers: Collection[str] = ()) -> None:
        super().__init__(file, base_dir=base_dir)
        self.rules_dir = base_dir  # keyword lists are relative to the rule file
        self.classifiers = classifiers  # the names a classifier condition may use

    def _value(self, tp: Any, node: yaml.Node, path: str) -> Any:
        if tp == Condition:
            return self.condition(node, path)
        if tp is RuleExamples:
            return self.examples(node, path)
        return super()._value(tp, node, path)

    # -- conditions -------------------------------------------------------------------

    def condition(self, node: yaml.Node, path: str) -> Condition | None:
        items = {k: (kn, vn) for k, kn, vn in self.mapping_items(node, path)}
        if not isinstance(node, yaml.MappingNode):
            return None
        line = node_line(node) or 0
        unknown = [k for k in items if k not in _KINDS and k not in _MODIFIERS]
        for k in unknown:
            self.error(
                items[k][0], f"{path}.{k}", f"unknown condition key (one of {', '.join(_KINDS)})"
            )
        kinds = [k for k in items if k in _KINDS and k != "keywords_file"]
        if not kinds and "keywords_file" in items:
            kinds = ["keywords"]
        if len(kinds) != 1:
            what = ", ".join(kinds) if kinds else "none"
            self.error(
                node, path, f"a condition needs exactly one of {', '.join(_KINDS)} (got {what})"
            )
            return None
        if unknown:
            return None
        kind = kinds[0]
        if kind in ("all", "any"):
            _kn, vn = items[kind]
            if not isinstance(vn, yaml.SequenceNode) or not vn.value:
                self.error(vn, f"{path}.{kind}", "expected a non-empty list of conditions")
                return None
            children = [self.condition(c, f"{path}.{kind}[{i}]") for i, c in enumerate(vn.value)]
            if any(c is None for c in children):
                return None
            conds = tuple(c for c in children if c is not None)
            return AllOf(conds, line) if kind == "all" else AnyOf(conds, line)
        if kind == "near":
            return self._near(items["near"][1], f"{path}.near", line)
        if kind == "not":
            child = self.condition(items["not"][1], f"{path}.not")
            return Not(child, line) if child is not None else None
        if kind == "fact":
            return self._fact(items, node, path, line)
        if kind == "finding":
            return self._finding(items["finding"][1], f"{path}.finding", line)
        field = self._field(items, node, path)
        if field is None:
            return None
        if kind in _VALUE_OPS:
            return self._value_cond(kind, field, items, path, line)
        if field not in TEXT_FIELDS:
            self.error(
                items["field"][1],
                f"{path}.field",
                f"{kind} needs a text field ({', '.join(TEXT_FIELDS)}), got {field!r}",
            )
            return None
        if kind == "regex":
            return self._regex(field, items, path, line)
        if kind == "keywords":
            return self._keywords(field, items, path, line)
        if kind == "classifier":
            return self._classifier(field, items, path, line)
        if kind == "language":
            return self._language(field, items, path, line)
        return self._recognizer(field, items, path, line)

    def _language(
        self, field: str, items: dict[str, tuple[yaml.Node, yaml.Node]], path: str, line: int
    ) -> LanguageCond | None:
        codes = self.build(tuple[str, ...], items["language"][1], f"{path}.language")
        if codes is None:
            return None
        bad = [c for c in codes if not _LANGUAGE_CODE.fullmatch(c)]
        if not codes or bad:
            self.error(
                items["language"][1],
                f"{path}.language",
                "expected a list of language codes as the wikis write them (de, zh-yue)"
                + (f", got {bad[0]!r}" if bad else ""),
            )
            return None
        return LanguageCond(field, tuple(sorted(set(codes))), line)

    def _near(self, node: yaml.Node, path: str, line: int) -> Near | None:
        items = {k: (kn, vn) for k, kn, vn in self.mapping_items(node, path)}
        for k, (kn, _vn) in items.items():
            if k not in ("conditions", "within_chars"):
                self.error(kn, f"{path}.{k}", "unknown key (near takes conditions, within_chars)")
                return None
        within = 40
        if "within_chars" in items:
            value = self.build(int, items["within_chars"][1], f"{path}.within_chars")
            if value is None or value < 0:
                if value is not None:
                    self.error(items["within_chars"][1], f"{path}.within_chars", "must be >= 0")
                return None
            within = value
        vn = items.get("conditions", (None, None))[1]
        if not isinstance(vn, yaml.SequenceNode) or len(vn.value) < 2:
            self.error(
                vn or node, f"{path}.conditions", "expected a list of at least two conditions"
            )
            return None
        children = [self.condition(c, f"{path}.conditions[{i}]") for i, c in enumerate(vn.value)]
        if any(c is None for c in children):
            return None
        conds = tuple(c for c in children if c is not None)
        fields = {getattr(c, "field", None) for c in conds}
        if (
            not all(isinstance(c, RegexCond | KeywordCond | RecognizerCond) for c in conds)
            or len(fields) != 1
        ):
            self.error(
                vn,
                f"{path}.conditions",
                "near compares matches: regex, keywords or recognizer conditions on one field",
            )
            return None
        return Near(conds, within, line)

    def _field(
        self, items: dict[str, tuple[yaml.Node, yaml.Node]], node: yaml.Node, path: str
    ) -> str | None:
        if "field" not in items:
            self.error(node, path, "missing 'field'")
            return None
        field = self.build(str, items["field"][1], f"{path}.field")
        if field is not None and field not in TEXT_FIELDS + VALUE_FIELDS:
            self.error(
                items["field"][1],
                f"{path}.field",
                f"unknown field {field!r} (one of {', '.join(TEXT_FIELDS + VALUE_FIELDS)})",
            )
            return None
        return field  # type: ignore[no-any-return]

    def _steps(
        self, items: dict[str, tuple[yaml.Node, yaml.Node]], path: str, default: tuple[str, ...]
    ) -> tuple[str, ...] | None:
        if "normalize" not in items:
            return default
        steps = self.build(tuple[str, ...], items["normalize"][1], f"{path}.normalize")
        if steps is None:
            return None
        bad = [s for s in steps if s not in STEPS]
        if bad:
            self.error(
                items["normalize"][1],
                f"{path}.normalize",
                f"unknown normalization {bad} (known: {', '.join(STEPS)})",
            )
            return None
        return tuple(s for s in STEPS if s in steps)

    def _regex(
        self, field: str, items: dict[str, tuple[yaml.Node, yaml.Node]], path: str, line: int
    ) -> RegexCond | None:
        pattern = self.build(str, items["regex"][1], f"{path}.regex")
        steps = self._steps(items, path, ())
        if pattern is None or steps is None:
            return None
        try:
            re2.compile(pattern, RE2_OPTIONS)
        except re2.error as exc:
            msg = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
            self.error(
                items["regex"][1],
                f"{path}.regex",
                f"RE2 cannot compile this regex ({msg}); "
                "lookarounds and backreferences are not supported",
            )
            return None
        return RegexCond(field, pattern, steps, line)

    def _keywords(
        self, field: str, items: dict[str, tuple[yaml.Node, yaml.Node]], path: str, line: int
    ) -> KeywordCond | None:
        words: list[str] = []
        if "keywords" in items:
            inline = self.build(tuple[str, ...], items["keywords"][1], f"{path}.keywords")
            if inline is None:
                return None
            words.extend(inline)
        if "keywords_file" in items:
            name = self.build(str, items["keywords_file"][1], f"{path}.keywords_file")
            if name is None:
                return None
            listed = self._read_list(name, items["keywords_file"][1], f"{path}.keywords_file")
            if listed is None:
                return None
            words.extend(listed)
        steps = self._steps(items, path, DEFAULT_KEYWORD_STEPS)
        if steps is None:
            return None
        words = [w.strip() for w in words if w.strip()]
        if not words:
            self.error(
                items.get("keywords", items.get("keywords_file", (None, None)))[1],
                path,
                "the keyword list is empty",
            )
            return None
        return KeywordCond(field, tuple(dict.fromkeys(words)), steps, line)

    def _read_list(self, name: str, node: yaml.Node, path: str) -> list[str] | None:
        file = (self.rules_dir / name).resolve()
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            self.error(node, path, f"cannot read keyword list {file}: {exc.strerror or exc}")
            return None
        return [
            ln.split(" #", 1)[0].strip()
            for ln in text.splitlines()
            if ln.strip() and not ln.lstrip().startswith("#")
        ]

    def _recognizer(
        self, field: str, items: dict[str, tuple[yaml.Node, yaml.Node]], path: str, line: int
    ) -> RecognizerCond | None:
        name = self.build(str, items["recognizer"][1], f"{path}.recognizer")
        if name is None:
            return None
        if name not in RECOGNIZERS:
            self.error(
                items["recognizer"][1],
                f"{path}.recognizer",
                f"unknown recognizer {name!r} (known: {', '.join(sorted(RECOGNIZERS))})",
            )
            return None
        min_conf = 0.5
        if "min_confidence" in items:
            value = self.build(float, items["min_confidence"][1], f"{path}.min_confidence")
            if value is None:
                return None
            if not 0.0 <= value <= 1.0:
                self.error(
                    items["min_confidence"][1], f"{path}.min_confidence", "must be between 0 and 1"
                )
                return None
            min_conf = value
        return RecognizerCond(field, name, min_conf, line)

    def _classifier(
        self, field: str, items: dict[str, tuple[yaml.Node, yaml.Node]], path: str, line: int
    ) -> ClassifierCond | None:
        name = self.build(str, items["classifier"][1], f"{path}.classifier")
        if name is None:
            return None
        if name not in self.classifiers:
            known = ", ".join(sorted(self.classifiers)) or "none configured"
            self.error(
                items["classifier"][1],
                f"{path}.classifier",
                f"unknown classifier {name!r} (known: {known}; add one under "
                "detectors.classifiers)",
            )
            return None
        if "min_score" not in items:
            self.error(
                items["classifier"][0],
                f"{path}.min_score",
                "a classifier condition needs min_score (0..1; `rcwatch model info` shows "
                "the model's thresholds)",
            )
            return None
        value = self.build(float, items["min_score"][1], f"{path}.min_score")
        if value is None:
            return None
        if not 0.0 < value <= 1.0:
            self.error(items["min_score"][1], f"{path}.min_score", "must be above 0, at most 1")
            return None
        return ClassifierCond(field, name, value, line)

    def _value_cond(
        self,
        op: str,
        field: str,
        items: dict[str, tuple[yaml.Node, yaml.Node]],
        path: str,
        line: int,
    ) -> ValueCond | None:
        vnode = items[op][1]
        numeric = field in _NUMERIC_FIELDS
        if op in ("gt", "gte", "lt", "lte"):
            if not numeric:
                self.error(
                    vnode,
                    f"{path}.{op}",
                    f"{op} needs a numeric field ({', '.join(_NUMERIC_FIELDS)})",
                )
                return None
            value: Any = self.build(int, vnode, f"{path}.{op}")
        elif op == "in":
            value = self.build(tuple[int, ...] if numeric else tuple[str, ...], vnode, f"{path}.in")
        else:
            value = self.build(
                bool if field == "bot" else int if numeric else str, vnode, f"{path}.equals"
            )
        if value is None:
            return None
        return ValueCond(field, op, value, line)  # type: ignore[arg-type]

    def _fact(
        self, items: dict[str, tuple[yaml.Node, yaml.Node]], node: yaml.Node, path: str, line: int
    ) -> FactCond | None:
        name = self.build(str, items["fact"][1], f"{path}.fact")
        if name is None:
            return None
        if name in FACTS:
            if "field" in items:
                self.error(
                    items["field"][0], f"{path}.field", f"fact {name!r} does not take a field"
                )
                return None
            return FactCond(name, None, line)
        if name in CONTEXT_FACTS and name not in CONTEXT_FACTS_WITH_FIELD:
            return FactCond(name, None, line)
        if name in FIELD_FACTS or name in CONTEXT_FACTS_WITH_FIELD:
            field = self._field(items, node, path)
            if field is None:
                return None
            if field not in TEXT_FIELDS:
                self.error(items["field"][1], f"{path}.field", f"fact {name!r} needs a text field")
                return None
            return FactCond(name, field, line)
        known = ", ".join(sorted([*FACTS, *FIELD_FACTS, *CONTEXT_FACTS]))
        self.error(items["fact"][1], f"{path}.fact", f"unknown fact {name!r} (known: {known})")
        return None

    def _finding(self, node: yaml.Node, path: str, line: int) -> FindingCond | None:
        items = {k: (kn, vn) for k, kn, vn in self.mapping_items(node, path)}
        out: dict[str, Any] = {}
        for key, (knode, vnode) in items.items():
            if key in ("category", "rule"):
                value = self.build(str | tuple[str, ...], vnode, f"{path}.{key}")
                if value is None:
                    return None
                values = (value,) if isinstance(value, str) else tuple(value)
                if key == "category":
                    bad = [v for v in values if v not in ("privacy", "doxxing", "harassment")]
                    if bad:
                        self.error(vnode, f"{path}.category", f"unknown category {bad}")
                        return None
                out["categories" if key == "category" else "rules"] = values
            elif key == "min_severity":
                sev = self.build(Severity, vnode, f"{path}.min_severity")
                if sev is None:
                    return None
                out["min_severity"] = str(sev)
            else:
                self.error(knode, f"{path}.{key}", "unknown key (category, rule, min_severity)")
                return None
        return FindingCond(line=line, **out)

    # -- examples -----------------------------------------------------------------------

    def examples(self, node: yaml.Node, path: str) -> RuleExamples | None:
        out: dict[str, tuple[tuple[tuple[Example, ...], int], ...]] = {"match": (), "no_match": ()}
        ok = True
        for key, knode, vnode in self.mapping_items(node, path):
            if key not in out:
                self.error(
                    knode, f"{path}.{key}", "unknown key (did you mean 'match' or 'no_match'?)"
                )
                ok = False
                continue
            if not isinstance(vnode, yaml.SequenceNode):
                self.error(vnode, f"{path}.{key}", "expected a list of partial events")
                ok = False
                continue
            got = []
            for i, item in enumerate(vnode.value):
                seq = item.value if isinstance(item, yaml.SequenceNode) else [item]
                events = [
                    self.dataclass(Example, ev, f"{path}.{key}[{i}]" + (f"[{j}]" if j else ""))
                    for j, ev in enumerate(seq)
                ]
                if not events or any(e is None for e in events):
                    if not events:
                        self.error(item, f"{path}.{key}[{i}]", "an empty sequence")
                    ok = False
                    continue
                got.append((tuple(e for e in events if e is not None), node_line(item) or 0))
            out[key] = tuple(got)
        return RuleExamples(out["match"], out["no_match"]) if ok else None

    def check_rule(self, rule: Rule, node: yaml.Node) -> None:
        """What only the whole rule can tell."""
        if rule.suppressed_by and rule.window is not None:
            self.error(node, "suppressed_by", "pattern rules cannot be suppressed (use a scope)")
        needs_window = [c for c in _walk(rule.match) if _pattern_only(c)]
        if needs_window and rule.window is None:
            self.error(
                node,
                "window",
                f"line {needs_window[0].line}: 'finding' conditions and "
                "the facts reinserted_pii and follows_other_editor need a window: "
                "they see other rules' results and what earlier events left behind",
            )
        if rule.window is None:
            for events, line in (*rule.examples.match, *rule.examples.no_match):
                if len(events) > 1:
                    self.issues.append(
                        ConfigIssue(
                            self.file,
                            line,
                            "examples",
                            "a sequence of events needs a pattern rule (window)",
                            rule.id,
                        )
                    )


def _walk(cond: Condition) -> Iterable[Condition]:
    yield cond
    if isinstance(cond, AllOf | AnyOf | Near):
        for c in cond.conditions:
            yield from _walk(c)
    elif isinstance(cond, Not):
        yield from _walk(cond.condition)


def _pattern_only(cond: Condition) -> bool:
    return isinstance(cond, FindingCond) or (
        isinstance(cond, FactCond) and cond.fact in CONTEXT_FACTS
    )


def _rule_nodes(loader: NodeLoader, node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    items = {k: v for k, _kn, v in loader.mapping_items(node, "")}
    for key in items:
        if key != "rules":
            loader.error(node, key, "unknown top-level key (a rule file holds 'rules: [...]')")
    rules = items.get("rules")
    if rules is None:
        loader.error(node, "rules", "missing 'rules'")
        return []
    if not isinstance(rules, yaml.SequenceNode):
        loader.error(rules, "rules", "expected a list of rules")
        return []
    return list(rules.value)


def _rule_id(node: yaml.Node) -> str | None:
    value = _child(node, "id")
    return str(value.value) if isinstance(value, yaml.ScalarNode) else None


def load_rules(
    paths: Sequence[str | Path], classifiers: Collection[str] | None = None
) -> tuple[list[Rule], list[ConfigIssue]]:
    """Every rule under ``paths`` (files or directories), and every problem found.
    ``classifiers``: the classifier names rules may use (default: the shipped models)."""
    if classifiers is None:
        classifiers = shipped_model_dirs().keys()
    rules: list[Rule] = []
    issues: list[ConfigIssue] = []
    for p in map(Path, paths):
        if not p.exists():
            issues.append(ConfigIssue(str(p), None, "", "no such rule file or directory"))
    files = [f for f in rule_files(paths) if f.exists()]
    seen_ids: dict[str, tuple[str, int]] = {}
    if not files:
        issues.append(ConfigIssue(", ".join(map(str, paths)), None, "", "no rule files found"))
    for file in files:
        node, syntax = compose_file(file)
        issues.extend(syntax)
        if node is None:
            continue
        top = RuleLoader(str(file), file.parent, classifiers)
        for i, rnode in enumerate(_rule_nodes(top, node)):
            loader = RuleLoader(str(file), file.parent, classifiers)
            loader.rule_id = rid = _rule_id(rnode)
            line = node_line(rnode) or 0
            if rid is not None and rid in seen_ids:
                first_file, first_line = seen_ids[rid]
                issues.append(
                    ConfigIssue(
                        str(file),
                        line,
                        "id",
                        f"duplicate rule id (first defined at {first_file}:{first_line})",
                        rid,
                    )
                )
            elif rid is not None:
                seen_ids[rid] = (str(file), line)
            if _enabled(rnode) and not _has_match_example(rnode):
                issues.append(
                    ConfigIssue(
                        str(file),
                        line,
                        "examples.match",
                        "an enabled rule needs at least one example that must match",
                        rid,
                    )
                )
            rule = loader.dataclass(Rule, rnode, f"rules[{i}]")
            if rule is not None:
                loader.check_rule(rule, rnode)
            issues.extend(loader.issues)
            if rule is not None:
                rules.append(dataclasses.replace(rule, file=str(file), line=line))
        issues.extend(top.issues)
    return rules, issues


def _child(node: yaml.Node, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return v  # type: ignore[no-any-return]
    return None


def _enabled(node: yaml.Node) -> bool:
    flag = _child(node, "enabled")
    return not (isinstance(flag, yaml.ScalarNode) and flag.value.lower() in ("false", "no", "off"))


def _has_match_example(node: yaml.Node) -> bool:
    examples = _child(node, "examples")
    match = _child(examples, "match") if examples is not None else None
    return isinstance(match, yaml.SequenceNode) and bool(match.value)
