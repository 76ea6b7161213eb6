"""The rule engine: rules compiled into shared, linear-time matchers.

Per event the cost depends on the text, not on the number of rules:

1. Rules are grouped by scope. Each distinct scope is checked once per event; only the
   text groups used by rules in scope are looked at.
2. Each (field, normalization) group has one RE2 ``Set`` (every regex, every literal
   keyword of a script without spaces, and every recognizer's prefilter) and one keyword
   index (token lookup). One pass of each gives the ids of the conditions that hold.
3. A rule is a candidate only if one of its *trigger* conditions held (a rule of
   ``all: [A, B]`` needs A, so A's id triggers it) or if it has no trigger at all (e.g.
   ``size_delta > 5000`` alone). Only candidates are evaluated in full.

RE2 guarantees linear time, so no rule can cause catastrophic backtracking. The cost of one
event is bounded whatever its text: a field longer than ``MAX_FIELD_CHARS`` is looked at up to
there, recognizers see at most ``MAX_RECOGNIZER_CHARS`` of it and judge a bounded number of
candidates (``detectors.recognizers.base``), and what was cut short is reported in the
caller's ``Budget`` (``bench/worst_case`` measures the result). The engine is pure: no I/O,
no clock, no state between events (its memo of short repeated texts changes only the cost).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field

import re2

from detectors.base import (
    EMPTY_CONTEXT,
    Category,
    DetectionContext,
    Finding,
    Severity,
    Span,
    field_text,
)
from detectors.classifier import TextClassifier, load_model, shipped_model_dirs
from detectors.event import RecentChange
from detectors.facts import CONTEXT_FACTS, FACTS, FIELD_FACTS, SECOND_PERSON
from detectors.keywords import KeywordIndex, is_substring_keyword, phrase_tokens
from detectors.language import text_language, wiki_language
from detectors.normalize import Normalized, normalize
from detectors.recognizers import RECOGNIZERS, regions_for_wiki
from detectors.recognizers.base import Budget, PiiMatch, TextContext
from detectors.rules.loader import RE2_OPTIONS
from detectors.rules.model import (
    AllOf,
    AnyOf,
    ClassifierCond,
    Condition,
    FactCond,
    FindingCond,
    KeywordCond,
    LanguageCond,
    Near,
    Not,
    RecognizerCond,
    RegexCond,
    Rule,
    RuleScope,
    ValueCond,
    leaf_conditions,
)

__all__ = ["MAX_FIELD_CHARS", "MAX_RECOGNIZER_CHARS", "RuleEngine"]

_SENSITIVE = (Category.PRIVACY, Category.DOXXING)
_SCAN_CACHE_SIZE = 20_000
_MEMO_MAX_CHARS = 4096  # titles and summaries repeat; long added texts do not (memory)
MAX_FIELD_CHARS = 1 << 20  # the most of one text any rule looks at
MAX_RECOGNIZER_CHARS = MAX_FIELD_CHARS  # the most of one text a recognizer looks at

# how many words of address an explanation may have to pass over to show three terms
_ADDRESS_WORDS_SKIPPED = 5


def _mask(text: str) -> str:
    """A harassment term, recognisable to a moderator but not spelt out."""
    if len(text) <= 2:
        return "*" * len(text)
    return f"{text[0]}{'*' * min(len(text) - 2, 8)}{text[-1]}"


_SHIPPED: dict[str, TextClassifier] = {}


def _classifiers_for(
    rules: Sequence[Rule], given: Mapping[str, TextClassifier] | None
) -> dict[str, TextClassifier]:
    """The models the rules name: from ``given``, else the shipped ones (loaded once per
    process). ``ValueError`` naming the rule's file and line for a name not available."""
    names = {
        (c.classifier, r.file, c.line)
        for r in rules
        for c in leaf_conditions(r.match)
        if isinstance(c, ClassifierCond)
    }
    out: dict[str, TextClassifier] = {}
    for name, file, line in sorted(names):
        if name in out:
            continue
        if given is not None:
            model = given.get(name)
        else:
            model = _SHIPPED.get(name)
            if model is None and name in (dirs := shipped_model_dirs()):
                model = _SHIPPED[name] = load_model(dirs[name])
        if model is None:
            raise ValueError(f"{file}:{line}: unknown classifier {name!r}")
        out[name] = model
    if given is not None:
        out = {**given, **out}
    return out


