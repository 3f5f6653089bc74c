"""When removing a member is refused: it would leave fewer than two voters, or the voters
left that answer would not be a majority; a learner may always go. And what a name given to
a removal stands for."""

from __future__ import annotations

import pytest

from corral.cluster.membership import EndpointStatus, Member
from corral.cluster.models import ClusterHost
from corral.setup.removal_rules import find_target, removal_refusal


def member(i: int, name: str, learner: bool = False) -> Member:
    return Member(i, name, (f"https://10.0.0.{i}:2380",), (f"https://10.0.0.{i}:2379",),
                  learner)


def up(*ids: int, leader: int = 1) -> list[EndpointStatus]:
    return [EndpointStatus(f"https://10.0.0.{i}:2379", i, leader, 3, 10, False, 1) for i in ids]


N1, N2, N3, W = member(1, "n1"), member(2, "n2"), member(3, "n3"), member(4, "witness-w1")
LEARNER = member(5, "n5", learner=True)


def test_the_last_but_one_voter_is_refused_with_the_reason() -> None:
    reason = removal_refusal(N2, [N1, N2], up(1, 2))
    assert reason is not None and "last but one voter" in reason and "1 voter," in reason


def test_the_last_voter_is_refused() -> None:
    reason = removal_refusal(N1, [N1, LEARNER], up(1))
    assert reason is not None and "the last voter" in reason


def test_a_learner_may_always_go() -> None:
    assert removal_refusal(LEARNER, [N1, LEARNER], up(1)) is None
    assert removal_refusal(LEARNER, [N1, N2, LEARNER], []) is None


@pytest.mark.parametrize(("target", "members", "statuses", "refused"), [
    (W, [N1, N2, W], up(1, 2, 4), False),  # two hosts stay, both answer
    (N3, [N1, N2, N3], up(1, 2), False),  # the dead one goes: two voters, both alive
    (N2, [N1, N2, N3], up(1, 2), True),  # a live one goes: two voters, one alive
    (N2, [N1, N2, N3], up(1, 2, 3, leader=0), True),  # nobody follows a leader
    (N3, [N1, N2, N3, W], up(1, 4), False),  # three left, two of them alive
    (N1, [N1, N2, N3, W], up(1, 4), True),  # three left, only the witness alive
])
def test_the_voters_left_alive_must_be_a_majority_of_the_voters_left(
        target: Member, members: list[Member], statuses: list[EndpointStatus],
        refused: bool) -> None:
    reason = removal_refusal(target, members, statuses)
    assert (reason is not None) is refused
    if refused and len(members) > 2:
        assert "not a majority" in reason  # type: ignore[operator]


def test_a_removal_names_a_host_a_member_or_a_member_id() -> None:
    hosts = {"n2": ClusterHost(name="n2", address="10.0.0.2", member_id=2),
             "w1": ClusterHost(name="w1", role="witness", address="10.0.0.4", member_id=4),
             "n9": ClusterHost(name="n9", address="10.0.0.9", member_id=None)}
    pending = member(0x2a, "", learner=True)
    members = [N1, N2, W, pending]
    t = find_target("n2", members, hosts)
    assert t is not None and t.member == N2 and t.host == hosts["n2"]
    t = find_target("w1", members, hosts)
    assert t is not None and t.member == W
    t = find_target("n1", members, hosts)  # a member with no host record (made by create)
    assert t is not None and t.member == N1 and t.host is None
    t = find_target("2a", members, hosts)  # never started: no name, only its id
    assert t is not None and t.member == pending
    t = find_target("n9", members, hosts)  # a join that died before its member was added
    assert t is not None and t.member is None and t.host == hosts["n9"]
    assert find_target("n7", members, hosts) is None
