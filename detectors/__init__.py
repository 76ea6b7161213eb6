"""Pure detection: ``(change, context) -> findings``. No network, no clock, no globals."""

from detectors.base import (
    Category,
    DetectionContext,
    Detector,
    Finding,
    Severity,
    Span,
    field_text,
)

__all__ = [
    "Category",
    "DetectionContext",
    "Detector",
    "Finding",
    "Severity",
    "Span",
    "field_text",
]
