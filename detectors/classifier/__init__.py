"""Trained text classifiers for rule conditions (``classifier: toxicity``).

``load_model`` reads a model directory; ``shipped_models`` lists the models that ship with
rcwatch (``config/models``). Scoring is pure and needs nothing beyond the standard library;
training (``detectors.classifier.train``) needs the ``train`` extra (scikit-learn).
"""

from __future__ import annotations

from pathlib import Path

from detectors.classifier.features import FeatureConfig
from detectors.classifier.model import ModelError, TermWeight, TextClassifier, load_model
from detectors.shipped import shipped_config_dir

__all__ = [
    "FeatureConfig",
    "ModelError",
    "TermWeight",
    "TextClassifier",
    "load_model",
    "shipped_model_dirs",
]


def shipped_model_dirs() -> dict[str, Path]:
    """Name -> directory of every model that ships with rcwatch."""
    root = shipped_config_dir() / "models"
    if not root.is_dir():
        return {}
    return {p.name: p for p in sorted(root.iterdir()) if (p / "model.json").is_file()}
