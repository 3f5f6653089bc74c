"""`cluster expected 1` as plain data: when a lone survivor may rebuild the cluster around
itself, and the record it leaves."""

from __future__ import annotations

import pytest

from corral.cluster.membership import EndpointStatus, Member
from corral.cluster.models import ClusterInfo
from corral.setup.override_rules import dropped, next_epoch, override_refusal


def member(i: int, name: str, learner: bool = False) -> Member:
    return Member(i, name, (f"https://10.0.0.{i}:2380",), (f"https://10.0.0.{i}:2379",), learner)


def status(i: int, leader: int) -> EndpointStatus:
    return EndpointStatus(f"https://10.0.0.{i}:2379", i, leader, 5, 100, False, 4096, 77)


TWO = [member(1, "n1"), member(2, "n2")]


def test_a_lone_survivor_of_two_may_override() -> None:
    assert override_refusal(status(1, 0), TWO, [status(1, 0)]) is None
    assert [m.name for m in dropped(TWO, 1)] == ["n2"]


@pytest.mark.parametrize(("own", "members", "statuses", "says"), [
    (None, TWO, [], "does not answer"),
    (status(9, 0), TWO, [status(9, 0)], "not in its own member list"),
    (status(1, 0), [member(1, "n1", True), member(2, "n2")], [status(1, 0)], "is a learner"),
    # Both answer with a leader: nothing to override.
    (status(1, 1), TWO, [status(1, 1), status(2, 1)], "has its quorum"),
    # Three voters, two alive: they hold the quorum.
    (status(1, 1), [*TWO, member(3, "witness-w")], [status(1, 1), status(3, 1)],
     "has its quorum"),
    # Four voters, two answer but without a majority: the other one is alive.
    (status(1, 0), [*TWO, member(3, "n3"), member(4, "n4")], [status(1, 0), status(3, 0)],
     "other voters answer (n3)"),
])
def test_refused_unless_alone_and_without_quorum(own: EndpointStatus | None,
                                                  members: list[Member],
                                                  statuses: list[EndpointStatus],
                                                  says: str) -> None:
    reason = override_refusal(own, members, statuses)
    assert reason is not None and says in reason, reason


def test_a_learner_that_answers_does_not_block_the_override() -> None:
    """A learner has no vote: it cannot form a majority with anyone."""
    members = [*TWO, member(3, "n3", True)]
    assert override_refusal(status(1, 0), members, [status(1, 0), status(3, 0)]) is None


def test_the_new_epoch_records_who_when_and_whom_it_left_out() -> None:
    info = ClusterInfo(name="prod", ca_hash="a" * 64, created_at=1.0)
    after = next_epoch(info, "n1", "alice", 100.0, dropped(TWO, 1))
    assert after.epoch == 2 and info.epoch == 1
    [record] = after.overrides
    assert (record.epoch, record.host, record.user, record.at, record.dropped) == \
        (2, "n1", "alice", 100.0, ["n2"])
    again = next_epoch(after, "n1", "bob", 200.0, [])
    assert again.epoch == 3 and [o.epoch for o in again.overrides] == [2, 3]


def test_a_cluster_record_from_before_overrides_reads_with_none() -> None:
    old = ClusterInfo.model_validate_json(
        '{"name": "prod", "epoch": 1, "ca_hash": "' + "b" * 64 + '", "created_at": 5}')
    assert old.overrides == [] and old.epoch == 1
