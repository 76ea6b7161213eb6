"""A linear text classifier over word and character n-grams, stored as plain files.

A model is a directory:

- ``model.json``: the format and its version, the model's name and version, the feature
  configuration (``detectors.classifier.features``), the intercept, the calibration that
  turns the linear score into a probability, the thresholds chosen on validation folds of
  the training data, and the validation figures: all of these for the model's default
  language (``default_language``, English for the shipped model), and under
  ``languages`` the same again for every other language the model covers;
- ``weights.tsv.gz``: one ``feature<TAB>weight`` line per feature (``w:``, ``b:`` or
  ``c:`` feature names), sorted, with its SHA-256 in ``model.json``; a language with
  weights of its own has its own file (``weights.de.tsv.gz``), a language without shares
  the default weights and has only its own calibration and thresholds;
- ``MANIFEST.json``: where the training data came from (files, checksums, rows, labels),
  written by ``rcwatch model train``; ``EVALUATION.md``: figures on held-out sets.

``score(text, language)`` scores with that language's weights and calibration; a language
the model does not cover (``covers``) is scored as the default language is, which is no
judgement at all for most of them: callers say so rather than call the text clean.
Language codes are matched as given, then by their primary subtag (``pt-br`` -> ``pt``).

No pickle and no third-party code at run time: loading reads text, scoring is dictionary
lookups. ``score`` is pure and thread-safe (its caches only change the cost).
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import pairwise, repeat
from pathlib import Path
from typing import Any

import orjson

from detectors.classifier.features import FeatureConfig, token_spans, tokens

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "ModelError",
    "TermWeight",
    "TextClassifier",
    "load_model",
    "save_model",
]

FORMAT = "rcwatch-text-classifier"
FORMAT_VERSION = 2  # 2: per-language weights, calibrations and thresholds (``languages``)
READABLE_VERSIONS = (1, 2)
_LANGUAGE = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{1,8})*")
_TOKEN_CACHE_MAX = 200_000
_ZEROS = repeat(0.0)  # map(dict.get, keys, _ZEROS): a default for every key


class ModelError(Exception):
    """A model directory that cannot be used; the message names the file."""


@dataclass(frozen=True, slots=True)
class TermWeight:
    start: int  # offsets into the scored text
    end: int
    weight: float  # the token's share of the linear score (positive: towards the class)


@dataclass
class TextClassifier:
    name: str
    version: str
    features: FeatureConfig
    intercept: float
    weights: Mapping[str, float]  # feature name -> weight
    calibration: tuple[float, float] = (1.0, 0.0)  # probability = sigmoid(a * z + b)
    thresholds: Mapping[str, float] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)  # the rest of model.json
    # every other language the model covers: a model of its own, or this one's weights
    # with its own calibration and thresholds (``recalibrated``); validation figures in
    # each one's ``meta["validation"]``
    languages: Mapping[str, TextClassifier] = field(default_factory=dict)
    default_language: str = "en"

    def __post_init__(self) -> None:
        unigrams: dict[str, float] = {}
        bigrams: dict[tuple[str, str], float] = {}
        chars: dict[str, float] = {}
        for name, w in self.weights.items():
            kind = name[:2]
            if kind == "w:":
                unigrams[name[2:]] = w
            elif kind == "b:":
                a, _, b = name[2:].partition(" ")
                bigrams[(a, b)] = w
            elif kind == "c:":
                chars[name[2:]] = w  # by the gram itself: no prefix to add per lookup
            else:
                raise ModelError(f"unknown feature kind in {name!r}")
        self._unigrams = unigrams
        self._bigrams = bigrams
        self._chars = chars
        # token -> (its word weight, the sum of its character n-grams' weights, how many)
        self._tokens: dict[str, tuple[float, float, int]] = {}

    def recalibrated(
        self,
        calibration: tuple[float, float],
        thresholds: Mapping[str, float],
        meta: Mapping[str, Any],
    ) -> TextClassifier:
        """This model's weights (shared, not copied) with another calibration: what a
        language without weights of its own gets."""
        other = copy.copy(self)
        other.calibration = calibration
        other.thresholds = dict(thresholds)
        other.meta = dict(meta)
        other.languages = {}
        return other

    # -- languages ----------------------------------------------------------------------

    def for_language(self, language: str | None) -> TextClassifier:
        """The model that scores texts in ``language``: its own when the model covers it,
        the default language's otherwise (and for ``None``)."""
        if not language or not self.languages:
            return self
        found = self.languages.get(language)
        if found is None:
            key = language.strip().lower().replace("_", "-")
            found = self.languages.get(key) or self.languages.get(key.split("-", 1)[0])
        return found if found is not None else self

    def covers(self, language: str | None) -> bool:
        """Whether the model has validated figures for ``language`` (``None``: the
        default language)."""
        if not language:
            return True
        key = language.strip().lower().replace("_", "-")
        return key.split("-", 1)[0] == self.default_language or self.for_language(key) is not self

    @property
    def covered_languages(self) -> list[str]:
        """The default language first, then every other language covered."""
        return [self.default_language, *sorted(self.languages)]

    # -- scoring ------------------------------------------------------------------------

    def _token(self, token: str) -> tuple[float, float, int]:
        """A token's word weight, the sum of its distinct character n-grams' weights and
        how many there are (``features.char_grams``, computed here without the prefix),
        cached."""
        entry = self._tokens.get(token)
        if entry is None:
            padded = f" {token} "
            n = len(padded)
            grams = {
                padded[i : i + k]
                for k in range(self.features.min_n, self.features.max_n + 1)
                for i in range(n - k + 1)
            }
            entry = (
                self._unigrams.get(token, 0.0),
                math.fsum(map(self._chars.get, grams, _ZEROS)),
                len(grams),
            )
            if len(self._tokens) >= _TOKEN_CACHE_MAX:
                self._tokens.clear()  # bounded; only the cost changes
            self._tokens[token] = entry
        return entry

    def linear(self, text: str) -> float:
        """The linear score ``z`` (the log-odds before calibration)."""
        return self._linear(tokens(text, self.features))

    def _linear(self, toks: list[str]) -> float:
        if not toks:
            return self.intercept
        # distinct tokens and pairs in the order they first occur: sums in an order that
        # depends on the text only, not on how a set of strings iterates in this process
        # (which changes with its hash seed), so every process gives the same score
        distinct = dict.fromkeys(toks)
        entries = list(map(self._tokens.get, distinct))  # loops in C: the cost per token
        if None in entries:
            token = self._token
            entries = [e or token(t) for t, e in zip(distinct, entries, strict=True)]
        words, chars, counts = zip(*entries, strict=True)
        word_sum = sum(words)
        n_words = len(entries)
        if self.features.word_bigrams and len(toks) > 1:
            pairs = dict.fromkeys(pairwise(toks))
            n_words += len(pairs)
            word_sum += sum(map(self._bigrams.get, pairs, repeat(0.0)))
        char_sum: float = sum(chars)
        n_chars: int = sum(counts)
        z: float = self.intercept + word_sum / math.sqrt(n_words)
        return z + char_sum / math.sqrt(n_chars)

    def probability(self, z: float) -> float:
        a, b = self.calibration
        x = a * z + b
        if x >= 0:
            return 1.0 / (1.0 + math.exp(-x))
        e = math.exp(x)
        return e / (1.0 + e)

    def score(self, text: str, language: str | None = None) -> float:
        """The calibrated probability that ``text`` belongs to the class (0..1), with the
        weights and calibration of ``language`` (the default language's for ``None`` or a
        language the model does not cover)."""
        model = self.for_language(language) if language else self
        return model.probability(model.linear(text))

    def explain(self, text: str, top: int = 3, language: str | None = None) -> list[TermWeight]:
        """The tokens that pushed the score up most, strongest first: each token's word
        weight, half of each pair it is in, and its character n-grams', scaled as in the
        score (with the weights of ``language``, as ``score``). What an alert shows as the
        *why* (masked)."""
        if language:
            model = self.for_language(language)
            if model is not self:
                return model.explain(text, top)
        spans = token_spans(text, self.features)
        toks = [w for _s, _e, w in spans]
        if not toks:
            return []
        distinct = set(toks)
        pairs = set(pairwise(toks)) if self.features.word_bigrams else set()
        entries = {t: self._token(t) for t in distinct}
        word_norm = 1 / math.sqrt(len(distinct) + len(pairs))
        char_norm = 1 / math.sqrt(sum(e[2] for e in entries.values()) or 1)
        per = {t: e[0] * word_norm + e[1] * char_norm for t, e in entries.items()}
        for a, b in pairs:
            half = self._bigrams.get((a, b), 0.0) * word_norm / 2
            per[a] += half
            per[b] += half
        first: dict[str, tuple[int, int]] = {}
        for start, end, w in spans:
            first.setdefault(w, (start, end))
        # ties broken by the token: the same order in every process, whatever its hash seed
        ranked = sorted((w for w in per if per[w] > 0), key=lambda w: (-per[w], w))[:top]
        return [TermWeight(*first[w], per[w]) for w in ranked]


