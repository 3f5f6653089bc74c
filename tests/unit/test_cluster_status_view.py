"""The cluster status as shown: members with voter/learner and health, quorum, leader,
witnesses, and each host's agent and lease."""

from __future__ import annotations

from corral.cluster.membership import EndpointStatus, Member
from corral.cluster.models import ClusterHost, ClusterInfo
from corral.setup.status_view import AgentFacts, status_from

INFO = ClusterInfo(name="prod", ca_hash="ab" * 32, created_at=1.0)


def member(i: int, name: str, learner: bool = False) -> Member:
    return Member(i, name, (f"https://10.0.0.{i}:2380",), (f"https://10.0.0.{i}:2379",),
                  learner)


def status(i: int, leader: int) -> EndpointStatus:
    return EndpointStatus(f"https://10.0.0.{i}:2379", i, leader, 3, 10, False, 1)


def test_two_hosts_and_a_witness_one_host_dead() -> None:
    members = [member(1, "n1"), member(2, "n2"), member(3, "witness-w1")]
    hosts = {"n2": ClusterHost(name="n2", address="10.0.0.2", member_id=2),
             "w1": ClusterHost(name="w1", role="witness", address="10.0.0.3", member_id=3)}
    agents = {"n1": AgentFacts(True, 8, "10.0.0.1"), "n2": AgentFacts(False, None)}
    s = status_from(INFO, members, [status(1, 3), status(3, 3)], hosts, agents)
    assert s.quorum and s.leader == "witness-w1" and s.witnesses == ["w1"]
    assert s.voters == ["n1", "n2", "witness-w1"] and s.healthy_voters == ["n1", "witness-w1"]
    by_name = {m.name: m for m in s.members}
    assert by_name["witness-w1"].role == "witness" and by_name["witness-w1"].leader
    assert not by_name["n2"].healthy and by_name["n2"].host == "n2"
    assert by_name["n1"].host is None  # made by create: no host record in this data
    rows = {h.name: h for h in s.hosts}
    assert rows["n1"].agent_online and rows["n1"].lease_ttl == 8
    assert rows["n1"].address == "10.0.0.1"
    assert rows["n2"].agent_online is False and rows["n2"].member == "2" and rows["n2"].in_etcd
    assert rows["w1"].agent_online is None  # a witness runs no agent


def test_two_hosts_one_dead_has_no_quorum_and_a_learner_does_not_count() -> None:
    members = [member(1, "n1"), member(2, "n2"), member(4, "", learner=True)]
    s = status_from(None, members, [status(1, 0)], {}, {})
    assert not s.quorum and s.leader is None and s.learners == ["4"]
    assert s.cluster is None
