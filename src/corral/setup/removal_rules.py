"""Whether a member may be removed from the cluster, as plain data. Pure.

A removal is refused when it would leave fewer than two voters (removing the last but one
voter leaves a cluster that loses its quorum with any one failure, and the last one cannot
go at all), or when the voters left that answer would not be a majority of the voters left
(etcd would stop: nothing could be written, not even to undo it). A learner has no vote, so
removing one changes no quorum.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from corral.cluster.membership import EndpointStatus, Member, member_label, quorum
from corral.cluster.models import ClusterHost
from corral.setup.join_rules import WITNESS_PREFIX

MIN_VOTERS = 2


@dataclass(frozen=True)
class Target:
    """What a removal by `name` removes: the etcd member, the host record, or both."""

    name: str
    member: Member | None
    host: ClusterHost | None


def find_target(name: str, members: Sequence[Member],
                hosts: Mapping[str, ClusterHost]) -> Target | None:
    """The member and host record `name` stands for: a host or witness name, an etcd member
    name, or a member id in hex (a member added but never started has no name); None when
    it names nothing."""
    host = hosts.get(name)
    member = None
    if host is not None and host.member_id is not None:
        member = next((m for m in members if m.id == host.member_id), None)
    if member is None and host is None:
        wanted = {name, WITNESS_PREFIX + name}
        member = (next((m for m in members if m.name in wanted), None)
                  or next((m for m in members if f"{m.id:x}" == name.lower()), None))
    if member is None and host is None:
        return None
    return Target(name, member, host)


def healthy_voter_ids(members: Sequence[Member], statuses: Sequence[EndpointStatus]
                      ) -> set[int]:
    """Voters that answered and follow a leader (as `membership.summarize` counts them)."""
    answered = {s.member_id for s in statuses if s.leader != 0}
    return {m.id for m in members if not m.is_learner and m.id in answered}


def removal_refusal(target: Member, members: Sequence[Member],
                    statuses: Sequence[EndpointStatus]) -> str | None:
    """Why removing `target` would cost the cluster its quorum, or None when it may go."""
    if target.is_learner:
        return None
    label = member_label(target)
    left = [m for m in members if not m.is_learner and m.id != target.id]
    if len(left) < MIN_VOTERS:
        which = "the last voter" if not left else "the last but one voter"
        return (f"{label} is {which}: removing it would leave {len(left)} voter"
                f"{'' if len(left) == 1 else 's'}, and the cluster needs at least "
                f"{MIN_VOTERS} (add a host or a witness first)")
    healthy = healthy_voter_ids(members, statuses)
    alive = [m for m in left if m.id in healthy]
    if not quorum(len(left), len(alive)):
        return (f"removing {label} would leave {len(left)} voters of which {len(alive)} "
                f"answer{'s' if len(alive) == 1 else ''}: not a majority, the cluster would "
                "stop (bring the others back first)")
    return None
