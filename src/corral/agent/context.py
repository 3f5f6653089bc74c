"""What every task handler of a host works with: the host context, the failure a task
reports, and the shared steps that record a VM's state in etcd."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from corral.agent.reconciler import Ownership, Placed, Purpose, ownership_refusal
from corral.cluster.models import VM, RunState, Task, VMRuntime, VMStatus
from corral.cluster.records import UnreadableRecord
from corral.cluster.store import OwnershipRead, Store
from corral.host.ports import PortRange
from corral.qemu.driver import QemuDriver
from corral.storage.volumes import volume_path

log = logging.getLogger(__name__)


class TaskFailed(Exception):
    """A task that cannot be done, with the reason the operator reads."""


class Report(Protocol):
    async def __call__(self, progress: float, line: str) -> None: ...


class LeaseView(Protocol):
    """This host's lease as the agent holds it (`liveness.Liveness`)."""

    @property
    def lease_id(self) -> int | None: ...

    def known_alive(self) -> bool: ...


@dataclass
class HostContext:
    node: str
    data_dir: Path
    store: Store
    driver: QemuDriver
    lease: LeaseView | None = None  # None: no lease, so this host may run no guest
    # QEMU's TLS credentials (`qemu.tls`): migrations to and from this host are encrypted
    # and authenticated. None: a host without the cluster's certificates (a plain lab).
    qemu_tls: Path | None = None
    # Where a migration's streams to this host listen (`--migration-ports`); None: ports the
    # kernel picks from its ephemeral range.
    migration_ports: PortRange | None = None


Handler = Callable[[HostContext, Task, VM, Report], Awaitable[dict[str, Any]]]


async def disk_paths(ctx: HostContext, vm: VM) -> list[Path]:
    storages = await ctx.store.storages()
    return [volume_path(d.volume, storages, ctx.data_dir) for d in vm.config.disks]


async def record(ctx: HostContext, vm: VM, state: RunState | None, status: VMStatus,
                 pid: int | None = None, message: str = "") -> None:
    """Store the run state the VM is now meant to have, and what the host sees of it."""
    if state is not None:
        await set_state(ctx.store, vm.vmid, state, ctx.node)
    await ctx.store.put_runtime(
        vm.vmid,
        VMRuntime(node=ctx.node, status=status, pid=pid, accel=ctx.driver.accel,
                  started_at=time.time() if status is VMStatus.RUNNING else None,
                  message=message),
    )


async def set_state(store: Store, vmid: int, state: RunState, node: str,
                    attempts: int = 5) -> None:
    """Record the run state of a VM this host owns; never of one that moved meanwhile (HA
    recovery, migration): its new host decides that."""
    for _ in range(attempts):
        vm = await store.vm(vmid)
        if vm is None:
            raise TaskFailed(f"VM {vmid} no longer exists")
        if vm.placement.node != node:
            raise TaskFailed(f"VM {vmid} is now placed on {vm.placement.node}")
        if vm.placement.state is state:
            return
        if await store.set_placement(vmid, vm.placement.model_copy(update={"state": state}),
                                     vm.placement_rev):
            return
    raise TaskFailed(f"VM {vmid}: placement kept changing; state not recorded")


# After a lost lease (a freeze, etcd away) the agent registers again within about one renewal
# interval; a proof that failed only on the lease is asked again for this long.
REPROVE_SECONDS = 10.0
REPROVE_EVERY = 0.25


def placed_of(vm: VM | None) -> Placed | None:
    return Placed(vm.vmid, vm.placement.node, vm.placement.state) if vm else None


def ownership_of(read: OwnershipRead, node: str, receive_task: str | None) -> Ownership:
    receiving = False
    if read.migration is not None and receive_task is not None:
        # Decoded as plain JSON: the migration package builds on this module.
        rec = json.loads(read.migration)
        receiving = (rec.get("target") == node and rec.get("receive_task") == receive_task
                     and rec.get("phase") not in ("completed", "aborted"))
    return Ownership(read.vmid, placed_of(read.vm), read.lease_alive, receiving, read.revision)


async def prove_owner(ctx: HostContext, vmid: int, purpose: Purpose,
                      receive_task: str | None = None) -> VM:
    """Raise unless one etcd transaction shows, at one revision, that this host may run the
    guest now (placed here, or the target of this migration; lease alive). Call it right
    before the QEMU call, after every slow step: what was true before an await may not be."""
    deadline = time.monotonic() + REPROVE_SECONDS
    while True:
        lease_id = ctx.lease.lease_id if ctx.lease is not None else None
        if lease_id is None:
            raise TaskFailed(f"{ctx.node} holds no lease: it may run no guest")
        try:
            read = await ctx.store.read_ownership(vmid, ctx.node, lease_id)
        except UnreadableRecord as e:
            raise TaskFailed(f"not owned: VM {vmid} cannot be read: {e}") from e
        verdict = ownership_refusal(ctx.node, ownership_of(read, ctx.node, receive_task),
                                    purpose)
        if verdict.ok and read.vm is not None:
            log.info("VM %s: %s owned by %s at revision %s", vmid, purpose.value, ctx.node,
                     read.revision)
            return read.vm
        if not verdict.retry or time.monotonic() > deadline:
            log.error("VM %s: not running it (%s): %s", vmid, purpose.value, verdict.reason)
            raise TaskFailed(f"not owned: {verdict.reason}")
        await asyncio.sleep(REPROVE_EVERY)


def owner_guard(ctx: HostContext, vmid: int, purpose: Purpose,
                receive_task: str | None = None) -> Callable[[], Awaitable[VM]]:
    """`prove_owner` as the driver's guard: run right before QEMU launches or resumes."""
    return lambda: prove_owner(ctx, vmid, purpose, receive_task)


def is_running(ctx: HostContext, vmid: int) -> bool:
    return ctx.driver.pid(vmid) is not None
