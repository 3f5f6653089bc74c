"""etcd membership as plain data: members, what each endpoint says of itself, and whether the
voters hold a majority. Pure; `cluster.members` reads these from etcd."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Member:
    id: int
    name: str  # empty until an added member has started
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]
    is_learner: bool

    @property
    def started(self) -> bool:
        return bool(self.name)


@dataclass(frozen=True)
class EndpointStatus:
    """What one member says of itself and of its cluster."""

    endpoint: str
    member_id: int
    leader: int  # 0: it knows no leader (an election is on, or it is cut off)
    raft_term: int
    raft_index: int
    is_learner: bool
    db_size: int  # bytes
    # etcd's cluster id as this member knows it (0: not known). `--force-new-cluster` keeps
    # it: a rebuilt cluster and its dropped members still share it.
    cluster_id: int = 0

    @property
    def is_leader(self) -> bool:
        return self.leader != 0 and self.leader == self.member_id


def quorum(voters_total: int, voters_healthy: int) -> bool:
    """A strict majority of the voters: what etcd needs to elect a leader and commit. Learners
    do not count; no voters at all is no quorum."""
    return voters_total > 0 and voters_healthy > voters_total // 2


@dataclass(frozen=True)
class Summary:
    voters: tuple[str, ...]  # member names (the id in hex for one not started yet)
    learners: tuple[str, ...]
    healthy_voters: tuple[str, ...]  # voters that answered and follow a leader
    leader: str | None
    has_quorum: bool


def member_label(member: Member) -> str:
    return member.name or f"{member.id:x}"


def summarize(members: Sequence[Member], statuses: Sequence[EndpointStatus]) -> Summary:
    """The cluster as `members` (one member's list) and the endpoints that answered see it."""
    by_id = {m.id: m for m in members}
    answered = {s.member_id: s for s in statuses if s.member_id in by_id}
    voters = [m for m in members if not m.is_learner]
    healthy = [m for m in voters if m.id in answered and answered[m.id].leader != 0]
    leaders = {s.leader for s in answered.values() if s.leader in by_id}
    leader = by_id[leaders.pop()] if len(leaders) == 1 else None
    return Summary(
        voters=tuple(member_label(m) for m in voters),
        learners=tuple(member_label(m) for m in members if m.is_learner),
        healthy_voters=tuple(member_label(m) for m in healthy),
        leader=member_label(leader) if leader else None,
        has_quorum=quorum(len(voters), len(healthy)),
    )


def initial_cluster(members: Sequence[Member], new_id: int, new_name: str
                    ) -> list[tuple[str, str]]:
    """The (name, peer URL) pairs a newly added member starts with: every member, itself
    under the name it starts as. etcd refuses a joining member whose initial cluster has not
    exactly the cluster's members, so another member that was added but never started (a join
    that failed half-way) must be removed first: ValueError names it."""
    pairs: list[tuple[str, str]] = []
    for m in members:
        name = new_name if m.id == new_id else m.name
        if not name:
            raise ValueError(f"member {m.id:x} ({', '.join(m.peer_urls)}) was added but never "
                             "started: remove it before another member joins")
        pairs += [(name, url) for url in m.peer_urls]
    return pairs


def never_started(members: Sequence[Member]) -> list[Member]:
    """Members added but never started: what a join that failed half-way leaves behind."""
    return [m for m in members if not m.started]
