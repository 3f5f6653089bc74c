"""What a task does on its host: one coroutine per task kind.

Each handler gets the host context and the task's VM, does the work through the QEMU driver
and the volume layer, and records the outcome (placement state, runtime) in etcd.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from corral.cluster.models import RunState, Task, VMRuntime, VMStatus
from corral.cluster.store import VM, Store
from corral.qemu.driver import QemuDriver
from corral.storage.volumes import create_volume, remove_volume, volume_path


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


async def create(ctx: HostContext, task: Task, vm: VM, report: Report) -> dict[str, Any]:
    paths = await disk_paths(ctx, vm)
    created: list[str] = []
    for i, (disk, path) in enumerate(zip(vm.config.disks, paths, strict=True)):
        if await create_volume(path, disk.size_mb):
            created.append(disk.volume)
        await report((i + 1) / max(len(paths), 1), f"volume {disk.volume} ({disk.size_mb} MiB)")
    await record(ctx, vm, None, VMStatus.STOPPED)
    return {"volumes": created}


async def start(ctx: HostContext, task: Task, vm: VM, report: Report) -> dict[str, Any]:
    if is_running(ctx, vm.vmid):
        raise TaskFailed(f"VM {vm.vmid} is already running")
    paths = await disk_paths(ctx, vm)
    missing = [d.volume for d, p in zip(vm.config.disks, paths, strict=True) if not p.exists()]
    if missing:
        raise TaskFailed(f"volume {', '.join(missing)} missing on {ctx.node}")
    await report(0.3, f"starting QEMU ({ctx.driver.accel})")
    pid = await ctx.driver.start(vm.config, paths)
    await record(ctx, vm, RunState.RUNNING, VMStatus.RUNNING, pid)
    return {"pid": pid}


async def shutdown(ctx: HostContext, task: Task, vm: VM, report: Report) -> dict[str, Any]:
    if not is_running(ctx, vm.vmid):
        raise TaskFailed(f"VM {vm.vmid} is not running")
    timeout = float(task.params.get("timeout", 180))
    await report(0.1, f"ACPI power button; hard stop after {timeout:g}s")
    clean = await ctx.driver.shutdown(vm.vmid, timeout)
    await report(1.0, "guest powered off" if clean else "timed out: stopped hard")
    await record(ctx, vm, RunState.STOPPED, VMStatus.STOPPED)
    return {"clean": clean}


async def stop(ctx: HostContext, task: Task, vm: VM, report: Report) -> dict[str, Any]:
    if not is_running(ctx, vm.vmid):
        raise TaskFailed(f"VM {vm.vmid} is not running")
    await ctx.driver.stop(vm.vmid)
    await record(ctx, vm, RunState.STOPPED, VMStatus.STOPPED)
    return {}


async def suspend(ctx: HostContext, task: Task, vm: VM, report: Report) -> dict[str, Any]:
    await ctx.driver.pause(vm.vmid)
    await record(ctx, vm, RunState.PAUSED, VMStatus.PAUSED, ctx.driver.pid(vm.vmid))
    return {}


async def resume(ctx: HostContext, task: Task, vm: VM, report: Report) -> dict[str, Any]:
    await ctx.driver.resume(vm.vmid)
    await record(ctx, vm, RunState.RUNNING, VMStatus.RUNNING, ctx.driver.pid(vm.vmid))
    return {}


async def reset(ctx: HostContext, task: Task, vm: VM, report: Report) -> dict[str, Any]:
    await ctx.driver.reset(vm.vmid)
    return {}


async def delete(ctx: HostContext, task: Task, vm: VM, report: Report) -> dict[str, Any]:
    if is_running(ctx, vm.vmid):
        if not task.params.get("force"):
            raise TaskFailed(f"VM {vm.vmid} is running; stop it first or delete with force")
        await report(0.2, "stopping the VM")
        await ctx.driver.stop(vm.vmid)
    removed = [str(p) for p in await disk_paths(ctx, vm) if remove_volume(p)]
    await report(0.8, f"removed {len(removed)} volume(s)")
    for _ in range(5):
        current = await ctx.store.vm(vm.vmid)
        if current is None or await ctx.store.delete_vm(current):
            return {"removed": removed}
    raise TaskFailed(f"VM {vm.vmid}: placement kept changing; not deleted")


def _lazy(module: str, name: str) -> Handler:
    """A handler imported on first use: the migration package builds on this module."""

    async def run(ctx: HostContext, task: Task, vm: VM, report: Report) -> dict[str, Any]:
        handler: Handler = getattr(importlib.import_module(module), name)
        return await handler(ctx, task, vm, report)

    return run


HANDLERS: dict[str, Handler] = {
    "vm.create": create,
    "vm.start": start,
    "vm.shutdown": shutdown,
    "vm.stop": stop,
    "vm.suspend": suspend,
    "vm.resume": resume,
    "vm.reset": reset,
    "vm.delete": delete,
    "vm.migrate": _lazy("corral.migration.source", "migrate"),  # on the VM's host
    "vm.receive": _lazy("corral.migration.target", "receive"),  # on the migration's target
}
