"""Store quorum in the simulator: the store answers a machine only while it reaches a
majority of the voters."""

from __future__ import annotations

import pytest

from corral.sim.quorum import Member, Membership, answers, has_quorum, majority, reaches, sides

UP = Member(up=True, linked=True)
DOWN = Member(up=False, linked=True)
CUT = Member(up=True, linked=False)


def voters(*names: str) -> Membership:
    return Membership(frozenset(names))


@pytest.mark.parametrize(("n_voters", "reached", "want"), [
    (3, 2, True), (3, 1, False), (2, 1, False), (2, 2, True), (1, 1, True), (4, 2, False),
    (5, 3, True), (0, 0, False),
])
def test_majority_is_more_than_half(n_voters: int, reached: int, want: bool) -> None:
    names = [f"v{i}" for i in range(n_voters)]
    assert majority(names, names[:reached]) is want


def test_majority_counts_only_voters() -> None:
    assert not majority(["n1", "n2", "n3"], ["n1", "n4", "n5"])


def test_three_hosts_keep_quorum_without_one() -> None:
    m, machines = voters("n1", "n2", "n3"), {"n1": UP, "n2": UP, "n3": DOWN}
    assert answers("n1", m, machines) and answers("n2", m, machines)
    assert not answers("n3", m, machines)
    assert has_quorum(m, machines)


def test_two_hosts_lose_quorum_with_one() -> None:
    m, machines = voters("n1", "n2"), {"n1": UP, "n2": DOWN}
    assert not answers("n1", m, machines)
    assert not has_quorum(m, machines)
    assert sides(m, machines) == [frozenset({"n1"})]


def test_a_witness_is_a_voter_like_a_host() -> None:
    m = voters("n1", "n2", "w")
    assert answers("n1", m, {"n1": UP, "n2": DOWN, "w": UP})
    # Without the witness nothing changes while both hosts run.
    assert answers("n1", m, {"n1": UP, "n2": UP, "w": DOWN})
    assert not answers("n1", m, {"n1": UP, "n2": DOWN, "w": DOWN})


def test_a_cut_host_reaches_only_its_own_member() -> None:
    machines = {"n1": CUT, "n2": UP, "n3": UP}
    assert reaches("n1", machines) == {"n1"}
    assert reaches("n2", machines) == {"n2", "n3"}
    assert reaches("n1", {"n1": DOWN, "n2": UP}) == frozenset()
    # Alone in the cluster its own member is a majority: the network does not matter.
    assert answers("n1", voters("n1"), {"n1": CUT, "n2": UP})


def test_a_client_host_counts_for_nobody_but_is_answered_through_its_links() -> None:
    m = voters("n1", "n2", "n3")
    machines = {"n1": UP, "n2": UP, "n3": DOWN, "n4": UP}
    assert answers("n4", m, machines)
    assert not answers("n4", m, {**machines, "n4": CUT})
    assert not has_quorum(m, {"n1": UP, "n2": DOWN, "n3": DOWN, "n4": UP})


def test_partition_sides_reach_nobody_across() -> None:
    m = voters("n1", "n2", "n3")
    machines = {"n1": Member(True, True, 1), "n2": Member(True, True, 1),
                "n3": Member(True, True, 2)}
    assert answers("n1", m, machines) and not answers("n3", m, machines)
    assert sides(m, machines) == [frozenset({"n1", "n2"}), frozenset({"n3"})]


def test_no_majority_anywhere_in_a_three_way_split() -> None:
    m = voters("n1", "n2", "n3")
    machines = {n: Member(True, True, i) for i, n in enumerate(("n1", "n2", "n3"), 1)}
    assert not has_quorum(m, machines)
    assert not any(answers(n, m, machines) for n in machines)
    assert len(sides(m, machines)) == 3


def test_a_member_removed_by_the_override_is_answered_by_nobody() -> None:
    m = Membership(frozenset({"n1"}), out=frozenset({"n2"}), epoch=2)
    machines = {"n1": UP, "n2": UP}
    assert answers("n1", m, machines)
    assert not answers("n2", m, machines)
    assert has_quorum(m, machines)
