"""Whether this host still belongs to its etcd cluster, from what the endpoints in its config
say, as plain data. Pure: `cluster.members.endpoint_view` asks, the agent and `cluster
status` act on the verdict.

A host left out by `cluster expected 1` on another host still has its old data: its etcd
member knows its old membership (or, once it reached the rebuilt cluster, has stopped:
etcd stops a member the cluster removed). The rebuilt cluster keeps etcd's cluster id, so the
sign is its member list, asked of a member that has a leader: this host's member is not in
it. An endpoint that answers with another cluster id than this host's own member belongs to
another cluster altogether. Anything less certain is no verdict: the host then goes on as
before (without a quorum it gets no lease anyway).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from corral.cluster.membership import EndpointStatus, Member, member_label

Standing = Literal["member", "dropped", "unknown"]
LOG_EVERY = 60.0  # seconds between two loud log lines about it


@dataclass(frozen=True)
class EndpointView:
    """What one endpoint said: its own status and its member list (None: no answer)."""

    endpoint: str
    status: EndpointStatus | None
    members: tuple[Member, ...] | None


@dataclass(frozen=True)
class Verdict:
    standing: Standing
    reason: str


def _lists(members: Sequence[Member], own_id: int | None, own_name: str, own_url: str) -> bool:
    if own_id is not None:
        return any(m.id == own_id for m in members)
    # Without its own member's word, only a list that names it neither by name nor by URL
    # leaves it out (a lab may name its members otherwise than its hosts).
    return any(m.name == own_name or own_url in m.client_urls for m in members)


def standing(own_name: str, own_url: str, views: Sequence[EndpointView]) -> Verdict:
    """This host's standing in its cluster. own_name: its etcd member's name; own_url: its
    member's client URL (its view, when it answered, tells its member and cluster id)."""
    own = next((v.status for v in views if v.endpoint == own_url and v.status), None)
    own_id = own.member_id if own is not None else None
    for v in views:
        if v.endpoint == own_url or v.status is None or v.status.leader == 0:
            continue  # only a member with a leader speaks for a cluster
        if own is not None and own.cluster_id and v.status.cluster_id \
                and v.status.cluster_id != own.cluster_id:
            return Verdict("dropped", f"{v.endpoint} belongs to another etcd cluster (id "
                           f"{v.status.cluster_id:x}, this host's member has "
                           f"{own.cluster_id:x})")
        if v.members is None:
            continue
        if not _lists(v.members, own_id, own_name, own_url):
            names = ", ".join(member_label(m) for m in v.members) or "none"
            which = f"{own_name} ({own_id:x})" if own_id is not None else own_name
            return Verdict("dropped", f"the cluster at {v.endpoint} (members: {names}) no "
                           f"longer lists this host's etcd member {which}")
        return Verdict("member", f"{v.endpoint} lists this host's etcd member")
    if own is not None and own.leader != 0:
        return Verdict("member", "this host's etcd member follows a leader")
    return Verdict("unknown", "no member with a leader answered")


DROPPED_ADVICE = ("The cluster was rebuilt without this host (`corral cluster expected 1` on "
                  "another host): it runs no VMs; run `corral cluster rejoin` on it to join "
                  "again with clean etcd data.")


class DroppedNotice(BaseModel):
    """What the agent of a dropped host leaves in its run dir for `cluster status`."""

    reason: str
    since: float  # when the agent first saw it (wall clock)
    logged_at: float  # when it last said so in its log


def should_log(notice: DroppedNotice | None, now: float, every: float = LOG_EVERY) -> bool:
    """Say it loudly on first sight, then once a minute."""
    return notice is None or now - notice.logged_at >= every


def next_notice(notice: DroppedNotice | None, verdict: Verdict, now: float
                ) -> DroppedNotice | None:
    """The notice to keep after this verdict: None once the host is a member again (or no
    longer knows), the earlier one carried on (its log time moved on when it is said
    again) while it is dropped."""
    if verdict.standing != "dropped":
        return None
    logged = now if should_log(notice, now) else (notice.logged_at if notice else now)
    since = notice.since if notice is not None else now
    return DroppedNotice(reason=verdict.reason, since=since, logged_at=logged)
