from __future__ import annotations

import orjson
import pytest

from detectors.event import RecentChange, decode_event
from detectors.facts import FACTS, FIELD_FACTS, mentioned_users, page_owner


def _change(title: str, namespace: int, user: str = "Alice") -> RecentChange:
    return decode_event(
        orjson.dumps({"meta": {}, "title": title, "namespace": namespace, "user": user})
    )


def test_page_owner_and_user_space() -> None:
    assert page_owner(_change("User talk:Bob/Archive 1", 3)) == "Bob"
    assert page_owner(_change("Benutzer Diskussion:bob", 3)) == "Bob"
    assert page_owner(_change("Talk:Bob", 1)) is None
    assert FACTS["others_user_space"](_change("User talk:Bob", 3), None)
    assert not FACTS["others_user_space"](_change("User:Alice/sandbox", 2), None)
    assert FACTS["own_user_space"](_change("User:Alice_/sandbox", 2, user="alice"), None)


@pytest.mark.parametrize(
    ("text", "users"),
    [
        ("see [[User:Bob|Bob]] and [[User talk:Carol]]", {"Bob", "Carol"}),
        ("{{ping|dave}} look", {"Dave"}),
        ("[[Benutzer:Erika Muster]]", {"Erika Muster"}),
        ("[[Special:Contributions/203.0.113.7|203.0.113.7]]", {"203.0.113.7"}),
        ("@Frank: thanks", {"Frank"}),
        ("email me@example.org", set()),
        ("no mention here", set()),
    ],
)
def test_mentions(text: str, users: set[str]) -> None:
    assert mentioned_users(text) == users


def test_targeting_facts() -> None:
    article_talk = _change("Talk:Page", 1)
    assert FIELD_FACTS["second_person"](article_talk, "you're wrong")
    assert not FIELD_FACTS["second_person"](article_talk, "the youth team")
    assert FIELD_FACTS["mentions_other_user"](article_talk, "[[User:Bob]] is wrong")
    assert not FIELD_FACTS["mentions_other_user"](article_talk, "[[User:Alice]] (me)")
    assert FIELD_FACTS["targeted"](_change("User talk:Bob", 3), "what a mess")
    assert not FIELD_FACTS["targeted"](article_talk, "what a mess")
