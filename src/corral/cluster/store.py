"""A thin, typed layer over etcd: the single source of truth of a Corral cluster.

Every value is a pydantic model serialised as JSON; reads validate, writes validate. Writes
that must not race (a new VM, a placement change, claiming a task) are etcd transactions
conditioned on what was read.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import aetcd
import aetcd.exceptions
import aetcd.transactions
import aetcd.utils
import aetcd.watcher
import grpc
from aetcd import rpc
from pydantic import BaseModel

from corral.aio import cancel_and_wait
from corral.cluster import keys, records
from corral.cluster.models import VM, Node, Placement, StorageConfig, Task, VMConfig, VMRuntime
from corral.cluster.records import dump, load_or_raise
from corral.cluster.snapshot import ClusterSnapshot, snapshot_from
from corral.metrics.instruments import timed_etcd_call
from corral.pki.files import TLSFiles

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)

StoreError = aetcd.exceptions.ClientError
StoreUnavailable = aetcd.exceptions.ConnectionTimeoutError
# Unavailable ("leader changed", "no leader", a member down) or a timeout (a member frozen or
# cut off, until keepalive drops it): sent again for a few seconds; a new leader is usually
# elected within one or two. A timed-out write may have been applied all the same, so every
# conditional write below checks, when its condition fails, whether the value is already ours.
RETRYABLE = (aetcd.exceptions.ConnectionFailedError, aetcd.exceptions.ConnectionTimeoutError)
RETRY_FOR_SECONDS = 8.0
MEMBERS_EVERY_SECONDS = 30.0
OLD_CLIENT_GRACE_SECONDS = 30.0
LIST_PAGE = 2000  # keys per message of a listing (a VM is a few keys of under 1 KiB)
# A request etcd took in while a change of its users or roles was being applied (removing a
# host's user does that) is refused when applied, unapplied, with this: etcd's own client
# sends it again, and so does this one.
AUTH_OLD_REVISION = "revision of auth store is old"

# Round robin over the members, each watched by gRPC's health service (etcd serves it): that
# stream keeps every member's connection busy. etcd takes keepalive pings on a connection
# without a stream as abuse (GOAWAY too_many_pings after three), and gRPC then doubles its
# keepalive time for good: an idle client would notice a dead member later and later.
SERVICE_CONFIG = json.dumps({
    "loadBalancingConfig": [{"round_robin": {}}],
    "healthCheckConfig": {"serviceName": ""},
})


def _retryable(error: Exception) -> bool:
    return isinstance(error, RETRYABLE) or (
        isinstance(error, aetcd.exceptions.InvalidArgumentError)
        and AUTH_OLD_REVISION in str(error))


class _RetryingClient:
    """The aetcd client, with every call retried on transient unavailability."""

    def __init__(self, client: aetcd.Client) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not asyncio.iscoroutinefunction(attr):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await _retrying(lambda: attr(*args, **kwargs))

        return timed_etcd_call(name, call)

    @property
    def unwrapped(self) -> Any:
        return self._client

    async def kv_range(self, request: Any) -> Any:
        """A raw Range (aetcd has no paged or at-revision read), with aetcd's error types."""
        async def once() -> Any:
            await self._client.connect()
            try:
                return await self._client.kvstub.Range(request, timeout=self._client._timeout,
                                                       metadata=self._client.metadata)
            except grpc.aio.AioRpcError as e:
                aetcd.exceptions._handle_exception(e)

        return await timed_etcd_call("kv_range", _retrying)(once)


async def _retrying(call: Callable[[], Awaitable[Any]]) -> Any:
    delay, waited = 0.1, 0.0
    while True:
        try:
            return await call()
        except StoreError as e:
            if not _retryable(e) or waited >= RETRY_FOR_SECONDS:
                raise
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, 1.0)


# gRPC dials a list of addresses, so there is no one host name to check a member's certificate
# against: every member's certificate names this one (a DNS SAN), and the client checks that.
ETCD_TLS_NAME = "corral-etcd"