# -- files -------------------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror or exc}") from None
    except orjson.JSONDecodeError as exc:
        raise ModelError(f"{path} is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path} is not a JSON object")
    return data


def load_model(directory: str | Path) -> TextClassifier:
    """The model in ``directory``; ``ModelError`` naming the file for anything wrong (a
    format this version cannot read, a weights file that does not match its checksum)."""
    directory = Path(directory)
    path = directory / "model.json"
    meta = _read_json(path)
    if meta.get("format") != FORMAT:
        raise ModelError(f"{path}: not an rcwatch text classifier (format {FORMAT!r})")
    if meta.get("format_version") not in READABLE_VERSIONS:
        raise ModelError(
            f"{path}: format version {meta.get('format_version')!r}; this rcwatch reads "
            f"versions {', '.join(map(str, READABLE_VERSIONS))} (retrain with `rcwatch model "
            "train`)"
        )
    name, version = meta.get("name"), meta.get("version")
    if not isinstance(name, str) or not name or not isinstance(version, str):
        raise ModelError(f"{path}: name and version must be strings")
    try:
        features = FeatureConfig.from_json(meta.get("features") or {})
    except ValueError as exc:
        raise ModelError(f"{path}: {exc}") from None
    default_language = meta.get("default_language", "en")
    if not isinstance(default_language, str) or not _LANGUAGE.fullmatch(default_language):
        raise ModelError(f"{path}: default_language must be a language code such as 'en'")
    model = _part(
        directory, path, "", meta, name=name, version=version, features=features, default=None
    )
    model.default_language = default_language
    raw = meta.get("languages") or {}
    if not isinstance(raw, dict):
        raise ModelError(f"{path}: languages must be an object (language code -> model)")
    languages: dict[str, TextClassifier] = {}
    for code, entry in sorted(raw.items()):
        if not _LANGUAGE.fullmatch(code) or code == default_language:
            raise ModelError(
                f"{path}: languages.{code}: not a lower-case language code other than the "
                f"default language {default_language!r}"
            )
        if not isinstance(entry, dict):
            raise ModelError(f"{path}: languages.{code} must be an object")
        languages[code] = _part(
            directory,
            path,
            f"languages.{code}.",
            entry,
            name=name,
            version=version,
            features=features,
            default=model,
        )
    model.languages = languages
    return model


