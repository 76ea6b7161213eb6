"""Facts about who a change is aimed at, for rules that need a target.

Language-independent where possible: user pages are namespaces 2 and 3 by number; user
links and pings are matched with the localized namespace names of the larger wikis.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from detectors.base import DetectionContext
from detectors.event import RecentChange
from detectors.normalize import tokenize
from detectors.pii import pii_fingerprints
from detectors.recognizers import regions_for_wiki
from detectors.recognizers.base import TextContext

__all__ = [
    "CONTEXT_FACTS",
    "FACTS",
    "FIELD_FACTS",
    "mentioned_users",
    "page_owner",
    "same_user",
]

USER_NAMESPACES = (2, 3)

_USER_PREFIXES = (
    "user", "user talk", "user_talk", "u", "ut", "benutzer", "benutzerin", "benutzer diskussion",
    "benutzerin diskussion", "utilisateur", "utilisatrice", "discussion utilisateur",
    "discussion utilisatrice", "usuario", "usuaria", "usuario discusión", "usuaria discusión",
    "utente", "discussioni utente", "gebruiker", "overleg gebruiker", "użytkownik",
    "użytkowniczka", "dyskusja użytkownika", "dyskusja użytkowniczki", "участник",
    "участница", "обсуждение участника", "обсуждение участницы", "usuário", "usuária",
    "usuário discussão", "usuária discussão", "utilizador", "utilizador discussão",
    "användare", "användardiskussion", "bruker", "brukerdiskusjon", "bruger",
    "brugerdiskussion", "käyttäjä", "keskustelu käyttäjästä", "uživatel", "diskuse s uživatelem",
    "kullanıcı", "kullanıcı mesaj", "користувач", "обговорення користувача", "kasutaja",
    "利用者", "利用者‐会話", "用户", "用戶", "user talk", "사용자", "사용자토론", "مستخدم",
    "نقاش المستخدم", "کاربر", "بحث کاربر", "משתמש", "שיחת משתמש", "सदस्य", "सदस्य वार्ता",
    "pengguna", "pembicaraan pengguna", "thành viên", "thảo luận thành viên",
    "special:contributions", "special:contribs", "spezial:beiträge",
    "spécial:contributions", "especial:contribuciones",
)  # fmt: skip
_PREFIX_ALT = "|".join(sorted((re.escape(p) for p in _USER_PREFIXES), key=len, reverse=True))
_USER_LINK = re.compile(
    rf"\[\[\s*:?\s*(?:{_PREFIX_ALT})\s*[:/]\s*([^|\]/#\n]{{1,85}})", re.IGNORECASE
)
_PING = re.compile(
    r"\{\{\s*(?:ping|pingt?|re|reply ?to|replyto|u|user|noping|userlinks|user0|yo|"
    r"rép|antwort|mention)\s*\|\s*([^}|\n]{1,85})",
    re.IGNORECASE,
)
_AT_MENTION = re.compile(r"(?:^|\s)@([^\W\d_][\w .\-]{0,40}?)(?=[:,]|\s*$)", re.MULTILINE)

SECOND_PERSON = frozenset(
    {
        "you", "your", "yours", "yourself", "yourselves", "youre", "ur", "u", "ya", "thou",
        "thee", "thy",
        "du", "dich", "dir", "dein", "deine", "deinen", "deinem", "deiner", "ihr", "euch",
        "euer",
        "tu", "toi", "te", "ton", "ta", "tes", "vous", "votre", "vos",
        "tú", "ti", "contigo", "tuyo", "tuya", "usted", "ustedes", "vosotros", "os",
        "jij", "je", "jou", "jouw", "jullie",
        "ты", "тебя", "тебе", "тобой", "твой", "твоя", "твоё", "твои", "вы", "вас", "вам", "ваш",
        "sen", "seni", "sana", "senin",
    }
)  # fmt: skip


def _canon(name: str) -> str:
    name = name.replace("_", " ").strip()
    return name[:1].upper() + name[1:]


def same_user(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and _canon(a) == _canon(b)


def page_owner(change: RecentChange) -> str | None:
    """The user whose user or user talk page this is (base page, subpages included)."""
    if change.namespace not in USER_NAMESPACES or not change.title:
        return None
    _prefix, sep, rest = change.title.partition(":")
    if not sep:
        return None
    return _canon(rest.split("/", 1)[0])


def mentioned_users(text: str | None) -> set[str]:
    """Users linked, pinged or @-mentioned in wikitext or a summary."""
    if not text:
        return set()
    found: set[str] = set()
    if "[[" in text:
        found.update(_canon(m.group(1)) for m in _USER_LINK.finditer(text))
    if "{{" in text:
        found.update(_canon(m.group(1)) for m in _PING.finditer(text))
    if "@" in text:
        found.update(_canon(m.group(1)) for m in _AT_MENTION.finditer(text))
    return {u for u in found if u}


def _others_user_space(change: RecentChange, _text: str | None) -> bool:
    owner = page_owner(change)
    return owner is not None and not same_user(owner, change.user)


def _own_user_space(change: RecentChange, _text: str | None) -> bool:
    owner = page_owner(change)
    return owner is not None and same_user(owner, change.user)


def _user_space(change: RecentChange, _text: str | None) -> bool:
    return change.namespace in USER_NAMESPACES


def _mentions_other_user(change: RecentChange, text: str | None) -> bool:
    return any(not same_user(u, change.user) for u in mentioned_users(text))


def _second_person(_change: RecentChange, text: str | None) -> bool:
    if not text:
        return False
    return any(tok in SECOND_PERSON for tok, _s, _e in tokenize(text.casefold()))


def _targets_other_user(change: RecentChange, text: str | None) -> bool:
    return _others_user_space(change, text) or _mentions_other_user(change, text)


def _targeted(change: RecentChange, text: str | None) -> bool:
    return _targets_other_user(change, text) or _second_person(change, text)


Fact = Callable[[RecentChange, str | None], bool]

# facts about the page and performer (no text needed)
FACTS: dict[str, Fact] = {
    "user_space": _user_space,
    "others_user_space": _others_user_space,
    "own_user_space": _own_user_space,
}
# facts about a text field (the condition names the field)
FIELD_FACTS: dict[str, Fact] = {
    "mentions_other_user": _mentions_other_user,
    "second_person": _second_person,
    "targets_other_user": _targets_other_user,
    "targeted": _targeted,
}


def _reinserted_pii(change: RecentChange, ctx: DetectionContext, text: str | None) -> bool:
    """Personal data in this text that was removed from the same page earlier."""
    if not ctx.removed_pii or not text:
        return False
    if ctx.added_pii is not None and text is ctx.added_text:
        return not ctx.removed_pii.isdisjoint(ctx.added_pii)  # worked out off the loop
    tctx = TextContext(regions=regions_for_wiki(change.wiki), namespace=change.namespace)
    return not ctx.removed_pii.isdisjoint(pii_fingerprints(text, tctx))


def _follows_other_editor(change: RecentChange, ctx: DetectionContext, _text: str | None) -> bool:
    """The page was last edited by another (registered) user, whom this edit follows."""
    prev = ctx.previous_editor
    return prev is not None and not same_user(prev, change.user)


ContextFact = Callable[[RecentChange, DetectionContext, str | None], bool]

# facts that need what the runner keeps between events: only in pattern rules
CONTEXT_FACTS: dict[str, ContextFact] = {
    "reinserted_pii": _reinserted_pii,
    "follows_other_editor": _follows_other_editor,
}
CONTEXT_FACTS_WITH_FIELD = frozenset({"reinserted_pii"})
