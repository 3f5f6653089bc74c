"""The monitor's pass against a task that starts a VM in the middle of it: real etcd, real
QEMU, the agent's own pieces in one process so the interleaving is exact."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path

import pytest

from corral.agent.context import HostContext
from corral.agent.liveness import Liveness
from corral.agent.monitor import Monitor
from corral.agent.tasks import TaskRunner
from corral.cluster import keys
from corral.cluster.models import NodeInfo, Placement, Task, TaskState, VMConfig, VMStatus
from corral.cluster.snapshot import ClusterSnapshot
from corral.cluster.store import Store
from corral.cluster.view import ClusterView
from corral.qemu.driver import QemuDriver

pytestmark = pytest.mark.integration


async def test_a_start_inside_one_pass_is_not_reported_as_stopped(
        store: Store, short_tmp: Path, tiny_images: Path) -> None:
    liveness = Liveness(store, "n1", ttl=10)
    await liveness.register(NodeInfo(name="n1", cpus=1, memory_mb=4096))
    renewing = asyncio.create_task(liveness.keep_alive())
    driver = QemuDriver(short_tmp / "run", tiny_images, "tcg")
    ctx = HostContext("n1", short_tmp, store, driver, liveness)
    runner = TaskRunner(ctx)
    view = ClusterView(store)
    await view.start()
    monitor = Monitor(ctx, runner.claims, view)
    try:
        assert await store.create_vm(VMConfig(vmid=100, name="quick", memory_mb=96, cores=1),
                                     Placement(node="n1"))
        await monitor.pass_once()
        vm = await store.vm(100)
        assert vm is not None and vm.runtime is not None
        assert vm.runtime.status is VMStatus.STOPPED

        # The pass lists no QEMU for VM 100; before it reads etcd, a start runs whole.
        task = Task(id=uuid.uuid4().hex[:16], kind="vm.start", node="n1", vmid=100)
        await store.put_task(task)
        items, _ = await store.snapshot(keys.task(task.id))
        read = view.current

        async def start_then_read(now: float) -> ClusterSnapshot:
            await runner._claim_and_run(task, items[0][2])
            return await read(now)

        view.current = start_then_read  # type: ignore[method-assign]
        await monitor.pass_once()
        done = await store.task(task.id)
        assert done is not None and done.state is TaskState.OK, done
        vm = await store.vm(100)
        assert vm is not None and vm.runtime is not None
        # The pass's "no QEMU" predates the start: it must not overwrite the start's report.
        assert vm.runtime.status is VMStatus.RUNNING, vm.runtime
        assert driver.pid(100) is not None

        view.current = read  # type: ignore[method-assign]
        await monitor.pass_once()  # the next pass sees the QEMU and agrees
        vm = await store.vm(100)
        assert vm is not None and vm.runtime is not None
        assert vm.runtime.status is VMStatus.RUNNING
    finally:
        with contextlib.suppress(Exception):
            await driver.stop(100)
        renewing.cancel()
        await view.close()
