"""Removing a host or witness from the cluster: its etcd member, its etcd user and its
ClusterHost record, refused (`removal_rules`) when it would cost the cluster its quorum."""

from __future__ import annotations

import logging

from pydantic import BaseModel

from corral.cluster import etcd_auth, keys, members
from corral.cluster.store import Store
from corral.pki.files import TLSFiles
from corral.setup.admission import AdmissionError, read_hosts, refuse
from corral.setup.join_rules import Refusal, member_name
from corral.setup.removal_rules import find_target, removal_refusal

log = logging.getLogger(__name__)


class Removed(BaseModel):
    name: str
    member: str | None  # the etcd member removed, hex; None: there was none
    user: str | None  # the etcd user removed
    record: bool  # its ClusterHost record was removed


async def remove_member(store: Store, admin: Store, name: str,
                        tls: TLSFiles | None = None) -> Removed:
    """`admin` presents the root certificate; `tls` is what asks each member its status."""
    current = await members.list_members(admin)
    hosts, _ = await read_hosts(store)
    target = find_target(name, current, hosts)
    if target is None:
        raise AdmissionError(Refusal("not_found", f"{name!r} is no host, witness or etcd "
                                     "member of this cluster"))
    member = target.member
    if member is not None:
        urls = [m.client_urls[0] for m in current if m.client_urls]
        statuses = [s for s in await members.endpoint_statuses(urls, tls) if s is not None]
        reason = removal_refusal(member, current, statuses)
        if reason is not None:
            refuse(Refusal("conflict", f"refused: {reason}"))
        try:
            await members.remove(admin, member.id)
        except members.MembershipError as e:
            raise AdmissionError(Refusal("conflict", f"etcd refused the removal: {e}")) from e
    if target.host is not None:
        user: str | None = member_name(target.host.name, target.host.role)
    else:
        user = member.name if member is not None and member.name else None
    if user == etcd_auth.ROOT:  # never a host's user (the name is reserved), but be sure
        user = None
    if user is not None:
        await etcd_auth.remove_user(admin, user)
    if target.host is not None:
        await store.delete(keys.cluster_host(target.host.name))
    log.info("removed %s (etcd member %s, user %s)", name,
             f"{member.id:x}" if member else "none", user or "none")
    return Removed(name=name, member=f"{member.id:x}" if member else None, user=user,
                   record=target.host is not None)
