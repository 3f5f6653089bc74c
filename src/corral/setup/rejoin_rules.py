"""Whether the cluster takes back a host it was rebuilt without (`corral cluster rejoin`), as
plain data. Pure: `setup.admission` reads etcd and acts on these.

The host's credential is its certificate: the cluster CA signed it for exactly this host
(its CN is the host's etcd user, `join_rules.member_name`), and the TLS handshake verified
it. It is taken back only as the host the cluster recorded, and only when that host's etcd
member is no longer in the member list: a host that still is a member has nothing to rejoin,
and a second member at its address would break the cluster's count of voters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel

from corral.cluster.membership import Member, member_label
from corral.cluster.models import ClusterHost, HostRole
from corral.setup.join_rules import Refusal, member_name


class RejoinBundle(BaseModel):
    """What a host taken back is told: enough to start its etcd member afresh as a learner.
    It keeps its certificates."""

    cluster: str
    epoch: int
    name: str
    role: HostRole
    etcd_name: str
    member_id: str  # hex, as etcdctl shows it
    initial_cluster: str
    etcd_endpoints: list[str]


def host_of(cn: str, hosts: Mapping[str, ClusterHost]) -> ClusterHost | None:
    """The recorded host or witness whose certificate has this CN."""
    return next((h for h in hosts.values() if member_name(h.name, h.role) == cn), None)


def rejoin_refusal(cn: str | None, hosts: Mapping[str, ClusterHost],
                   members: Sequence[Member]) -> Refusal | None:
    """Why the client with this verified certificate CN may not rejoin, or None."""
    if cn is None:
        return Refusal("forbidden", "a rejoin is authenticated by the host's own certificate: "
                       "none was shown (run `corral cluster rejoin` on the host, as root)")
    host = host_of(cn, hosts)
    if host is None:
        return Refusal("forbidden", f"certificate CN {cn!r} names no host or witness this "
                       "cluster recorded: only a host the cluster dropped rejoins (a new one "
                       "joins with a token)")
    if not host.peer_urls or not host.client_urls:
        return Refusal("conflict", f"{host.name}: its record has no etcd peer or client URL "
                       "to rejoin at")
    by_id = {m.id: m for m in members}
    if host.member_id is not None and host.member_id in by_id:
        return Refusal("conflict", f"{host.name} is still a member of the cluster (etcd "
                       f"member {member_label(by_id[host.member_id])}): there is nothing to "
                       "rejoin")
    for m in members:
        clash = set(m.peer_urls) & set(host.peer_urls)
        if m in leftovers(host, members):
            continue
        if clash or m.name == cn:
            return Refusal("conflict", f"{host.name}: etcd member {member_label(m)} already "
                           f"has its name or peer URL ({', '.join(sorted(clash)) or m.name}): "
                           "remove it first")
    return None


def leftovers(host: ClusterHost, members: Sequence[Member]) -> list[Member]:
    """Members at the host's peer URL that never started: an earlier rejoin of it that
    stopped half-way. They are its own, removed before it is added again."""
    return [m for m in members if not m.started and set(m.peer_urls) & set(host.peer_urls)]
