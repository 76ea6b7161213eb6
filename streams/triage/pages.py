"""The triage page's HTML: plain, server-side, no script.

Every value that came from an event or the store goes through ``_e`` (control characters
and bidi overrides escaped as in every printed line, then HTML-escaped). Links are only
ever the alert's own ``diff_url``/``page_url``, and only when they are https.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from sinks.alert import printable
from sinks.store import VERDICTS, precision

__all__ = ["CSS", "RuleText", "alert_page", "alerts_page", "login_page", "rules_page"]

SEVERITIES = ("low", "medium", "high", "critical")
CATEGORIES = ("privacy", "doxxing", "harassment")


@dataclass(frozen=True)
class RuleText:
    """What the page says about a rule (from the rule files the monitor loaded)."""

    title: str
    category: str
    severity: str
    enabled: bool
    description: str = ""
    false_positives: str = ""


CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1b1b1b; background: #fafafa; }
header { background: #202122; color: #fff; padding: 8px 16px; display: flex; gap: 16px; }
header a { color: #fff; } header b { margin-right: 16px; }
main { padding: 12px 16px; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 6px; text-align: left; vertical-align: top; }
th { background: #eaecf0; }
form.filters { margin-bottom: 12px; display: flex; gap: 8px; flex-wrap: wrap; align-items: end; }
form.filters label { display: flex; flex-direction: column; font-size: 12px; }
.sev-critical, .sev-high { color: #b32424; font-weight: bold; } .sev-medium { color: #ac6600; }
.v-true { color: #14866d; } .v-false { color: #b32424; } .v-unsure { color: #72777d; }
.verdicts button { font-size: 15px; padding: 6px 14px; margin-right: 6px; }
dl { display: grid; grid-template-columns: max-content auto; gap: 4px 12px; }
dt { font-weight: bold; } dd { margin: 0; white-space: pre-wrap; }
.note { color: #54595d; } .chart { vertical-align: middle; }
header .who { margin-left: auto; } header form { margin: 0; }
.flash { background: #d5fdf4; padding: 6px 10px; border: 1px solid #14866d; }
"""


def _e(value: object, limit: int | None = 300) -> str:
    return html.escape(printable("" if value is None else str(value), limit))


def _text(value: object, limit: int = 2000) -> str:
    """A longer text (a rule's description): its lines kept, everything else as ``_e``."""
    lines = ("" if value is None else str(value)).strip()[:limit].split("\n")
    return "\n".join(_e(line, None) for line in lines)


def _link(url: object, text: str) -> str:
    if not isinstance(url, str) or urlsplit(url).scheme != "https":
        return ""
    return f'<a href="{_e(url, 2000)}" rel="noopener noreferrer" target="_blank">{_e(text)}</a>'


def _page(title: str, body: str, *, user: str | None = None) -> str:
    nav = ""
    if user is not None:
        nav = (
            '<a href="/">Alerts</a><a href="/rules">Rules</a>'
            f'<span class="who">{_e(user, 64)}</span>'
            '<form method="post" action="/logout"><button>Sign out</button></form>'
        )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)} · rcwatch triage</title>"
        '<link rel="stylesheet" href="/static/triage.css"></head><body>'
        f"<header><b>rcwatch triage</b>{nav}</header><main>{body}</main></body></html>"
    )


def _confidence(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, float | int) else _e(value, 20)


def _verdict(v: object) -> str:
    if v not in VERDICTS:
        return '<span class="note">&ndash;</span>'
    return f'<span class="v-{v}">{v}</span>'


def _options(values: Sequence[str], chosen: str | None, blank: str) -> str:
    out = [f'<option value="">{_e(blank)}</option>']
    for v in values:
        sel = " selected" if v == chosen else ""
        out.append(f'<option value="{_e(v)}"{sel}>{_e(v)}</option>')
    return "".join(out)


_SIGN_IN_REFUSED = {
    "token": "That token is not right.",
    "link": "That sign-in link has been used, or has expired: it works once, for ten "
    "minutes. Sign in with the token.",
    "token_in_address": "The token never goes in an address (browser history and proxies "
    "keep addresses). Type it here.",
}


