"""What `GET /cluster/status` shows, from plain data: the etcd members and whether their
voters hold a quorum, the leader, the witnesses, and each host's agent and lease. Pure:
`api.routes_cluster` reads etcd for it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pydantic import BaseModel

from corral.cluster.membership import EndpointStatus, Member, member_label, summarize
from corral.cluster.models import ClusterHost, ClusterInfo, HostRole


@dataclass(frozen=True)
class AgentFacts:
    """A host's agent as its keys under /corral/nodes/<name>/ show it."""

    online: bool  # its alive key exists: it holds its lease
    lease_ttl: int | None  # seconds left on that lease when read; None: no lease
    address: str | None = None  # from its NodeInfo


class MemberOut(BaseModel):
    name: str  # the member's name (its id in hex until it has started)
    id: str  # hex, as etcdctl shows it
    host: str | None  # the host or witness it belongs to
    role: HostRole | None
    voter: bool
    started: bool
    healthy: bool  # it answered and follows a leader
    leader: bool
    peer_urls: list[str]
    client_urls: list[str]


class HostOut(BaseModel):
    name: str
    role: HostRole
    address: str | None
    member: str | None  # its etcd member's id in hex; None: none recorded
    in_etcd: bool  # that member is in etcd's member list
    agent_online: bool | None  # None for a witness: it runs no agent
    lease_ttl: int | None


class ClusterStatus(BaseModel):
    cluster: ClusterInfo | None  # None: not made by `cluster create` (the plain lab)
    members: list[MemberOut]
    voters: list[str]
    learners: list[str]
    healthy_voters: list[str]
    quorum: bool
    leader: str | None
    witnesses: list[str]
    hosts: list[HostOut]


def status_from(info: ClusterInfo | None, members: Sequence[Member],
                statuses: Sequence[EndpointStatus], hosts: Mapping[str, ClusterHost],
                agents: Mapping[str, AgentFacts]) -> ClusterStatus:
    summary = summarize(members, statuses)
    healthy = set(summary.healthy_voters)
    by_member = {h.member_id: h for h in hosts.values() if h.member_id is not None}
    member_ids = {m.id for m in members}
    out_members = []
    for m in members:
        host = by_member.get(m.id)
        label = member_label(m)
        out_members.append(MemberOut(
            name=label, id=f"{m.id:x}", host=host.name if host else None,
            role=host.role if host else None, voter=not m.is_learner, started=m.started,
            healthy=label in healthy, leader=label == summary.leader,
            peer_urls=list(m.peer_urls), client_urls=list(m.client_urls)))
    out_hosts = []
    for name in sorted(set(hosts) | set(agents)):
        host = hosts.get(name)
        agent = agents.get(name)
        role: HostRole = host.role if host else "host"
        member_id = host.member_id if host else None
        out_hosts.append(HostOut(
            name=name, role=role,
            address=host.address if host else (agent.address if agent else None),
            member=f"{member_id:x}" if member_id is not None else None,
            in_etcd=member_id in member_ids,
            agent_online=None if role == "witness" else bool(agent and agent.online),
            lease_ttl=agent.lease_ttl if agent else None))
    return ClusterStatus(
        cluster=info, members=out_members, voters=list(summary.voters),
        learners=list(summary.learners), healthy_voters=list(summary.healthy_voters),
        quorum=summary.has_quorum, leader=summary.leader,
        witnesses=sorted(h.name for h in hosts.values() if h.role == "witness"),
        hosts=out_hosts)
