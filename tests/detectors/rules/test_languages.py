"""The shipped language packs next to the English one: one finding per act, not two."""

from __future__ import annotations

from detectors.rules.examples import example_change
from detectors.rules.model import Example
from sinks.metrics import Metrics
from streams.app import build_detection
from streams.settings import Settings


def _rules_fired(example: Example) -> set[str]:
    detection = build_detection(Settings(), Metrics())
    change, ctx = example_change(example)
    return {f.rule for f in detection.detect(change, ctx)}


def test_a_german_threat_is_one_threat() -> None:
    """The English lists also hold a few German, French and Spanish phrases; on dewiki a
    German threat fired the German pack's threat, the English threat and the English
    self-harm rule ("bring dich um" inside "ich bring dich um"): three critical pages."""
    fired = _rules_fired(
        Example(
            wiki="dewiki",
            title="Benutzer Diskussion:Jemand",
            namespace=3,
            added_text="Wenn du das noch mal machst, ich bring dich um",
        )
    )
    assert fired == {"harassment.de.threat"}


def test_an_insult_in_a_language_with_a_pack_is_not_also_incivility() -> None:
    fired = _rules_fired(
        Example(
            wiki="frwiki",
            title="Discussion utilisateur:Quelqu'un",
            namespace=3,
            added_text="Tu es vraiment un connard, arrête de modifier cette page",
        )
    )
    assert "harassment.fr.targeted-insult" in fired or "harassment.personal-attack" in fired
    assert not fired & {
        "harassment.incivility",
        "harassment.profanity",
        "harassment.targeted-insult",
    }
