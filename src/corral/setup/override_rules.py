"""Whether `corral cluster expected 1` may rebuild the cluster around this host, and the
record it leaves, as plain data. Pure: `setup.override` reads etcd and acts on these.

The override is for a lone survivor only. It is refused while the voters hold a quorum
(nothing to override), and while any other voter answers: then this host is not alone, and a
one-member cluster beside members that still form (or may form again) a majority would be
two clusters running the same VMs.
"""

from __future__ import annotations

from collections.abc import Sequence

from corral.cluster.membership import EndpointStatus, Member, member_label, summarize
from corral.cluster.models import ClusterInfo, EpochOverride


def override_refusal(own: EndpointStatus | None, members: Sequence[Member],
                     statuses: Sequence[EndpointStatus]) -> str | None:
    """Why this host must not rebuild the cluster as a one-member cluster of its own, or
    None when it may. `own` is what this host's etcd member says of itself (None: it does
    not answer); `statuses` what every member that answered says (its own included)."""
    if own is None:
        return ("this host's etcd member does not answer: start it first (the override "
                "rebuilds the cluster from its data)")
    me = next((m for m in members if m.id == own.member_id), None)
    if me is None:
        return (f"this host's etcd member {own.member_id:x} is not in its own member list: "
                "it is no member of this cluster")
    if me.is_learner:
        return (f"{member_label(me)} is a learner: its data may be behind the cluster's; only "
                "a voter may carry the cluster on")
    summary = summarize(members, statuses)
    if summary.has_quorum:
        return (f"the cluster has its quorum ({len(summary.healthy_voters)} of "
                f"{len(summary.voters)} voters healthy, leader {summary.leader or '-'}): "
                "there is nothing to override")
    others = sorted(member_label(m) for m in members
                    if m.id != me.id and not m.is_learner
                    and any(s.member_id == m.id for s in statuses))
    if others:
        return (f"other voters answer ({', '.join(others)}): an override beside members that "
                "are alive would split the cluster in two; bring the missing voters back "
                "instead")
    return None


def dropped(members: Sequence[Member], own_id: int) -> list[Member]:
    """The members the rebuilt cluster leaves out: all but this host's."""
    return [m for m in members if m.id != own_id]


def next_epoch(info: ClusterInfo, host: str, user: str, at: float,
               left_out: Sequence[Member]) -> ClusterInfo:
    """The cluster record after an override: a new epoch, and who made it when."""
    epoch = info.epoch + 1
    record = EpochOverride(epoch=epoch, host=host, user=user, at=at,
                           dropped=[member_label(m) for m in left_out])
    return info.model_copy(update={"epoch": epoch, "overrides": [*info.overrides, record]})