def login_page(*, failed: str | None, next_path: str) -> str:
    """The sign-in form; ``failed``: why the last try was refused (``token``, ``link``,
    ``token_in_address``), or None."""
    msg = f'<p class="v-false">{_SIGN_IN_REFUSED[failed]}</p>' if failed else ""
    return _page(
        "Sign in",
        f"<h1>Sign in</h1>{msg}"
        '<form method="post" action="/login">'
        f'<input type="hidden" name="next" value="{_e(next_path, 500)}">'
        '<label>Token <input type="password" name="token" autofocus autocomplete="off"></label> '
        "<button>Sign in</button></form>"
        '<p class="note">The token is in the file or environment variable '
        "<code>triage.token</code> names.</p>",
    )


def alerts_page(
    rows: Sequence[Mapping[str, Any]],
    filters: Mapping[str, str | None],
    rule_ids: Sequence[str],
    *,
    user: str,
    where: str,
) -> str:
    form = (
        '<form class="filters" method="get" action="/">'
        f'<label>Rule<select name="rule">{_options(rule_ids, filters.get("rule"), "any")}'
        "</select></label>"
        f'<label>Category<select name="category">'
        f"{_options(CATEGORIES, filters.get('category'), 'any')}</select></label>"
        f'<label>Severity at least<select name="min_severity">'
        f"{_options(SEVERITIES, filters.get('min_severity'), 'any')}</select></label>"
        f'<label>Wiki<input name="wiki" size="10" value="{_e(filters.get("wiki") or "", 64)}">'
        "</label>"
        f'<label>Verdict<select name="verdict">'
        f"{_options(('none', *VERDICTS), filters.get('verdict'), 'any')}</select></label>"
        "<button>Show</button></form>"
    )
    lines = []
    for a in rows:
        sev = str(a.get("severity"))
        count = int(a.get("count") or 1)
        repeat = f" &times;{count}" if count > 1 else ""
        lines.append(
            "<tr>"
            f"<td>{_e(a.get('event_time'))}</td>"
            f'<td class="sev-{_e(sev)}">{_e(sev)}</td>'
            f'<td><a href="/alerts/{_e(a["id"])}">{_e(a.get("rule"))}</a>{repeat}</td>'
            f"<td>{_e(a.get('wiki'))}</td><td>{_e(a.get('title'), 120)}</td>"
            f"<td>{_e(a.get('reason'), 200)}</td>"
            f"<td>{_verdict(a.get('verdict'))}</td>"
            f"<td>{_link(a.get('diff_url') or a.get('page_url'), 'diff')}</td></tr>"
        )
    table = (
        "<table><thead><tr><th>Event time</th><th>Severity</th><th>Rule</th><th>Wiki</th>"
        "<th>Page</th><th>Why</th><th>Verdict</th><th></th></tr></thead><tbody>"
        + ("".join(lines) or '<tr><td colspan="8">No alerts match.</td></tr>')
        + "</tbody></table>"
    )
    return _page(
        "Alerts",
        f'<h1>Alerts</h1><p class="note">{len(rows)} shown, newest first, from '
        f"{_e(where)}.</p>{form}{table}",
        user=user,
    )