def _part(
    directory: Path,
    path: Path,
    where: str,
    data: dict[str, Any],
    *,
    name: str,
    version: str,
    features: FeatureConfig,
    default: TextClassifier | None,
) -> TextClassifier:
    """The default model (``default`` None), or one language's: with weights of its own
    when ``data`` names a weights file, the default model's otherwise."""

    def number(key: str, obj: Mapping[str, Any]) -> float:
        value = obj.get(key)
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not math.isfinite(value)
        ):
            raise ModelError(f"{path}: {where}{key} must be a finite number")
        return float(value)

    cal = data.get("calibration") or {"a": 1.0, "b": 0.0}
    if not isinstance(cal, dict):
        raise ModelError(f"{path}: {where}calibration must be an object")
    calibration = (number("a", cal), number("b", cal))
    raw_thresholds = data.get("thresholds") or {}
    if not isinstance(raw_thresholds, dict):
        raise ModelError(f"{path}: {where}thresholds must be an object")
    thresholds = {str(k): number(k, raw_thresholds) for k in raw_thresholds}
    if default is not None and "weights_file" not in data:
        return default.recalibrated(calibration, thresholds, data)
    intercept = number("intercept", data)
    weights_name = data.get("weights_file", "weights.tsv.gz")
    if not isinstance(weights_name, str) or "/" in weights_name or weights_name.startswith("."):
        raise ModelError(f"{path}: {where}weights_file must be a file name in the model directory")
    weights_path = directory / weights_name
    try:
        blob = weights_path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read {weights_path}: {exc.strerror or exc}") from None
    digest = data.get("weights_sha256")
    if digest is not None and hashlib.sha256(blob).hexdigest() != digest:
        raise ModelError(f"{weights_path} does not match {where}weights_sha256 in {path}")
    weights = _parse_weights(blob, weights_path)
    try:
        return TextClassifier(
            name, version, features, intercept, weights, calibration, thresholds, data
        )
    except ModelError as exc:
        raise ModelError(f"{weights_path}: {exc}") from None


