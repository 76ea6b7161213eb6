"""IPv4 and IPv6 addresses in wiki text, judged by where they stand.

An IP address next to an edit is normal on a wiki: logged-out editors signed with their
address for two decades, and rollback summaries, contributions links and ``{{unsigned}}``
templates name it. Those are *signatures*. An address in prose ("my IP is ...", "she
posts from ...") is what a privacy rule wants. The confidence encodes that judgement, so a
rule chooses with ``min_confidence``:

=====================================  ==========
where the address stands               confidence
=====================================  ==========
public address in prose                0.8 (0.9 next to "IP", "address", ...)
in a wiki table cell of its own        0.45
private, loopback, link-local,         0.35
reserved, multicast; a CIDR range
all four octets single digits          0.3
(1.2.3.4: outline numbering)
signature: contributions or user       0.2 (``SIGNATURE_CONFIDENCE``)
link, ``{{unsigned|...}}``-style
template, "(talk)" after it, "edits
by ..." before it, the performer's
own address, or a user-name field
=====================================  ==========

``min_confidence`` above ``SIGNATURE_CONFIDENCE`` (``NOT_SIGNATURE_MIN_CONFIDENCE``, 0.25)
asks for "an IP address not in a signature"; 0.5 asks for a public one in prose.
``in_signature()`` is the same judgement as a function.

Not IP addresses: versions (``v1.2.3.4``, "version 10.0.0.1"), OIDs and other dotted runs
of more than four numbers, section numbers ("§ 1.2.3.4").

Documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) are
treated as public: they stand for public addresses in examples and tests.

The redacted form tells only the family: ``*.*.*.*`` or ``*:*:*:*:*:*:*:*``.
"""

from __future__ import annotations

import ipaddress
import re

from detectors.recognizers._text import enclosing_template, has_after, has_before
from detectors.recognizers.base import PiiMatch, TextContext, capped

__all__ = [
    "NOT_SIGNATURE_MIN_CONFIDENCE",
    "SIGNATURE_CONFIDENCE",
    "IpRecognizer",
    "find_ips",
    "in_signature",
]

SIGNATURE_CONFIDENCE = 0.2
NOT_SIGNATURE_MIN_CONFIDENCE = 0.25
_PUBLIC = 0.8
_PUBLIC_WITH_CONTEXT = 0.9
_TABLE_CELL = 0.45
_NOT_PUBLIC = 0.35
_SMALL_OCTETS = 0.3

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_V4 = re.compile(
    rf"(?<![\w.])(?P<ip>{_OCTET}(?:\.{_OCTET}){{3}})(?P<cidr>/[0-9]{{1,2}})?(?![\w]|\.[0-9])"
)
_V6 = re.compile(
    r"(?<![\w.])(?<![0-9A-Fa-f]:)(?<!::)(?P<ip>[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.[0-9]{1,3}){0,3})"
    r"(?P<cidr>/[0-9]{1,3})?(?![\w:])"
)