def alert_page(
    a: Mapping[str, Any],
    rule: RuleText | None,
    *,
    csrf: str,
    user: str,
    flash: str | None = None,
) -> str:
    sev = str(a.get("severity"))
    evidence = "".join(
        f"<li>{_e(e.get('kind'))} <code>{_e(e.get('redacted'))}</code> in {_e(e.get('field'))}"
        f" (confidence {_confidence(e.get('confidence'))})</li>"
        for e in a.get("evidence") or []
        if isinstance(e, Mapping)
    )
    facts = [
        ("Rule", f"{_e(a.get('rule'))} — {_e(rule.title) if rule else 'not in the loaded rules'}"),
        ("Severity", f'<span class="sev-{_e(sev)}">{_e(sev)}</span> ({_e(a.get("category"))})'),
        ("Why", _e(a.get("reason"), 500)),
        ("Wiki, page", f"{_e(a.get('wiki'))}: {_e(a.get('title'))}"),
        ("Links", f"{_link(a.get('diff_url'), 'the diff')} {_link(a.get('page_url'), 'the page')}"),
        ("By", f"{_e(a.get('performer'))} ({_e(a.get('performer_kind'))})"),
        ("About", _e(a.get("target"))),
        ("Event time", _e(a.get("event_time"))),
        ("Repeats", _e(a.get("count"))),
        ("Evidence (redacted)", f"<ul>{evidence}</ul>" if evidence else "none"),
    ]
    if rule is not None:
        facts.append(("What the rule looks for", _text(rule.description) or "&ndash;"))
        facts.append(("Known false positives", _text(rule.false_positives) or "&ndash;"))
    dl = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
    history = "".join(
        f"<li>{_verdict(v.get('verdict'))} by {_e(v.get('by'), 64)} at "
        f"{datetime.fromtimestamp(float(v['at']), UTC).strftime('%Y-%m-%d %H:%M:%SZ')}"
        f"{': ' + _e(v.get('note'), 500) if v.get('note') else ''}</li>"
        for v in a.get("verdicts") or []
    )
    buttons = "".join(
        f'<button name="verdict" value="{v}" class="v-{v}">{label}</button>'
        for v, label in (("true", "Right (true)"), ("false", "Wrong (false)"), ("unsure", "Unsure"))
    )
    form = (
        f'<form class="verdicts" method="post" action="/alerts/{_e(a["id"])}/verdict">'
        f'<input type="hidden" name="csrf" value="{_e(csrf)}">'
        '<p><label>Note <input name="note" size="60" maxlength="500"></label></p>'
        f"<p>{buttons}</p></form>"
    )
    banner = f'<p class="flash">{_e(flash)}</p>' if flash else ""
    return _page(
        f"Alert {a['id'][:12]}",
        f"{banner}<h1>Alert <code>{_e(a['id'][:16])}</code></h1><dl>{dl}</dl>"
        f"<h2>Verdict</h2>{form}<h2>Verdicts given</h2>"
        f"<ul>{history or '<li>none yet</li>'}</ul>",
        user=user,
    )


def _sparkline(counts: Sequence[int], dates: Sequence[str]) -> str:
    """Hits per day as bars in an inline SVG (no script, no image request)."""
    width, height, bar = 4 * len(counts) + 2, 22, 3
    top = max(counts) or 1
    bars = "".join(
        f'<rect x="{1 + 4 * i}" y="{height - 1 - round((height - 2) * n / top)}" width="{bar}" '
        f'height="{round((height - 2) * n / top)}" fill="#36c"><title>{_e(d)}: {n}</title></rect>'
        for i, (n, d) in enumerate(zip(counts, dates, strict=True))
    )
    return (
        f'<svg class="chart" width="{width}" height="{height}" role="img" '
        f'aria-label="alerts per day">{bars}</svg>'
    )


def rules_page(
    rules: Mapping[str, RuleText],
    stats: Mapping[str, Mapping[str, int]],
    dates: Sequence[str],
    hits: Mapping[str, Sequence[int]],
    *,
    user: str,
) -> str:
    lines = []
    # rules that raised alerts first, then the quiet ones
    for rid in sorted(
        set(rules) | set(stats), key=lambda r: (not stats.get(r, {}).get("alerts"), r)
    ):
        r = rules.get(rid)
        s = stats.get(rid, {})
        p = precision(dict(s))
        counts = list(hits.get(rid, [0] * len(dates)))
        chart = _sparkline(counts, dates) if dates else ""
        query = urlencode({"rule": rid})
        lines.append(
            "<tr>"
            f'<td><a href="/?{_e(query)}">{_e(rid)}</a></td>'
            f"<td>{_e(r.category if r else '?')}</td><td>{_e(r.severity if r else '?')}</td>"
            f"<td>{'yes' if r and r.enabled else 'no' if r else 'not loaded'}</td>"
            f"<td>{s.get('alerts', 0)}</td><td>{chart}</td>"
            f'<td class="v-true">{s.get("true", 0)}</td><td class="v-false">{s.get("false", 0)}'
            f'</td><td class="v-unsure">{s.get("unsure", 0)}</td>'
            f"<td>{'&ndash;' if p is None else f'{p:.2f}'}</td></tr>"
        )
    span = f"{dates[0]} to {dates[-1]}" if dates else "no alerts yet"
    return _page(
        "Rules",
        "<h1>Rules</h1>"
        '<p class="note">Precision is true / (true + false) over each alert\'s newest '
        f"verdict; unsure verdicts are not counted. Alerts per day: {_e(span)}.</p>"
        "<table><thead><tr><th>Rule</th><th>Category</th><th>Severity</th><th>Enabled</th>"
        "<th>Alerts</th><th>Per day</th><th>True</th><th>False</th><th>Unsure</th>"
        "<th>Precision</th></tr></thead><tbody>" + "".join(lines) + "</tbody></table>",
        user=user,
    )