def _digest(rules: Iterable[Rule], classifiers: Mapping[str, TextClassifier]) -> str:
    """What these rules are, in 16 hex digits: the same rules and models give the same
    digest in every process (wherever their files are), any change another one. A scale-out
    worker sends it with its findings, so the detect stage uses them only when it runs the
    same rules."""
    h = hashlib.sha256()
    for rule in sorted(rules, key=lambda r: r.id):
        h.update(repr(dataclasses.replace(rule, file="", line=0)).encode())
    for name in sorted(classifiers):
        h.update(f"\x1f{name}\x1f{classifiers[name].version}".encode())
    return h.hexdigest()[:16]


def _needs_findings(cond: Condition) -> bool:
    """Whether ``cond`` can only hold when the event has findings of other rules."""
    if isinstance(cond, FindingCond):
        return True
    if isinstance(cond, AllOf | Near):
        return any(_needs_findings(c) for c in cond.conditions)
    if isinstance(cond, AnyOf):
        return all(_needs_findings(c) for c in cond.conditions)
    return False  # a Not holds precisely when its condition does not


class _Scope:
    def __init__(self, scope: RuleScope) -> None:
        self.scope = scope
        pats = scope.wikis or ("*",)
        self._include = re.compile("|".join(fnmatch.translate(p) for p in pats))
        self._exclude = (
            re.compile("|".join(fnmatch.translate(p) for p in scope.exclude_wikis))
            if scope.exclude_wikis
            else None
        )
        self._namespaces = frozenset(scope.namespaces) if scope.namespaces is not None else None
        self._exclude_ns = frozenset(scope.exclude_namespaces)
        self._types = frozenset(scope.types) if scope.types is not None else None
        self._log_types = frozenset(scope.log_types) if scope.log_types is not None else None
        self._performers = frozenset(scope.performers)
        self._wiki_cache: dict[str | None, bool] = {}

    def accepts(self, change: RecentChange) -> bool:
        if self._types is not None and change.type not in self._types:
            return False
        if change.performer_kind not in self._performers:
            return False
        if change.bot and "bot" not in self._performers:
            return False
        if self._namespaces is not None and change.namespace not in self._namespaces:
            return False
        if change.namespace in self._exclude_ns:
            return False
        if self._log_types is not None and (
            change.log_type not in self._log_types
            and f"{change.log_type}/{change.log_action}" not in self._log_types
        ):
            return False
        ok = self._wiki_cache.get(change.wiki)
        if ok is None:
            name = change.wiki or ""
            ok = bool(self._include.match(name)) and not (
                self._exclude is not None and self._exclude.match(name)
            )
            if len(self._wiki_cache) < 10_000:
                self._wiki_cache[change.wiki] = ok
        return ok


@dataclass
class _Group:
    """All conditions reading one field under one normalization."""

    index: int
    field: str
    steps: tuple[str, ...]
    patterns: list[str] = dc_field(default_factory=list)
    pattern_ids: list[int] = dc_field(default_factory=list)  # Set index -> condition id
    keywords: KeywordIndex = dc_field(default_factory=KeywordIndex)
    matcher: re2.Set | None = None

    def compile(self) -> None:
        if not self.patterns:
            return
        s = re2.Set.SearchSet(RE2_OPTIONS)
        for p in self.patterns:
            s.Add(p)
        s.Compile()
        self.matcher = s


@dataclass
class _Compiled:
    rule: Rule
    triggers: frozenset[int] | None  # None: must always be evaluated
    groups: frozenset[int]
    reads_content: bool
    classifier_conds: tuple[ClassifierCond, ...] = ()