def _parse_weights(blob: bytes, path: Path) -> dict[str, float]:
    try:
        text = gzip.decompress(blob).decode("utf-8") if blob[:2] == b"\x1f\x8b" else blob.decode()
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: cannot be read ({exc})") from None
    weights: dict[str, float] = {}
    for n, line in enumerate(text.split("\n"), 1):
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.rpartition("\t")
        try:
            w = float(value)
        except ValueError:
            w = math.nan
        if not sep or not name or not math.isfinite(w):
            raise ModelError(f"{path}:{n}: expected 'feature<TAB>weight'")
        weights[name] = w
    return weights


def _write_weights(weights: Mapping[str, float], path: Path) -> str:
    lines = [f"# {FORMAT} weights, format version {FORMAT_VERSION}: feature<TAB>weight"]
    lines += [f"{k}\t{v:.6g}" for k, v in sorted(weights.items()) if v != 0.0]
    blob = gzip.compress(("\n".join(lines) + "\n").encode(), compresslevel=9, mtime=0)
    path.write_bytes(blob)
    return hashlib.sha256(blob).hexdigest()


def _kept(weights: Mapping[str, float]) -> int:
    return sum(1 for v in weights.values() if v != 0.0)


_RESERVED = (
    "calibration", "thresholds", "intercept", "weights_file", "weights_sha256", "features_kept",
)  # fmt: skip


def save_model(model: TextClassifier, directory: str | Path, extra: Mapping[str, Any]) -> Path:
    """Write ``model.json`` and the weights files (deterministic bytes for the same model:
    sorted features, fixed precision, no timestamp in the gzip header). Each language's
    ``meta`` (its validation figures) is written under ``languages``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    digest = _write_weights(model.weights, directory / "weights.tsv.gz")
    languages: dict[str, Any] = {}
    for code, sub in sorted(model.languages.items()):
        if not _LANGUAGE.fullmatch(code) or code == model.default_language:
            raise ModelError(f"{code!r} is not a language code other than the default language")
        entry: dict[str, Any] = {k: v for k, v in sub.meta.items() if k not in _RESERVED}
        entry["calibration"] = {
            "a": round(sub.calibration[0], 8),
            "b": round(sub.calibration[1], 8),
        }
        entry["thresholds"] = {k: round(v, 4) for k, v in sub.thresholds.items()}
        if sub.weights is not model.weights:
            name = f"weights.{code}.tsv.gz"
            entry["weights_file"] = name
            entry["weights_sha256"] = _write_weights(sub.weights, directory / name)
            entry["intercept"] = round(sub.intercept, 8)
            entry["features_kept"] = _kept(sub.weights)
        languages[code] = entry
    written = {
        "weights.tsv.gz",
        *(e["weights_file"] for e in languages.values() if "weights_file" in e),
    }
    for stale in directory.glob("weights.*.tsv.gz"):  # a language the model no longer has
        if stale.name not in written:
            stale.unlink()
    meta: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": model.name,
        "version": model.version,
        "features": model.features.to_json(),
        "intercept": round(model.intercept, 8),
        "calibration": {"a": round(model.calibration[0], 8), "b": round(model.calibration[1], 8)},
        "thresholds": {k: round(v, 4) for k, v in model.thresholds.items()},
        "weights_file": "weights.tsv.gz",
        "weights_sha256": digest,
        "features_kept": _kept(model.weights),
        "default_language": model.default_language,
        "languages": languages,
        **extra,
    }
    path = directory / "model.json"
    path.write_bytes(orjson.dumps(meta, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    return path
