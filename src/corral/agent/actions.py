"""What a task does on its host: one coroutine per task kind of a VM's life on that host
(migration's kinds live in `corral.migration`; `handlers` maps kinds to both)."""

from __future__ import annotations

from typing import Any

from corral.agent.context import (
    HostContext,
    Report,
    TaskFailed,
    disk_paths,
    is_running,
    owner_guard,
    record,
)
from corral.agent.reconciler import Purpose
from corral.cluster.models import VM, RunState, Task, VMStatus
from corral.migration.qmp import LEFTOVER_STATES
from corral.storage.volumes import create_volume, remove_volume


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
    running = ctx.driver.pid(vm.vmid)
    status = await ctx.driver.status(vm.vmid) if running is not None else None
    if status in (VMStatus.STARTING, VMStatus.PAUSED):
        # Left here by a migration whose source host was lost (the VM was then recovered
        # here; no migration runs beside a start): an incoming QEMU whose stream never came
        # or never finished holds no guest; one whose stream came whole, or a source whose
        # guest went on elsewhere, holds a guest state nobody can vouch for (a rolled-back
        # move made it stale). Resuming it could run the guest from the past against its
        # disk: the VM boots afresh, as after any host loss.
        await report(0.1, f"stopping a {status.value} QEMU left by a migration ({running})")
        await ctx.driver.stop(vm.vmid)
        running = None
    if running is not None:
        # Its QEMU runs here and the VM is placed here (accept_task): the start is done. A
        # failure would count against it (HA restarts, then relocates a VM that runs).
        await record(ctx, vm, RunState.RUNNING, VMStatus.RUNNING, running)
        return {"pid": running, "already_running": True}
    paths = await disk_paths(ctx, vm)
    missing = [d.volume for d, p in zip(vm.config.disks, paths, strict=True) if not p.exists()]
    if missing:
        raise TaskFailed(f"volume {', '.join(missing)} missing on {ctx.node}")
    await report(0.3, f"starting QEMU ({ctx.driver.accel})")
    pid = await ctx.driver.start(vm.config, paths,
                                 guard=owner_guard(ctx, vm.vmid, Purpose.START))
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
    state = (await ctx.driver.qmp(vm.vmid, "query-status")).get("status")
    if state in LEFTOVER_STATES:
        raise TaskFailed(f"VM {vm.vmid}'s QEMU on {ctx.node} is left by a migration ({state}): "
                         "its guest state cannot be vouched for; start the VM to boot it afresh")
    await ctx.driver.resume(vm.vmid, guard=owner_guard(ctx, vm.vmid, Purpose.RESUME))
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
