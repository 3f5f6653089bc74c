"""A host's standing in its cluster, from what the endpoints in its config say: a member, one
the cluster was rebuilt without, or not known. And how its agent keeps the notice."""

from __future__ import annotations

from corral.cluster.membership import EndpointStatus, Member
from corral.cluster.standing import (
    DroppedNotice,
    EndpointView,
    Verdict,
    next_notice,
    should_log,
    standing,
)

OWN = "https://10.0.0.2:2379"
OTHER = "https://10.0.0.1:2379"
CLUSTER = 0x77


def member(i: int, name: str) -> Member:
    return Member(i, name, (f"https://10.0.0.{i}:2380",), (f"https://10.0.0.{i}:2379",), False)


def status(i: int, leader: int, cluster: int = CLUSTER) -> EndpointStatus:
    return EndpointStatus(f"https://10.0.0.{i}:2379", i, leader, 5, 100, False, 4096, cluster)


def view(i: int, leader: int, members: list[Member] | None, cluster: int = CLUSTER
         ) -> EndpointView:
    return EndpointView(f"https://10.0.0.{i}:2379", status(i, leader, cluster),
                        tuple(members) if members is not None else None)


def silent(url: str) -> EndpointView:
    return EndpointView(url, None, None)


REBUILT = [member(1, "n1")]  # after `expected 1` on n1
BOTH = [member(1, "n1"), member(2, "n2")]


def test_a_member_of_a_healthy_cluster() -> None:
    verdict = standing("n2", OWN, [view(2, 1, BOTH), view(1, 1, BOTH)])
    assert verdict.standing == "member"


def test_dropped_when_the_rebuilt_cluster_no_longer_lists_its_member() -> None:
    # Its own etcd still runs on its old data (no leader); the rebuilt cluster answers.
    verdict = standing("n2", OWN, [view(2, 0, BOTH), view(1, 1, REBUILT)])
    assert verdict.standing == "dropped"
    assert OTHER in verdict.reason and "n2 (2)" in verdict.reason
    # Its own etcd has stopped itself (etcd stops a removed member): by name and URL.
    verdict = standing("n2", OWN, [silent(OWN), view(1, 1, REBUILT)])
    assert verdict.standing == "dropped" and "members: n1" in verdict.reason


def test_dropped_when_another_endpoint_belongs_to_another_cluster() -> None:
    verdict = standing("n2", OWN, [view(2, 0, BOTH), view(1, 1, None, cluster=0x99)])
    assert verdict.standing == "dropped" and "another etcd cluster" in verdict.reason


def test_no_verdict_without_a_member_that_has_a_leader() -> None:
    """Two hosts, one dead: the survivor knows no leader and that is all it knows."""
    assert standing("n2", OWN, [view(2, 0, BOTH), silent(OTHER)]).standing == "unknown"
    # The other answers without a leader (cut off too, or stale itself): not its word.
    assert standing("n2", OWN, [silent(OWN), view(1, 0, REBUILT)]).standing == "unknown"
    # Its list unreadable: no verdict from it.
    assert standing("n2", OWN, [view(2, 0, BOTH), view(1, 1, None)]).standing == "unknown"


def test_a_list_that_names_the_host_otherwise_is_no_drop() -> None:
    """Without its own member's word, a list that has its URL under another name (a lab may
    name members otherwise) still counts as listing it."""
    renamed = [member(1, "etcd-1"), Member(2, "etcd-2", (), (OWN,), False)]
    assert standing("n2", OWN, [silent(OWN), view(1, 1, renamed)]).standing == "member"


def test_a_member_alone_with_a_leader() -> None:
    assert standing("n1", "https://10.0.0.1:2379", [view(1, 1, REBUILT)]).standing == "member"


def test_the_notice_is_said_on_first_sight_then_once_a_minute() -> None:
    dropped = Verdict("dropped", "gone")
    first = next_notice(None, dropped, 100.0)
    assert first == DroppedNotice(reason="gone", since=100.0, logged_at=100.0)
    assert should_log(None, 100.0)
    assert not should_log(first, 159.0) and should_log(first, 160.0)
    later = next_notice(first, dropped, 130.0)
    assert later is not None and (later.since, later.logged_at) == (100.0, 100.0)
    again = next_notice(later, dropped, 161.0)
    assert again is not None and (again.since, again.logged_at) == (100.0, 161.0)
    assert next_notice(again, Verdict("member", "listed"), 170.0) is None
    assert next_notice(again, Verdict("unknown", "no leader"), 170.0) is None