_NOT_IP_BEFORE = re.compile(
    r"(?i)(?:\b(?:v|ver|version|versión|versione|versão|release|build|firmware|kernel|rev"
    r"|revision|update|sdk|api|oid|mib|isbn|doi|section|sec|chapter|art|article|clause"
    r"|paragraph|para|step|item|table|figure|fig|schedule|appendix|annex|rule|rn)\.?"
    r"|§|¶)\s*\Z"
)
_IP_WORDS_BEFORE = re.compile(
    r"(?i)\b(?:ip|ips|ip address|ip-adresse|adresse ip|dirección ip|indirizzo ip|ip-adres"
    r"|address|addresses|adresse|from|via|proxy|vpn|whois|host|server|geolocat\w*|isp"
    r"|located|lives|posting from|editing from|logged out)\b[^\n]{0,24}\Z"
)
# Signature forms around the address in raw wikitext and in parsed summaries.
_SIG_BEFORE = re.compile(
    r"(?i)(?:(?:\b(?:edits?|changes|contributions?) by"
    r"|\brevision [0-9]+ by|\bcomment (?:added )?by|\badded by|\bsigned by"
    r"|\bBearbeitung(?:en)? von|\bÄnderung(?:en)? von|\bBeiträge von|\bmodifications? (?:de|par)"
    r"|\bédition(?:s)? (?:de|par)|\bediciones de|\bedición de|\bmodifiche di|\bcontributi di"
    r"|\bbewerking(?:en)? van|\bedycje|\bedycji|\bblocked|\bblock"
    r"|\bправки)"
    r"\s*\[?\[?"
    # a reference to the address's own user, talk or contributions page, linked or not
    r"|(?:\buser|\buser[ _]talk|\bbenutzer|\bbenutzer[ _]diskussion|\butilisateur"
    r"|\bdiscussion[ _]utilisateur|\busuario|\busuario[ _]discusión|\butente"
    r"|\bdiscussioni[ _]utente|\bgebruiker|\boverleg[ _]gebruiker|\bspecial:contrib\w*"
    r"|\bspezial:beiträge|\bspécial:contributions|\bespecial:contribuciones"
    r"|\bspeciale:contributi)\s*[:/]?\s*"
    r")\Z"
)
_SIG_AFTER = re.compile(
    r"(?i)(?:\]\]|\s{0,2}[(\[]\s?(?:talk|contribs|contributions|diskussion|disk|beiträge"
    r"|discuter|discussion|disc|discusión|discussione|overleg|bijdragen|ut|t|c"
    r"|обсуждение|обс"
    r"|block|whois|geolocate|rdns|traceroute)\b"
    r"|\|[^\]\n]{0,60}\]\]"  # the target of a link: [[Special:Contributions/IP|IP]]
    r"|[^\n]{0,40}\((?:UTC|CES?T|MES?Z)\)"
    # a signature timestamp without the zone: 04:21, 14 May 2007
    r"|[^\n]{0,24}?[0-9]{1,2}:[0-9]{2}, [0-9]{1,2}\.? \w+\.? [0-9]{4})"
)
# Signed at the end of a line: "... Thanks. 203.0.113.7", "Cheers 203.0.113.7".
_SIGN_OFF_BEFORE = re.compile(
    r"(?i)(?:^|[.!?)\]\"'»”]|(?<=\s)-|\b(?:thanks|thank you|thx|cheers|regards|best|ty|danke|gruß"
    r"|grüße|merci|gracias|grazie|saludos|cordialement)\b[,!.]?|--|\u2014|\u2013|~)[ \t]*\Z",
    re.MULTILINE,
)
_LINE_END_AFTER = re.compile(r"[ \t\"'»”]*(?:\n|\Z)")
_SIG_TEMPLATE = re.compile(
    r"(?i)unsigned|unsig|signed|anon|ip|user|sock|whois|vandal|block|puppet|proxy|shared"
    r"|dynamic|contrib|talkback|uw-|checkuser|spam|nicht signiert|unsigniert|non signé"
    r"|non firmato|sin firma|no firmado|niet ondertekend|bloqu|sperr"
)
# A cell of its own in a wikitable row (a line starting with | or !).
_TABLE_CELL_BEFORE = re.compile(r"^[|!](?:[^\n]*(?:\|\||!!))?[ \t]*\Z", re.MULTILINE)
_TABLE_CELL_AFTER = re.compile(r"[ \t]*(?:\|\||!!|$)", re.MULTILINE)

_NON_PUBLIC_V4 = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
        "172.16.0.0/12", "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4",
    )
)  # fmt: skip


def _is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv4Address):
        return not any(ip in net for net in _NON_PUBLIC_V4)
    if ip.ipv4_mapped is not None:
        return _is_public(ip.ipv4_mapped)
    return not (
        ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_unspecified
        or ip.is_site_local
        or ip in _ULA
    )


_ULA = ipaddress.ip_network("fc00::/7")


