"""Gathering `cluster status` from etcd: the members and what each says of itself first (that
needs no quorum: a lone survivor can still say it has none), then, while the voters hold a
quorum, the cluster's records and each host's agent and lease."""

from __future__ import annotations

import asyncio

from corral.cluster import keys, members
from corral.cluster.models import ClusterInfo
from corral.cluster.store import Store, StoreError
from corral.pki.files import TLSFiles
from corral.setup.admission import read_hosts
from corral.setup.status_view import AgentFacts, ClusterStatus, status_from

RECORDS_TIMEOUT = 4.0  # without a quorum the reads never answer: give up and say so


async def gather(store: Store, tls: TLSFiles | None) -> ClusterStatus:
    current = await members.list_members(store)
    statuses = await members.endpoint_statuses(
        [m.client_urls[0] for m in current if m.client_urls], tls)
    answered = [s for s in statuses if s is not None]
    status = status_from(None, current, answered, {}, {})
    if not status.quorum:
        return status
    try:
        async with asyncio.timeout(RECORDS_TIMEOUT):
            info, _ = await store.get(keys.CLUSTER_INFO, ClusterInfo)
            hosts, _ = await read_hosts(store)
            nodes = await store.nodes()
            leases = await asyncio.gather(*(store.lease_remaining(keys.node(n.name, "alive"))
                                            for n in nodes))
    except (TimeoutError, StoreError):
        return status
    agents = {n.name: AgentFacts(n.alive, ttl, n.info.address if n.info else None)
              for n, ttl in zip(nodes, leases, strict=True)}
    return status_from(info, current, answered, hosts, agents)
