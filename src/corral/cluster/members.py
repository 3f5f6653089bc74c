"""etcd membership over gRPC: list, add a learner, promote it, remove, and each endpoint's
status. Changes need etcd's root user once its authentication is on (the admin
certificate); listing and status do not.

A new member joins as a learner: it receives the log without voting, so adding it never
changes the quorum; it is promoted to a voter once it has caught up (etcd refuses earlier).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

import grpc
from aetcd import rpc

from corral.cluster.membership import (  # the pure side, here for those who list members
    EndpointStatus,
    Member,
    Summary,
    quorum,
    summarize,
)
from corral.cluster.standing import EndpointView
from corral.cluster.store import Store
from corral.pki.files import TLSFiles

__all__ = ["EndpointStatus", "Member", "MembershipError", "Summary", "add_learner",
           "endpoint_status", "endpoint_statuses", "endpoint_view", "endpoint_views",
           "list_members", "promote", "quorum",
           "remove", "summarize"]

# What etcd says while a learner is still behind: worth asking again.
_NOT_READY = ("can only promote a learner member which is in sync with leader",
              "learner member not ready")
# What etcd says when removing a voter would leave fewer voters that have been connected for
# 5 s than a majority, or when adding a member while a voter has not been connected for 5 s:
# for good while one is down, for a moment after a member (re)joined.
_UNHEALTHY = ("unhealthy cluster",)
RPC_TIMEOUT = 5.0


class MembershipError(RuntimeError):
    """etcd refused a membership change; the message is etcd's reason."""


def _member(m: Any) -> Member:
    return Member(id=int(m.ID), name=str(m.name), peer_urls=tuple(m.peerURLs),
                  client_urls=tuple(m.clientURLs), is_learner=bool(m.isLearner))


async def _call(stub_method: Any, request: Any, what: str) -> Any:
    try:
        return await stub_method(request, timeout=RPC_TIMEOUT)
    except grpc.aio.AioRpcError as e:
        raise MembershipError(f"{what}: {e.details()}") from e


async def list_members(store: Store) -> list[Member]:
    reply = await _call(store.client.clusterstub.MemberList, rpc.MemberListRequest(),
                        "member list")
    return [_member(m) for m in reply.members]


async def add_learner(store: Store, peer_urls: Sequence[str], within: float = 10.0,
                      every: float = 0.5) -> tuple[Member, list[Member]]:
    """Add a learner with these peer URLs: the new member (not started: no name yet) and the
    membership after the change, from which it takes its initial cluster
    (`membership.initial_cluster`). Asked again for at most `within` seconds while etcd says
    the cluster is unhealthy: it adds no member, not even a learner, until every voter has
    been connected for 5 s, so for a moment after another member joined (and for good while
    a voter is down)."""
    reply = await _until(lambda: store.client.clusterstub.MemberAdd,
                         rpc.MemberAddRequest(peerURLs=list(peer_urls), isLearner=True),
                         f"add learner {', '.join(peer_urls)}", _UNHEALTHY, within, every)
    return _member(reply.member), [_member(m) for m in reply.members]


async def promote(store: Store, member_id: int, within: float = 60.0,
                  every: float = 0.5) -> list[Member]:
    """Make a learner a voter, asking again while etcd says it has not caught up, for at most
    `within` seconds. Returns the membership after the change."""
    reply = await _until(lambda: store.client.clusterstub.MemberPromote,
                         rpc.MemberPromoteRequest(ID=member_id),
                         f"promote member {member_id:x}", _NOT_READY, within, every)
    return [_member(m) for m in reply.members]


async def remove(store: Store, member_id: int, within: float = 10.0,
                 every: float = 0.5) -> list[Member]:
    """Remove a member, asking again for at most `within` seconds while etcd says the
    cluster is too unhealthy for it (it then keeps refusing while the removal would cost the
    quorum). Returns the membership after the change."""
    reply = await _until(lambda: store.client.clusterstub.MemberRemove,
                         rpc.MemberRemoveRequest(ID=member_id),
                         f"remove member {member_id:x}", _UNHEALTHY, within, every)
    return [_member(m) for m in reply.members]


async def _until(stub_method: Callable[[], Any], request: Any, what: str,
                 transient: Sequence[str], within: float, every: float) -> Any:
    """The call, asked again while etcd's refusal is one of `transient`, up to `within` s.
    The method is looked up for each try: the store may have moved to a new channel."""
    deadline = time.monotonic() + within
    while True:
        try:
            return await _call(stub_method(), request, what)
        except MembershipError as e:
            if not any(s in str(e) for s in transient) or time.monotonic() >= deadline:
                raise
        await asyncio.sleep(every)


async def endpoint_status(endpoint: str, tls: TLSFiles | None = None,
                          timeout: float = 2.0) -> EndpointStatus | None:
    """What the member at this one endpoint says of itself, or None when it does not answer
    in time. Over gRPC: with authentication on, etcd 3.4 refuses its HTTP gateway to a client
    certificate."""
    async with Store([endpoint], timeout=timeout, tls=tls) as store:
        try:
            async with asyncio.timeout(timeout + 1.0):
                s = await store.client.maintenancestub.Status(rpc.StatusRequest(),
                                                              timeout=timeout)
        except (grpc.aio.AioRpcError, TimeoutError):
            return None
    return EndpointStatus(endpoint=endpoint, member_id=int(s.header.member_id),
                          leader=int(s.leader), raft_term=int(s.raftTerm),
                          raft_index=int(s.raftIndex), is_learner=bool(s.isLearner),
                          db_size=int(s.dbSize), cluster_id=int(s.header.cluster_id))


async def endpoint_statuses(endpoints: Sequence[str], tls: TLSFiles | None = None,
                            timeout: float = 2.0) -> list[EndpointStatus | None]:
    """The status of every endpoint, asked at once: a dead member costs one timeout, not one
    each."""
    return list(await asyncio.gather(*(endpoint_status(e, tls, timeout) for e in endpoints)))


async def endpoint_view(endpoint: str, tls: TLSFiles | None = None,
                        timeout: float = 2.0) -> EndpointView:
    """What the member at this endpoint says of itself and which members it lists (served
    from its own state: no quorum needed)."""
    status = await endpoint_status(endpoint, tls, timeout)
    listed: tuple[Member, ...] | None = None
    if status is not None:
        async with Store([endpoint], timeout=timeout, tls=tls) as store:
            try:
                async with asyncio.timeout(timeout + 1.0):
                    reply = await store.client.clusterstub.MemberList(
                        rpc.MemberListRequest(), timeout=timeout)
                listed = tuple(_member(m) for m in reply.members)
            except (grpc.aio.AioRpcError, TimeoutError):
                listed = None
    return EndpointView(endpoint, status, listed)


async def endpoint_views(endpoints: Sequence[str], tls: TLSFiles | None = None,
                         timeout: float = 2.0) -> list[EndpointView]:
    return list(await asyncio.gather(*(endpoint_view(e, tls, timeout) for e in endpoints)))
