"""Terminal injection: what an event holds is shown, never acted on, in every readable
output (the stdout sink, command tables, logs).

Issue 9.6 reproduced: a title with escape sequences (OSC, clear screen) was printed raw, and
a user name with a newline forged a ``[CRITICAL] ...`` line.
"""

from __future__ import annotations

import io
import logging

import orjson

from detectors.event import RawEvent
from sinks.metrics import Metrics
from sinks.stdout import StdoutSink
from streams.app import build_detection
from streams.logs import _TextFormatter
from streams.pipeline.stages import Pipeline
from streams.settings import Settings
from tests import scenarios as sc

HOSTILE_TITLE = "Talk:Nice page\x1b]0;owned\x07\x1b[2J\x1b[1;1H"
FORGED_USER = "Someone\n[CRITICAL] privacy.fake enwiki User:Admin by Admin: leaked\r"


async def test_the_stdout_sink_prints_one_inert_line_per_alert() -> None:
    data, _ = sc.event(title=HOSTILE_TITLE, user=FORGED_USER, summary="mail jane.roe@example.org")
    settings = Settings()
    metrics = Metrics()
    pipeline = Pipeline(settings.scope.build(), build_detection(settings, metrics), metrics)
    alerts = pipeline.process([RawEvent(None, data, 0)]).alerts
    assert alerts, "the event raised an alert to print"
    out = io.StringIO()
    sink = StdoutSink("stdout", stream=out)
    await sink.start()
    await sink.send(alerts)
    printed = out.getvalue()
    assert printed.count("\n") == len(alerts), "one line per alert, none forged"
    assert "\x1b" not in printed and "\r" not in printed and "\x07" not in printed
    assert "\\x1b]0;owned" in printed, "the title is shown, escaped"
    assert not any(line.startswith("[CRITICAL]") for line in printed.splitlines())
    # the JSON form stays exact (it is for machines; JSON escapes controls itself)
    json_out = io.StringIO()
    json_sink = StdoutSink("stdout", stream=json_out, fmt="json")
    await json_sink.start()
    await json_sink.send(alerts)
    assert orjson.loads(json_out.getvalue().splitlines()[0])["title"] == HOSTILE_TITLE


def test_log_lines_stay_one_line_whatever_their_fields_hold() -> None:
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "msg\nforged", None, None)
    record.fields = {"title": HOSTILE_TITLE, "user": FORGED_USER}
    line = _TextFormatter().format(record)
    assert "\n" not in line and "\x1b" not in line and "\r" not in line


def test_bidirectional_controls_are_shown_not_obeyed() -> None:
    """Defect: U+202E (RIGHT-TO-LEFT OVERRIDE) and the other bidi controls passed through,
    so a title could reorder the rest of a stdout, log or table line in a bidi-aware viewer
    ("Trojan Source") and show another rule, severity or link."""
    from sinks.alert import printable

    controls = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
    shown = printable(f"Talk:Page{controls}end")
    assert not any(c in shown for c in controls)
    assert shown == "Talk:Page" + "".join(f"\\u{ord(c):04x}" for c in controls) + "end"
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "msg", None, None)
    record.fields = {"title": "Talk:\u202eevil"}
    assert "\u202e" not in _TextFormatter().format(record)
    # right-to-left text itself is not a control: shown as it is
    assert printable("שיחה:עמוד") == "שיחה:עמוד"


def test_invisible_characters_are_shown_so_no_name_passes_for_another() -> None:
    """Defect: zero-width and other invisible format characters passed ``printable`` as
    they were, so "Jane\\u200b (WMF)" (a verdict's judge, a user, a title) looked exactly
    like "Jane (WMF)"."""
    import unicodedata

    from sinks.alert import printable

    assert printable("Jane\u200b (WMF)") == "Jane\\u200b (WMF)"
    assert printable("Ja\u00adne\ufeff\u2060") == "Ja\\xadne\\ufeff\\u2060"
    assert printable("x\U000e0041") == "x\\U000e0041"  # a tag character
    # every control, separator and invisible format character, whichever Unicode version
    visible_signs = {0x0600, 0x0601, 0x0602, 0x0603, 0x0604, 0x0605, 0x06DD, 0x070F, 0x0890,
                     0x0891, 0x08E2, 0x110BD, 0x110CD}  # fmt: skip
    invisible = [
        chr(c) for c in range(0x110000)
        if unicodedata.category(chr(c)) in ("Cc", "Cf", "Zl", "Zp") and c not in visible_signs
        and not 0x13430 <= c <= 0x1343F  # Egyptian hieroglyph format controls: join glyphs
    ]  # fmt: skip
    invisible += ["\u115f", "\u1160", "\u3164", "\uffa0", "\u034f", "\u180b", "\u17b4"]
    shown = [c for c in invisible if printable(c) == c]
    assert not shown, [f"U+{ord(c):04X}" for c in shown]
    # letters and emoji stay as they are (a variation selector included)
    assert printable("Zoë, 東京, ❤️") == "Zoë, 東京, ❤️"