@dataclass
class _ScopeClass:
    scope: _Scope
    rules: list[_Compiled] = dc_field(default_factory=list)
    by_trigger: dict[int, list[_Compiled]] = dc_field(default_factory=dict)
    always: list[_Compiled] = dc_field(default_factory=list)
    # ``always`` without the rules that need another rule's finding: what an event with
    # no findings (most of them) evaluates, in the same order
    always_unless_findings: list[_Compiled] = dc_field(default_factory=list)
    groups: frozenset[int] = frozenset()


class _State:
    """What one event's evaluation has worked out so far (caches, per event only)."""

    __slots__ = (
        "budget", "change", "ctx", "facts", "languages", "matched", "normalized", "recognized",
        "scores", "spans", "texts",
    )  # fmt: skip

    def __init__(
        self, change: RecentChange, ctx: DetectionContext, budget: Budget | None = None
    ) -> None:
        self.change = change
        self.ctx = ctx
        self.budget = budget
        self.texts: dict[str, str | None] = {}
        self.normalized: dict[tuple[str, tuple[str, ...]], Normalized] = {}
        self.matched: set[int] = set()
        self.spans: dict[int, list[tuple[int, int, int]]] = {}  # cond -> (group, start, end)
        self.recognized: dict[tuple[str, str], list[PiiMatch]] = {}
        self.facts: dict[tuple[str, str | None], bool] = {}
        self.scores: dict[tuple[str, str], float] = {}
        self.languages: dict[str, str | None] = {}  # field -> its text's language


