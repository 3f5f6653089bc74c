"""Which host's etcd member leads, from what each member says (pure): `lab kill-etcd-leader`
kills that one, in the lab's own plan and in cluster mode alike."""

from __future__ import annotations

from corral.lab.etcd import MemberStatus
from corral.lab.faults import leading_host


def says(member: str, leader: str, term: int) -> MemberStatus:
    return MemberStatus(member, leader, term)


def test_the_leader_a_majority_follows_in_the_newest_term() -> None:
    seen = {"n1": says("a", "b", 3), "n2": says("b", "b", 3), "n3": None}
    assert leading_host(seen) == ("n2", 3)


def test_no_leader_without_a_majority_behind_it() -> None:
    # n3 still follows an old leader, n2 no one: one vote of three.
    seen = {"n1": says("a", "a", 4), "n2": None, "n3": says("c", "b", 3)}
    assert leading_host(seen) is None
    assert leading_host({"n1": None, "n2": None}) is None
    assert leading_host({}) is None


def test_a_leader_no_host_answers_for_is_not_named() -> None:
    # Two members follow b, but b's host did not answer: it cannot be found to be killed.
    seen = {"n1": says("a", "b", 5), "n2": None, "n3": says("c", "b", 5)}
    assert leading_host(seen) is None


def test_a_lone_member_leads_itself() -> None:
    assert leading_host({"n1": says("a", "a", 2)}) == ("n1", 2)
