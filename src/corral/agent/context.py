"""What every task handler of a host works with: the host context, the failure a task
reports, and the shared steps that record a VM's state in etcd."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from corral.cluster.models import VM, RunState, Task, VMRuntime, VMStatus
from corral.cluster.store import Store
from corral.qemu.driver import QemuDriver
from corral.storage.volumes import volume_path


class TaskFailed(Exception):
    """A task that cannot be done, with the reason the operator reads."""


class Report(Protocol):
    async def __call__(self, progress: float, line: str) -> None: ...


@dataclass
class HostContext:
    node: str
    data_dir: Path
    store: Store
    driver: QemuDriver


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


def is_running(ctx: HostContext, vmid: int) -> bool:
    return ctx.driver.pid(vmid) is not None
