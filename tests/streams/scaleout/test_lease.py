"""Who holds a lease after a rebalance: the live holder keeps it, whoever joins."""

from __future__ import annotations

from streams.scaleout.lease import _owner


def test_a_member_that_joins_leaves_the_lease_with_its_holder() -> None:
    # "a" sorts first and would win by id; "m" holds the lease
    assert _owner({"a": b"", "m": b"held:1000", "z": b""}) == "m"


def test_with_no_holder_the_first_member_by_id_takes_it() -> None:
    assert _owner({"b": b"", "a": b""}) == "a"


def test_of_two_claims_the_later_taking_wins_over_a_stale_holder() -> None:
    """A stalled past the session timeout, B took the lease; A rejoins still claiming it.
    B took it later: B keeps it, A is left out and stops."""
    stale, live = b"held:1000", b"held:2000"
    assert _owner({"a": stale, "b": live}) == "b"
    assert _owner({"a": live, "b": stale}) == "a"


def test_a_claim_that_does_not_parse_is_no_claim() -> None:
    for junk in (b"held", b"held:", b"held:x", b"held:" + b"9" * 30, b"owner:5"):
        assert _owner({"a": b"", "b": junk}) == "a"