def _in_link(text: str, start: int) -> bool:
    """Inside ``[[...]]``: a user, talk or contributions link on a wiki."""
    lo = max(0, start - 120)
    open_at = text.rfind("[[", lo, start)
    return open_at >= 0 and text.find("]]", open_at, start) < 0 and "\n" not in text[open_at:start]


def in_signature(text: str, start: int, end: int, ctx: TextContext | None = None) -> bool:
    """Whether the address at ``text[start:end]`` is part of a wiki signature or attribution.

    True for contributions and user links, signature-like templates (``{{unsigned|...}}``,
    ``{{IPvandal|...}}``, ...), an address followed by "(talk)" or a signature timestamp,
    "Reverted edits by ...", the performer's own address, and text that is a user name.
    """
    if ctx is not None:
        if ctx.field == "user":
            return True
        if ctx.performer is not None and ctx.performer.strip().lower() == text[start:end].lower():
            return True
    if _in_link(text, start):
        return True
    where = enclosing_template(text, start)
    if where is not None and _SIG_TEMPLATE.search(where[0]):
        return True
    if has_after(_SIG_AFTER, text, end, 72):
        return True
    if has_before(_SIG_BEFORE, text, start, 48):
        return True
    return has_after(_LINE_END_AFTER, text, end, 8) and has_before(
        _SIGN_OFF_BEFORE, text, start, 24
    )


def _judge(text: str, start: int, end: int, *, ip_text: str, cidr: str, ctx: TextContext) -> float:
    try:
        ip = ipaddress.ip_address(ip_text)
    except ValueError:
        return 0.0
    if has_before(_NOT_IP_BEFORE, text, start, 24):
        return 0.0
    if in_signature(text, start, end, ctx):
        return SIGNATURE_CONFIDENCE
    if isinstance(ip, ipaddress.IPv4Address) and all(len(o) == 1 for o in ip_text.split(".")):
        return _SMALL_OCTETS
    if cidr or not _is_public(ip):
        return _NOT_PUBLIC
    if has_before(_TABLE_CELL_BEFORE, text, start, 8) and has_after(
        _TABLE_CELL_AFTER, text, end, 8
    ):
        return _TABLE_CELL
    return _PUBLIC_WITH_CONTEXT if has_before(_IP_WORDS_BEFORE, text, start, 48) else _PUBLIC


def _v6_plausible(s: str) -> bool:
    groups = [g for g in s.split(":") if g]
    return len(groups) >= 3 and any("0" <= c <= "9" for c in s)


def find_ips(text: str, ctx: TextContext | None = None) -> list[PiiMatch]:
    context = ctx if ctx is not None else TextContext()
    out: list[PiiMatch] = []
    if "." in text:
        for m in capped(_V4.finditer(text), "ip_address", context.budget):
            conf = _judge(
                text,
                m.start(),
                m.end(),
                ip_text=m.group("ip"),
                cidr=m.group("cidr") or "",
                ctx=context,
            )
            if conf > 0.0:
                out.append(PiiMatch(m.start(), m.end(), "ip_address", conf, "*.*.*.*"))
    if text.count(":") >= 2:
        for m in capped(_V6.finditer(text), "ip_address", context.budget):
            ip_text = m.group("ip")
            if not _v6_plausible(ip_text):
                continue
            conf = _judge(
                text, m.start(), m.end(), ip_text=ip_text, cidr=m.group("cidr") or "", ctx=context
            )
            if conf > 0.0:
                out.append(PiiMatch(m.start(), m.end(), "ip_address", conf, "*:*:*:*:*:*:*:*"))
        out.sort(key=lambda p: p.start)
    return out


class IpRecognizer:
    kind = "ip_address"
    # an IPv4 dotted quad, or hex groups with two colons
    prefilter = r"[0-9]\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]|[0-9A-Fa-f]?:[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]"

    def find(self, text: str, ctx: TextContext) -> list[PiiMatch]:
        return find_ips(text, ctx)
