"""etcd membership as plain data: the majority rule, the cluster summary, and the initial
cluster a joining member starts with."""

from __future__ import annotations

import pytest

from corral.cluster.membership import (
    EndpointStatus,
    Member,
    initial_cluster,
    never_started,
    quorum,
    summarize,
)


@pytest.mark.parametrize(("total", "healthy", "expected"), [
    (0, 0, False),
    (1, 1, True), (1, 0, False),
    (2, 2, True), (2, 1, False),  # two hosts, one dead: no majority
    (3, 2, True), (3, 1, False),  # two hosts and a witness: either may go
    (4, 2, False), (4, 3, True),
    (5, 3, True), (5, 2, False),
])
def test_quorum_is_a_strict_majority_of_voters(total: int, healthy: int, expected: bool) -> None:
    assert quorum(total, healthy) is expected


def member(i: int, name: str, learner: bool = False) -> Member:
    return Member(i, name, (f"https://10.0.0.{i}:2380",), (f"https://10.0.0.{i}:2379",), learner)


def status(i: int, leader: int, learner: bool = False) -> EndpointStatus:
    return EndpointStatus(f"https://10.0.0.{i}:2379", i, leader, 5, 100, learner, 4096)


MEMBERS = [member(1, "n1"), member(2, "n2"), member(3, "witness-w1"), member(4, "n4", True)]


def test_a_summary_counts_voters_that_follow_a_leader_and_leaves_learners_out() -> None:
    s = summarize(MEMBERS, [status(1, 2), status(2, 2), status(4, 2, True)])
    assert s.voters == ("n1", "n2", "witness-w1") and s.learners == ("n4",)
    assert s.healthy_voters == ("n1", "n2")
    assert s.leader == "n2" and s.has_quorum


def test_a_lone_voter_without_a_leader_has_no_quorum() -> None:
    s = summarize(MEMBERS, [status(1, 0)])
    assert s.healthy_voters == () and s.leader is None and not s.has_quorum


def test_two_of_four_voters_are_not_a_majority() -> None:
    four = [*MEMBERS[:3], member(4, "n4")]
    s = summarize(four, [status(1, 1), status(2, 1)])
    assert len(s.voters) == 4 and s.healthy_voters == ("n1", "n2") and not s.has_quorum


def test_statuses_of_unknown_members_do_not_count() -> None:
    s = summarize(MEMBERS[:2], [status(1, 1), status(9, 1)])
    assert s.healthy_voters == ("n1",) and not s.has_quorum


def test_a_member_not_started_yet_shows_by_its_id_and_takes_its_name_to_start() -> None:
    new = Member(0xABC, "", ("https://10.0.0.9:2380",), (), True)
    assert summarize([*MEMBERS[:2], new], []).learners == ("abc",)
    assert initial_cluster([*MEMBERS[:2], new], 0xABC, "n9") == [
        ("n1", "https://10.0.0.1:2380"), ("n2", "https://10.0.0.2:2380"),
        ("n9", "https://10.0.0.9:2380"),
    ]


def test_another_member_that_never_started_must_be_removed_before_a_join() -> None:
    stale = Member(0xDEF, "", ("https://10.0.0.8:2380",), (), True)
    new = Member(0xABC, "", ("https://10.0.0.9:2380",), (), True)
    assert never_started([MEMBERS[0], stale, new]) == [stale, new]
    with pytest.raises(ValueError, match="member def .* never started"):
        initial_cluster([MEMBERS[0], stale, new], 0xABC, "n9")