class _TLSClient(aetcd.Client):  # type: ignore[misc]
    """aetcd's client over TLS: aetcd 1.0.0 dials only insecure channels. The same wiring as
    aetcd's `connect` (user/password authentication aside: the certificate's CN is the user),
    over a secure channel."""

    _is_connecting: bool
    _connected: asyncio.Event

    def __init__(self, credentials: grpc.ChannelCredentials, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._credentials = credentials

    async def connect(self) -> None:
        if self._connected.is_set():
            return
        if self._is_connecting:  # another task is connecting: wait for it
            async with asyncio.timeout(self._connect_wait_timeout):
                await self._connected.wait()
            return
        try:
            self._is_connecting = True
            self.channel = rpc.secure_channel(f"{self._host}:{self._port}", self._credentials,
                                              options=list(self._options.items()))
            self.auth_stub = rpc.AuthStub(self.channel)
            self.kvstub = rpc.KVStub(self.channel)
            self.clusterstub = rpc.ClusterStub(self.channel)
            self.leasestub = rpc.LeaseStub(self.channel)
            self.maintenancestub = rpc.MaintenanceStub(self.channel)
            self._watcher = aetcd.watcher.Watcher(rpc.WatchStub(self.channel),
                                                  timeout=self._timeout, metadata=self.metadata)
            self._connected.set()
        finally:
            self._is_connecting = False


def _target(endpoints: Sequence[str]) -> tuple[str, int]:
    """aetcd dials "<host>:<port>"; gRPC's ipv4 resolver takes a comma list, so the client fails
    over between etcd members when one goes down."""
    addrs = [e.removeprefix("http://").removeprefix("https://") for e in endpoints]
    if not addrs:
        raise ValueError("at least one etcd endpoint is needed")
    host, _, port = addrs[-1].rpartition(":")
    head = ",".join(addrs[:-1])
    return (f"ipv4:{head},{host}" if head else host), int(port)


class _LeaseOf(aetcd.transactions.BaseCompare):  # type: ignore[misc]
    """Compare the lease a key is bound to (etcd's LEASE target; aetcd has no helper). A
    missing key compares as lease 0, so an expired lease never matches."""

    def build_compare(self, compare: Any) -> None:
        compare.target = rpc.Compare.LEASE
        compare.lease = int(self.value)


@dataclass(frozen=True)
class OwnershipRead:
    """One VM and this host's lease as one etcd transaction saw them, at one revision."""

    vmid: int
    vm: VM | None  # None: no such VM
    lease_alive: bool  # the host's alive key is bound to the lease asked about
    migration: bytes | None  # the VM's migration record, undecoded (it is migration's model)
    revision: int


@dataclass(frozen=True)
class WatchEvent:
    key: str
    value: bytes | None  # None: the key was deleted
    revision: int


class Store:
    def __init__(self, endpoints: Sequence[str], timeout: float = 5.0,
                 tls: TLSFiles | None = None, follow_members: bool = False) -> None:
        """`tls`: the CA to trust and the certificate to present; etcd then takes the
        certificate's CN as the user (when its authentication is on). `follow_members`: on
        connecting, add every member's client URL the cluster lists to the endpoints (a
        host's config may predate members that joined after it)."""
        self.endpoints = list(endpoints)
        self.tls = tls
        self.timeout = timeout
        self.follow_members = follow_members
        self.client: Any = _RetryingClient(self._client(self.endpoints))
        self._background: set[asyncio.Task[None]] = set()

    def _client(self, endpoints: Sequence[str]) -> Any:
        host, port = _target(endpoints)
        timeout, tls = self.timeout, self.tls
        options: dict[str, Any] = {
            "grpc.service_config": SERVICE_CONFIG,
            "grpc.initial_reconnect_backoff_ms": 200,
            "grpc.max_reconnect_backoff_ms": 1000,
            # A member cut off by the network (no RST) or hung must drop out of the round
            # robin within seconds, not after TCP gives up. 5 s is the most often etcd's
            # default --grpc-keepalive-min-time allows. A keepalive ping waits at most the
            # lesser of the two timeouts, and grpcio's ping timeout is a minute by default:
            # with it alone, a stopped member kept every call routed to it waiting for its
            # deadline for 60 s.
            "grpc.keepalive_time_ms": 5000,
            "grpc.keepalive_timeout_ms": 1000,
            "grpc.http2.ping_timeout_ms": 1000,
            "grpc.keepalive_permit_without_calls": 1,
            "grpc.http2.max_pings_without_data": 0,
            # A watch catching up sends many revisions in one message.
            "grpc.max_receive_message_length": 64 * 1024 * 1024,
        }
        if tls is None:
            return aetcd.Client(host=host, port=port, timeout=timeout, options=options)
        options["grpc.ssl_target_name_override"] = ETCD_TLS_NAME
        return _TLSClient(tls.grpc_credentials(), host=host, port=port, timeout=timeout,
                          options=options)

    async def __aenter__(self) -> Store:
        await self.client.connect()
        if self.follow_members:
            try:
                await self._follow_members()
            except Exception as e:  # the endpoints given still serve; say why, carry on
                log.warning("cannot list the etcd members to dial them all: %s", e)
            self._in_background(self._keep_following_members(), "etcd-members")
        return self

    def _in_background(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)  # a finished one is not kept

    async def _keep_following_members(self) -> None:
        """Members that join while this process runs are dialled too, so a host that joined
        early still reaches the cluster when its own member goes down."""
        while True:
            await asyncio.sleep(MEMBERS_EVERY_SECONDS)
            try:
                await self._follow_members()
            except Exception as e:
                log.debug("cannot list the etcd members: %s", e)

    async def _follow_members(self) -> None:
        """Dial every member the cluster lists, not only those the caller knew of: a host
        whose own member dies must still reach the others."""
        reply = await self.client.clusterstub.MemberList(rpc.MemberListRequest(),
                                                         timeout=self.timeout)
        urls = [u for m in reply.members if not m.isLearner for u in m.clientURLs]
        missing = [u for u in urls if u not in self.endpoints]
        if not missing:
            return
        endpoints = [*self.endpoints, *missing]
        fresh = _RetryingClient(self._client(endpoints))
        await fresh.connect()
        old, self.client, self.endpoints = self.client, fresh, endpoints
        # Calls and watches still on the old client finish there, or fail and are made again
        # on this one; it is closed once they had time to.
        self._in_background(self._close_later(old), "etcd-old-client")
        log.info("etcd endpoints: %s (added the members %s)", ", ".join(endpoints),
                 ", ".join(missing))

    async def _close_later(self, old: _RetryingClient) -> None:
        try:
            await asyncio.sleep(OLD_CLIENT_GRACE_SECONDS)
        finally:
            with contextlib.suppress(Exception):
                await old.close()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        running = list(self._background)
        await cancel_and_wait(running)
        self._background.clear()
        with contextlib.suppress(Exception):
            await self.client.close()

    # --- generic ---------------------------------------------------------------------------

    async def get(self, key: str, cls: type[M]) -> tuple[M | None, int]:
        """The model at key and its mod revision (0 when absent); UnreadableRecord when it is
        there but does not decode."""
        kv = await self.client.get(key.encode())
        if kv is None:
            return None, 0
        return load_or_raise(cls, key, kv.value), int(kv.mod_revision)

    async def put(self, key: str, model: BaseModel, lease: Any = None) -> None:
        await self.client.put(key.encode(), dump(model), lease=lease)

    async def delete(self, key: str) -> None:
        await self.client.delete(key.encode())

    async def raw_prefix(self, prefix: str) -> list[tuple[str, bytes, int]]:
        return (await self.snapshot(prefix))[0]

    async def snapshot(self, prefix: str) -> tuple[list[tuple[str, bytes, int]], int]:
        """Keys under prefix with their mod revisions, and the store revision they were read
        at: a watch from revision + 1 then misses nothing. Read in pages, all at the first
        page's revision, so a large cluster is one consistent listing without one huge
        message."""
        key = prefix.encode()
        end = aetcd.utils.prefix_range_end(key)
        items: list[tuple[str, bytes, int]] = []
        revision = 0
        while True:
            reply = await self._range(key, end, revision)
            revision = revision or int(reply.header.revision)
            items += [(kv.key.decode(), kv.value, int(kv.mod_revision)) for kv in reply.kvs]
            if not reply.more:
                return items, revision
            key = reply.kvs[-1].key + b"\0"

    async def _range(self, key: bytes, end: bytes, revision: int) -> Any:
        request = rpc.RangeRequest(key=key, range_end=end, limit=LIST_PAGE, revision=revision)
        return await self.client.kv_range(request)

    async def current_revision(self) -> int:
        """etcd's revision now (a linearizable read of one small key)."""
        reply = await self.client.get_prefix(keys.MANAGER.encode(), keys_only=True)
        return int(reply.header.revision)

    def watch_channel(self) -> tuple[Any, Any]:
        """The gRPC channel and call metadata a raw watch stream uses (`watch_stream`)."""
        return self.client.channel, self.client.metadata

    async def watch_prefix(self, prefix: str, start_revision: int | None = None
                           ) -> AsyncIterator[WatchEvent]:
        """Events under prefix, forever; reconnects (resuming at the next revision) when the
        etcd member behind the stream goes away."""
        next_rev = start_revision
        while True:
            try:
                watch = await self.client.watch_prefix(prefix.encode(), start_revision=next_rev)
                try:
                    async for ev in watch:
                        rev = int(ev.kv.mod_revision)
                        next_rev = rev + 1
                        value = None if ev.kind == "DELETE" else ev.kv.value
                        yield WatchEvent(ev.kv.key.decode(), value, rev)
                finally:
                    with contextlib.suppress(Exception):
                        await watch.cancel()
            except aetcd.exceptions.RevisionCompactedError:
                next_rev = None
            except (aetcd.exceptions.ClientError, OSError) as e:
                log.debug("watch on %s broke (%s); reconnecting", prefix, e)
            await asyncio.sleep(0.5)

    # --- leases ----------------------------------------------------------------------------

    async def grant_lease(self, ttl: int) -> Any:
        return await self.client.lease(ttl)

    async def refresh_lease(self, lease: Any) -> int:
        """Refresh and return the remaining TTL; 0 or less means the lease is gone."""
        # Through the client in use now (the lease may predate a switch to more members),
        # and once: the caller times its own renewals.
        reply = await self.client.unwrapped.refresh_lease(lease.id)
        return int(reply[0].TTL) if isinstance(reply, list) else int(reply.TTL)

    async def revoke_lease(self, lease: Any) -> None:
        await self.client.unwrapped.revoke_lease(lease.id)

    async def lease_remaining(self, key: str) -> int | None:
        """Seconds left on the lease `key` is bound to; None when the key is absent or bound
        to none."""
        kv = await self.client.get(key.encode())
        if kv is None or not kv.lease:
            return None
        ttl = int((await self.client.get_lease_info(kv.lease, keys=False)).TTL)
        return ttl if ttl >= 0 else None

    # --- nodes -----------------------------------------------------------------------------
    # The list reads return what decodes; `read_snapshot` (and `records`) report the rest.

    async def nodes(self) -> list[Node]:
        return records.nodes_from(await self.raw_prefix(keys.NODES))[0]

    async def node(self, name: str) -> Node | None:
        f = {key.rsplit("/", 1)[1]: value
             for key, value, _ in await self.raw_prefix(f"{keys.NODES}{name}/")}
        return records.node_from(name, f) if f else None

    # --- storage ---------------------------------------------------------------------------

    async def storages(self) -> dict[str, StorageConfig]:
        return records.storages_from(await self.raw_prefix(keys.STORAGE))[0]

    async def put_storage(self, storage: StorageConfig) -> None:
        await self.put(keys.storage(storage.id), storage)

    # --- VMs -------------------------------------------------------------------------------

    async def vms(self) -> list[VM]:
        """The VMs that decode (see `records.unreadable_vms` for the others)."""
        return records.vms_from(await self.raw_prefix(keys.VMS))[0]

    async def vms_and_unreadable(self) -> tuple[list[VM], frozenset[int]]:
        """The VMs that decode, and the ids of those that exist but do not: whatever stops or
        deletes what it does not find must leave those alone."""
        vms, problems = records.vms_from(await self.raw_prefix(keys.VMS))
        return vms, records.unreadable_vms(problems)

    async def vm(self, vmid: int) -> VM | None:
        """None when the VM does not exist; UnreadableRecord when it exists but its config or
        placement does not decode (it is not gone: do not act as if it were)."""
        f = {key.rsplit("/", 1)[1]: (value, rev)
             for key, value, rev in await self.raw_prefix(f"{keys.VMS}{vmid}/")}
        return records.vm_or_raise(vmid, f)

    async def next_vmid(self) -> int:
        return records.first_free_vmid(
            v for k, _, _ in await self.raw_prefix(keys.VMS)
            if (v := records.vmid_of(k)) is not None)

    async def create_vm(self, config: VMConfig, placement: Placement,
                        task: Task | None = None) -> bool:
        """Create config, placement and the name claim at once, only if neither the vmid nor the
        name is taken; with `task`, queue it in the same write, so a VM is never left without
        the task that makes its disks (and the request costs one write, not two)."""
        t = self.client.transactions
        cfg_key = keys.vm(config.vmid, "config").encode()
        name_key = keys.name(config.name).encode()
        writes = [
            t.put(cfg_key, dump(config)),
            t.put(keys.vm(config.vmid, "placement").encode(), dump(placement)),
            t.put(name_key, str(config.vmid).encode()),
        ]
        compare = [t.version(cfg_key) == 0, t.version(name_key) == 0]
        if task is not None:
            task_key = keys.task(task.id).encode()
            writes.append(t.put(task_key, dump(task)))
            compare.append(t.version(task_key) == 0)
        ok, _ = await self.client.transaction(compare=compare, success=writes, failure=[])
        if ok:
            return True
        # Refused, or applied by an earlier attempt whose answer was lost: only the latter
        # finds every record as this call would have written it.
        mine, _ = await self.get(keys.vm(config.vmid, "config"), VMConfig)
        placed, _ = await self.get(keys.vm(config.vmid, "placement"), Placement)
        # The task's id is random and may already have been claimed (its state moved on).
        queued = task is None or (await self.client.get(keys.task(task.id).encode())) is not None
        return (mine == config and placed == placement and queued
                and await self.name_taken(config.name) == config.vmid)

    async def name_taken(self, name: str) -> int | None:
        kv = await self.client.get(keys.name(name).encode())
        return records.name_owner(name, None if kv is None else kv.value)

    async def set_config(self, config: VMConfig, expect_rev: int) -> bool:
        """Write a VM's config only if nobody changed it since expect_rev was read (and it
        still exists)."""
        t = self.client.transactions
        key = keys.vm(config.vmid, "config").encode()
        ok, _ = await self.client.transaction(
            compare=[t.mod(key) == expect_rev, t.version(key) > 0],
            success=[t.put(key, dump(config))],
            failure=[],
        )
        return bool(ok)

    async def set_placement(self, vmid: int, placement: Placement, expect_rev: int) -> bool:
        """Write placement only if nobody changed it since expect_rev was read."""
        t = self.client.transactions
        key = keys.vm(vmid, "placement").encode()
        ok, _ = await self.client.transaction(
            compare=[t.mod(key) == expect_rev],
            success=[t.put(key, dump(placement))],
            failure=[],
        )
        # Placements carry a generation, so an equal value is this write, applied earlier.
        return bool(ok) or (await self.get(key.decode(), Placement))[0] == placement

    async def read_ownership(self, vmid: int, node: str, lease_id: int) -> OwnershipRead:
        """In one transaction: is `node`'s alive key bound to lease `lease_id`, and what is
        the VM's record (placement, migration) at that same revision. The caller decides
        (`agent.reconciler.ownership_refusal`) and must act right after, as etcd can change
        the moment this returns."""
        t = self.client.transactions
        alive = keys.node(node, "alive").encode()
        prefix = f"{keys.VMS}{vmid}/".encode()
        reads = [t.get(prefix, aetcd.utils.prefix_range_end(prefix)), t.get(alive)]
        ok, responses = await self.client.transaction(
            compare=[_LeaseOf(alive) == int(lease_id)], success=reads, failure=reads)
        kvs = [meta for kvs in responses for _, meta in kvs]
        revision = int(kvs[0].header.revision) if kvs else 0
        fields = {m.key.decode().rsplit("/", 1)[1]: (m.value, int(m.mod_revision))
                  for m in kvs if m.key.startswith(prefix)}
        migration = fields.get("migration")
        # A VM that exists but does not decode raises UnreadableRecord: nothing is proved.
        return OwnershipRead(vmid=vmid, vm=records.vm_or_raise(vmid, fields),
                             lease_alive=bool(ok),
                             migration=migration[0] if migration else None, revision=revision)

    async def put_while_leased(self, key: str, model: BaseModel, node: str, lease_id: int
                               ) -> bool:
        """Write key only while node's alive key is bound to lease lease_id: what a host
        says of itself counts only from the life that holds the lease. False if not."""
        alive = keys.node(node, "alive").encode()
        ok, _ = await self.client.transaction(
            compare=[_LeaseOf(alive) == int(lease_id)],
            success=[self.client.transactions.put(key.encode(), dump(model))], failure=[])
        return bool(ok)

    async def put_runtime(self, vmid: int, runtime: VMRuntime,
                          placement_rev: int | None = None) -> bool:
        """Only while the VM exists (a late report must not resurrect a deleted VM's keys)
        and, given placement_rev, only while its placement is the one read at that revision
        (a report from a host the VM has left since must not hide where it runs)."""
        t = self.client.transactions
        cfg = keys.vm(vmid, "config").encode()
        compare = [t.version(cfg) > 0]
        if placement_rev is not None:
            compare.append(t.mod(keys.vm(vmid, "placement").encode()) == placement_rev)
        ok, _ = await self.client.transaction(
            compare=compare,
            success=[t.put(keys.vm(vmid, "runtime").encode(), dump(runtime))],
            failure=[],
        )
        return bool(ok)

    async def delete_vm(self, vm: VM) -> bool:
        t = self.client.transactions
        pkey = keys.vm(vm.vmid, "placement").encode()
        ok, _ = await self.client.transaction(
            compare=[t.mod(pkey) == vm.placement_rev],
            success=[
                t.delete(keys.vm(vm.vmid, f).encode()) for f in keys.VM_FIELDS
            ] + [t.delete(keys.name(vm.config.name).encode())],
            failure=[],
        )
        return bool(ok) or await self.vm(vm.vmid) is None

    # --- tasks -----------------------------------------------------------------------------

    async def put_task(self, task: Task) -> None:
        await self.put(keys.task(task.id), task)

    async def create_task(self, task: Task) -> bool:
        """Write task only if no task has its id (as the manager queues its tasks)."""
        t = self.client.transactions
        key = keys.task(task.id).encode()
        ok, _ = await self.client.transaction(
            compare=[t.version(key) == 0], success=[t.put(key, dump(task))], failure=[])
        return bool(ok)

    async def task(self, task_id: str) -> Task | None:
        return (await self.get(keys.task(task_id), Task))[0]

    async def tasks(self) -> list[Task]:
        return records.tasks_from(await self.raw_prefix(keys.TASKS))[0]

    async def claim_task(self, task: Task, expect_rev: int, claimed: Task) -> bool:
        t = self.client.transactions
        key = keys.task(task.id).encode()
        ok, _ = await self.client.transaction(
            compare=[t.mod(key) == expect_rev], success=[t.put(key, dump(claimed))], failure=[]
        )
        # A claim carries its start time, so an equal record is this claim, applied earlier.
        return bool(ok) or (await self.get(key.decode(), Task))[0] == claimed

    # --- auth ------------------------------------------------------------------------------

    async def add_token(self, token: str) -> None:
        await self.client.put(keys.token(token_digest(token)).encode(), b"{}")

    async def token_valid(self, token: str) -> bool:
        return await self.client.get(keys.token(token_digest(token)).encode()) is not None


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def read_snapshot(store: Store, now: float) -> ClusterSnapshot:
    """Everything under /corral/ in a single etcd read, so the parts agree with each other."""
    items, revision = await store.snapshot(keys.PREFIX)
    return snapshot_from(items, revision, now)