class RuleEngine:
    """Compiled rules. ``evaluate`` is the pure per-event function."""

    def __init__(
        self,
        rules: Iterable[Rule],
        *,
        include_disabled: bool = False,
        classifiers: Mapping[str, TextClassifier] | None = None,
    ) -> None:
        self.rules = tuple(r for r in rules if r.enabled or include_disabled)
        self.classifiers = _classifiers_for(self.rules, classifiers)
        self.digest = _digest(self.rules, self.classifiers)
        self._groups: list[_Group] = []
        self._group_index: dict[tuple[str, tuple[str, ...]], _Group] = {}
        self._cond_ids: dict[object, int] = {}  # dedupe identical leaf conditions
        self._leaf_of: dict[int, int] = {}  # id(condition object) -> condition id
        self._cond_group: dict[int, int] = {}
        self._prefilter_ids: dict[tuple[str, str], int] = {}
        self._regex_of: dict[int, tuple[re2._Regexp, int]] = {}  # cond id -> (regex, group)
        self._classes: list[_ScopeClass] = []
        self._pattern_classes: list[_ScopeClass] = []
        # memo of (group, text) -> scan result: summaries and titles repeat a lot (bots,
        # categories); bounded, and pure, so it changes nothing but the cost
        self._scan_cache: dict[
            tuple[int, str], tuple[Normalized, frozenset[int], dict[int, list[tuple[int, int]]]]
        ] = {}
        self._scope_cache: dict[tuple[object, ...], list[_ScopeClass]] = {}  # see _in_scope
        class_of: dict[tuple[RuleScope, bool], _ScopeClass] = {}
        for rule in self.rules:
            compiled = self._compile_rule(rule)
            pattern = rule.window is not None
            cls = class_of.get((rule.scope, pattern))
            if cls is None:
                cls = class_of[(rule.scope, pattern)] = _ScopeClass(_Scope(rule.scope))
                (self._pattern_classes if pattern else self._classes).append(cls)
            cls.rules.append(compiled)
            if compiled.triggers is None:
                cls.always.append(compiled)
                if not _needs_findings(rule.match):
                    cls.always_unless_findings.append(compiled)
            else:
                for t in compiled.triggers:
                    cls.by_trigger.setdefault(t, []).append(compiled)
            cls.groups = cls.groups | compiled.groups
        for g in self._groups:
            g.compile()
        self._by_id = {
            c.rule.id: c for cls in (*self._classes, *self._pattern_classes) for c in cls.rules
        }
        self.pattern_rules = {r.id: r for r in self.rules if r.window is not None}

    # -- compilation --------------------------------------------------------------------

    def _group(self, field_name: str, steps: tuple[str, ...]) -> _Group:
        key = (field_name, steps)
        g = self._group_index.get(key)
        if g is None:
            g = self._group_index[key] = _Group(len(self._groups), field_name, steps)
            self._groups.append(g)
        return g

    def _leaf_id(self, cond: RegexCond | KeywordCond | RecognizerCond) -> int:
        cached = self._leaf_of.get(id(cond))
        if cached is not None:
            return cached
        cid = self._new_leaf_id(cond)
        self._leaf_of[id(cond)] = cid
        return cid

    def _new_leaf_id(self, cond: RegexCond | KeywordCond | RecognizerCond) -> int:
        key: object
        if isinstance(cond, RegexCond):
            key = ("re", cond.field, cond.normalize, cond.pattern)
        elif isinstance(cond, KeywordCond):
            key = ("kw", cond.field, cond.normalize, cond.keywords)
        else:
            key = ("pre", cond.field, RECOGNIZERS[cond.recognizer].prefilter)
        cid = self._cond_ids.get(key)
        if cid is not None:
            return cid
        cid = self._cond_ids[key] = len(self._cond_ids)
        if isinstance(cond, RegexCond):
            g = self._group(cond.field, cond.normalize)
            g.patterns.append(cond.pattern)
            g.pattern_ids.append(cid)
            self._regex_of[cid] = (re2.compile(cond.pattern, RE2_OPTIONS), g.index)
        elif isinstance(cond, KeywordCond):
            g = self._group(cond.field, cond.normalize)
            for word in cond.keywords:
                norm = normalize(word, cond.normalize).text
                if is_substring_keyword(norm):
                    g.patterns.append(re2.escape(norm))
                    g.pattern_ids.append(cid)
                else:
                    g.keywords.add(phrase_tokens(norm), cid)
        else:
            g = self._group(cond.field, ())
            prefilter = RECOGNIZERS[cond.recognizer].prefilter or ""
            g.patterns.append(prefilter)
            g.pattern_ids.append(cid)
        self._cond_group[cid] = g.index
        return cid

    def _triggers(self, cond: Condition) -> frozenset[int] | None:
        """Condition ids of which at least one must hold for ``cond`` to hold."""
        if isinstance(cond, RegexCond | KeywordCond | RecognizerCond):
            return frozenset({self._leaf_id(cond)})
        if isinstance(cond, AllOf | Near):
            options = [self._triggers(c) for c in cond.conditions]
            known = [t for t in options if t is not None]
            return min(known, key=len) if known else None
        if isinstance(cond, AnyOf):
            union: set[int] = set()
            for c in cond.conditions:
                t = self._triggers(c)
                if t is None:
                    return None
                union |= t
            return frozenset(union)
        return None  # Not, values, facts: cannot prove anything on their own

    def _compile_rule(self, rule: Rule) -> _Compiled:
        groups = set()
        reads_content = False
        for leaf in leaf_conditions(rule.match):
            if isinstance(leaf, RegexCond | KeywordCond | RecognizerCond):
                groups.add(self._cond_group[self._leaf_id(leaf)])
            fld = getattr(leaf, "field", None)
            if fld in ("added_text", "removed_text"):
                reads_content = True
        scored = tuple(c for c in leaf_conditions(rule.match) if isinstance(c, ClassifierCond))
        return _Compiled(rule, self._triggers(rule.match), frozenset(groups), reads_content, scored)

    # -- evaluation ---------------------------------------------------------------------

    def _text(self, st: _State, field_name: str) -> str | None:
        try:
            return st.texts[field_name]
        except KeyError:
            pass
        text = field_text(st.change, st.ctx, field_name)
        if text is not None and len(text) > MAX_FIELD_CHARS:
            text = text[:MAX_FIELD_CHARS]  # spans stay offsets into the whole text
            if st.budget is not None:
                st.budget.exhausted.add("text")
        st.texts[field_name] = text
        return text

    def _norm(self, st: _State, g: _Group) -> Normalized | None:
        key = (g.field, g.steps)
        n = st.normalized.get(key)
        if n is None:
            text = self._text(st, g.field)
            if not text:
                return None
            n = st.normalized[key] = normalize(text, g.steps)
        return n

    def _scan_group(self, st: _State, g: _Group) -> None:
        text = self._text(st, g.field)
        if not text:
            return
        key = (g.index, text)
        memo = len(text) <= _MEMO_MAX_CHARS
        hit = self._scan_cache.get(key) if memo else None
        if hit is None:
            n = normalize(text, g.steps)
            ids: set[int] = set()
            if g.matcher is not None:
                ids.update(g.pattern_ids[i] for i in g.matcher.Match(n.text) or ())
            kw = g.keywords.match_text(n.text) if g.keywords.size else {}
            ids.update(kw)
            hit = (n, frozenset(ids), kw)
            if memo:
                if len(self._scan_cache) >= _SCAN_CACHE_SIZE:
                    self._scan_cache.clear()
                self._scan_cache[key] = hit
        n, ids_found, kw_spans = hit
        st.normalized[(g.field, g.steps)] = n
        st.matched.update(ids_found)
        for cid, spans in kw_spans.items():
            st.spans.setdefault(cid, []).extend((g.index, s, e) for s, e in spans)

    def _recognized(self, st: _State, cond: RecognizerCond) -> list[PiiMatch]:
        key = (cond.field, cond.recognizer)
        found = st.recognized.get(key)
        if found is None:
            text = self._text(st, cond.field)
            if not text:
                found = []
            else:
                if len(text) > MAX_RECOGNIZER_CHARS:
                    text = text[:MAX_RECOGNIZER_CHARS]
                    if st.budget is not None:
                        st.budget.exhausted.add(cond.recognizer)
                ctx = TextContext(
                    regions=regions_for_wiki(st.change.wiki),
                    field=cond.field,
                    namespace=st.change.namespace,
                    performer=st.change.user,
                    budget=st.budget,
                )
                found = RECOGNIZERS[cond.recognizer].find(text, ctx)
            st.recognized[key] = found
        return [m for m in found if m.confidence >= cond.min_confidence]

    def _fact(self, st: _State, cond: FactCond) -> bool:
        key = (cond.fact, cond.field)
        v = st.facts.get(key)
        if v is None:
            text = self._text(st, cond.field) if cond.field is not None else None
            if cond.fact in CONTEXT_FACTS:
                v = CONTEXT_FACTS[cond.fact](st.change, st.ctx, text)
            elif cond.field is None:
                v = FACTS[cond.fact](st.change, None)
            else:
                v = FIELD_FACTS[cond.fact](st.change, text)
            st.facts[key] = v
        return v

    @staticmethod
    def _finding(st: _State, cond: FindingCond) -> bool:
        floor = Severity(cond.min_severity).rank if cond.min_severity else -1
        for f in st.ctx.findings:
            if cond.categories and str(f.category) not in cond.categories:
                continue
            if cond.rules and not any(fnmatch.fnmatchcase(f.rule, p) for p in cond.rules):
                continue
            if f.severity.rank >= floor:
                return True
        return False

    def _value(self, st: _State, cond: ValueCond) -> bool:
        c = st.change
        actual: object
        if cond.field == "size_delta":
            actual = c.size_delta
        elif cond.field == "performer_kind":
            actual = str(c.performer_kind)
        else:
            actual = getattr(c, cond.field)
        if actual is None:
            return False
        op, want = cond.op, cond.value
        if op == "equals":
            return actual == want
        if op == "in":
            return actual in want  # type: ignore[operator]
        if not isinstance(actual, int) or not isinstance(want, int):
            return False
        if op == "gt":
            return actual > want
        if op == "gte":
            return actual >= want
        if op == "lt":
            return actual < want
        return actual <= want

    def _holds(self, st: _State, cond: Condition) -> bool:
        if isinstance(cond, RegexCond | KeywordCond):
            return self._leaf_id(cond) in st.matched
        if isinstance(cond, RecognizerCond):
            return self._leaf_id(cond) in st.matched and bool(self._recognized(st, cond))
        if isinstance(cond, AllOf):
            return all(self._holds(st, c) for c in cond.conditions)
        if isinstance(cond, AnyOf):
            return any(self._holds(st, c) for c in cond.conditions)
        if isinstance(cond, Not):
            return not self._holds(st, cond.condition)
        if isinstance(cond, Near):
            return self._near(st, cond)
        if isinstance(cond, ValueCond):
            return self._value(st, cond)
        if isinstance(cond, ClassifierCond):
            return self._score(st, cond) >= cond.min_score
        if isinstance(cond, LanguageCond):
            return self._language(st, cond.field) in cond.languages
        if isinstance(cond, FindingCond):
            return self._finding(st, cond)
        return self._fact(st, cond)

    def _language(self, st: _State, field_name: str) -> str | None:
        """The language of a field's text (``detectors.language``), once per event."""
        try:
            return st.languages[field_name]
        except KeyError:
            pass
        change = st.change
        wiki = wiki_language(change.wiki, change.server_name)
        lang = st.languages[field_name] = text_language(self._text(st, field_name), wiki)
        return lang

    def _score(self, st: _State, cond: ClassifierCond) -> float:
        key = (cond.field, cond.classifier)
        score = st.scores.get(key)
        if score is None:
            text = self._text(st, cond.field)
            model = self.classifiers[cond.classifier]
            if text and len(text) > model.features.max_chars and st.budget is not None:
                st.budget.exhausted.add("classifier")
            # the model (weights, calibration) of the text's language: min_score means the
            # same in every language the model covers
            lang = self._language(st, cond.field) if text else None
            score = st.scores[key] = model.score(text, lang) if text else 0.0
        return score

    def _places(self, st: _State, cond: Condition) -> list[tuple[int, int]]:
        """Original-text offsets of a span-producing leaf's matches."""
        if isinstance(cond, RecognizerCond):
            return [(m.start, m.end) for m in self._recognized(st, cond)]
        cid = self._leaf_id(cond)  # type: ignore[arg-type]
        g = self._groups[self._cond_group[cid]]
        n = self._norm(st, g)
        if n is None:
            return []
        if isinstance(cond, RegexCond):
            found = [m.span() for m in self._regex_of[cid][0].finditer(n.text)]
        else:
            found = [(s, e) for _g, s, e in st.spans.get(cid, [])]
            if not found:  # literal keywords of scripts without spaces
                for word in cond.keywords:  # type: ignore[union-attr]
                    w = normalize(word, g.steps).text
                    at = n.text.find(w) if w else -1
                    if at >= 0:
                        found.append((at, at + len(w)))
        return [n.original_span(s, e) for s, e in found]

    def _near(self, st: _State, cond: Near) -> bool:
        if not all(self._holds(st, c) for c in cond.conditions):
            return False
        first, *others = (self._places(st, c) for c in cond.conditions)
        w = cond.within_chars
        for places in others:
            if not any(
                max(a_start, b_start) - min(a_end, b_end) <= w
                for a_start, a_end in first
                for b_start, b_end in places
            ):
                return False
        return True

    def _spans(self, st: _State, cond: Condition, rule: Rule) -> list[Span]:
        """Evidence from the positive leaves that hold (for ``near``, what the first
        condition found: the others are context, like the "you" next to an insult)."""
        if isinstance(cond, Near):
            return self._spans(st, cond.conditions[0], rule)
        if isinstance(cond, AllOf | AnyOf):
            return [
                s for c in cond.conditions if self._holds(st, c) for s in self._spans(st, c, rule)
            ]
        sensitive = rule.category in _SENSITIVE
        if isinstance(cond, ClassifierCond):
            return self._classifier_spans(st, cond, sensitive)
        if isinstance(cond, RecognizerCond):
            return [
                Span(cond.field, m.start, m.end, m.kind, m.redacted, m.confidence, True)
                for m in self._recognized(st, cond)
            ]
        if isinstance(cond, RegexCond | KeywordCond):
            if not self._holds(st, cond):
                return []
            raw = self._text(st, cond.field) or ""
            kind = "pattern" if isinstance(cond, RegexCond) else "term"
            out = []
            for start, end in self._places(st, cond)[:20]:
                piece = raw[start:end]
                redacted = f"[redacted, {end - start} chars]" if sensitive else _mask(piece)
                out.append(Span(cond.field, start, end, kind, redacted, 1.0, sensitive))
            return out
        return []

    def _classifier_spans(self, st: _State, cond: ClassifierCond, sensitive: bool) -> list[Span]:
        """The score (kind: the classifier's name) and the terms that weighed most."""
        if not self._holds(st, cond):
            return []
        text = self._text(st, cond.field) or ""
        score = self._score(st, cond)
        out = [Span(cond.field, 0, 0, cond.classifier, f"{score:.2f}", score, False)]
        # the words that weighed most, less the words of address ("you", "your", "u"): they
        # weigh a lot (an attack addresses someone) but tell on-call nothing ("term y*u")
        terms = self.classifiers[cond.classifier].explain(
            text, top=3 + _ADDRESS_WORDS_SKIPPED, language=self._language(st, cond.field)
        )
        shown = [t for t in terms if text[t.start : t.end].casefold() not in SECOND_PERSON]
        for term in shown[:3]:
            piece = text[term.start : term.end]
            redacted = f"[redacted, {len(piece)} chars]" if sensitive else _mask(piece)
            out.append(Span(cond.field, term.start, term.end, "term", redacted, 1.0, sensitive))
        return out

    def clear_memo(self) -> None:
        """Forget memoised scans (benchmarks: measure cold texts, not the memo)."""
        self._scan_cache.clear()
        self._scope_cache.clear()

    def evaluate(
        self,
        change: RecentChange,
        ctx: DetectionContext,
        *,
        ignore_scope: bool = False,
        budget: Budget | None = None,
    ) -> list[Finding]:
        """Findings of the ordinary (non-pattern) rules; what was cut short (a text too
        long, a recognizer out of candidates) is added to ``budget``."""
        classes = self._classes if ignore_scope else self._in_scope(change, self._classes)
        return self._run(change, ctx, classes, budget)

    def evaluate_patterns(self, change: RecentChange, ctx: DetectionContext) -> list[Finding]:
        """Pattern rules whose conditions this event meets (before their windows): ``ctx``
        carries the other rules' findings and the runner's page memory."""
        if not self._pattern_classes:
            return []
        return self._run(change, ctx, self._in_scope(change, self._pattern_classes))

    def _in_scope(self, change: RecentChange, classes: list[_ScopeClass]) -> list[_ScopeClass]:
        """The scope classes that accept the change, memoised by what scopes look at."""
        sig = (id(classes), change.type, change.performer_kind, change.bot, change.namespace,
               change.wiki, change.log_type, change.log_action)  # fmt: skip
        cached = self._scope_cache.get(sig)
        if cached is None:
            cached = [c for c in classes if c.scope.accepts(change)]
            if len(self._scope_cache) >= _SCAN_CACHE_SIZE:
                self._scope_cache.clear()
            self._scope_cache[sig] = cached
        return cached

    def _run(
        self,
        change: RecentChange,
        ctx: DetectionContext,
        classes: list[_ScopeClass],
        budget: Budget | None = None,
    ) -> list[Finding]:
        if not classes:
            return []
        st = _State(change, ctx, budget)
        needed: set[int] = set()
        for cls in classes:
            needed |= cls.groups
        for gi in sorted(needed):
            self._scan_group(st, self._groups[gi])
        findings: list[Finding] = []
        for cls in classes:
            seen: set[str] = set()
            candidates = list(cls.always if st.ctx.findings else cls.always_unless_findings)
            for cid in st.matched:
                candidates.extend(cls.by_trigger.get(cid, ()))
            for comp in candidates:
                rule = comp.rule
                if rule.id in seen:
                    continue
                seen.add(rule.id)
                if self._holds(st, rule.match):
                    spans = tuple(dict.fromkeys(self._spans(st, rule.match, rule)))
                    score, reason = None, rule.title
                    scored = [
                        (self._score(st, c), c.classifier)
                        for c in comp.classifier_conds
                        if self._holds(st, c)
                    ]
                    if scored:
                        score, name = max(scored)
                        reason = f"{rule.title} ({name} {score:.2f})"
                    findings.append(
                        Finding(rule.id, rule.category, rule.severity, reason, spans, None, score)
                    )
        if len(findings) > 1:
            fired = [f.rule for f in findings]
            findings = [
                f
                for f in findings
                if not any(
                    fnmatch.fnmatchcase(other, pattern)
                    for pattern in self._by_id[f.rule].rule.suppressed_by
                    for other in fired
                    if other != f.rule
                )
            ]
        return findings

    def needs_content(self, change: RecentChange) -> bool:
        """Could the text an edit added or removed change any rule's result on this event?

        A rule in scope needs it unless every condition on added or removed text sits in a
        branch the metadata already decides: ``all`` with a condition that is certainly
        false (``not: {field: namespace, in: [0, ...]}`` on an article edit), or ``any``
        with one that is certainly true. Only edits and page creations have such text.
        """
        if change.type not in ("edit", "new"):
            return False
        return any(
            c.reads_content
            and cls.scope.accepts(change)
            and self._content_matters(c.rule.match, change)
            for cls in (*self._classes, *self._pattern_classes)
            for c in cls.rules
        )

    def _content_matters(self, cond: Condition, change: RecentChange) -> bool:
        if isinstance(cond, AllOf):
            if any(self._meta(c, change) is False for c in cond.conditions):
                return False
            return any(self._content_matters(c, change) for c in cond.conditions)
        if isinstance(cond, AnyOf):
            if any(self._meta(c, change) is True for c in cond.conditions):
                return False
            return any(self._content_matters(c, change) for c in cond.conditions)
        if isinstance(cond, Not):
            return self._content_matters(cond.condition, change)
        if isinstance(cond, Near):
            return any(self._content_matters(c, change) for c in cond.conditions)
        return getattr(cond, "field", None) in ("added_text", "removed_text")

    def _meta(self, cond: Condition, change: RecentChange) -> bool | None:
        """The condition's value from metadata alone; None when it depends on text."""
        if isinstance(cond, ValueCond):
            return self._value(_State(change, EMPTY_CONTEXT), cond)
        if isinstance(cond, FactCond) and cond.fact in FACTS:
            return FACTS[cond.fact](change, None)
        if isinstance(cond, Not):
            inner = self._meta(cond.condition, change)
            return None if inner is None else not inner
        if isinstance(cond, AllOf):
            values = [self._meta(c, change) for c in cond.conditions]
            if False in values:
                return False
            return True if all(v is True for v in values) else None
        if isinstance(cond, AnyOf):
            values = [self._meta(c, change) for c in cond.conditions]
            if True in values:
                return True
            return False if all(v is False for v in values) else None
        return None

    def languages(self) -> frozenset[str]:
        """The languages the enabled rules name in language conditions: those rules judge
        text in them (their own examples validate them)."""
        return frozenset(
            code
            for r in self.rules
            if r.enabled
            for c in leaf_conditions(r.match)
            if isinstance(c, LanguageCond)
            for code in c.languages
        )

    def rule(self, rule_id: str) -> Rule:
        return self._by_id[rule_id].rule

    def rule_ids(self) -> Sequence[str]:
        return [r.id for r in self.rules]
