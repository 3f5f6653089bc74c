"""The agent against a real etcd and real QEMU: tasks, the serial heartbeat, shutdown, and
adoption of running VMs after the agent is killed."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from pathlib import Path

import pytest
from agents import AgentProc, agent_fixture, wait_for  # noqa: F401  (fixture)

from corral.cluster.models import (
    Disk,
    NodeInfo,
    Placement,
    RunState,
    Task,
    TaskState,
    VMConfig,
    VMStatus,
)
from corral.cluster.store import Store
from corral.host.processes import pid_alive
from corral.qemu.driver import QemuDriver

pytestmark = pytest.mark.integration


async def run_task(store: Store, kind: str, vmid: int, wait: float = 60.0,
                   **params: object) -> Task:
    task = Task(id=uuid.uuid4().hex[:16], kind=kind, node="n1", vmid=vmid, params=params)
    await store.put_task(task)

    async def finished() -> Task | None:
        t = await store.task(task.id)
        return t if t is not None and t.state.finished else None

    done: Task = await wait_for(finished, wait, f"task {kind}")
    return done


def serial(short_tmp: Path, vmid: int) -> str:
    logs = list((short_tmp / "n1" / "run").glob(f"{vmid}*serial*"))
    return logs[0].read_text(errors="replace") if logs else ""


async def heartbeats(short_tmp: Path, vmid: int) -> list[int]:
    return [int(line.split()[1]) for line in serial(short_tmp, vmid).splitlines()
            if line.startswith("corral-heartbeat ")]


async def test_registers_host_with_facts_and_lease(store: Store, agent: AgentProc) -> None:
    node = await store.node("n1")
    assert node is not None and node.alive
    assert isinstance(node.info, NodeInfo) and node.info.cpus >= 1 and node.info.accel == "tcg"


async def test_vm_lifecycle_heartbeat_shutdown_and_adoption(
    store: Store, agent: AgentProc, short_tmp: Path, tiny_images: Path
) -> None:
    cfg = VMConfig(vmid=100, name="t100", memory_mb=96, cores=1,
                   disks=[Disk(volume="local:vm-100-disk-0.qcow2", size_mb=64)])
    assert await store.create_vm(cfg, Placement(node="n1"))
    created = await run_task(store, "vm.create", 100)
    assert created.state is TaskState.OK, created.error
    assert (short_tmp / "n1/storage/local/vm-100-disk-0.qcow2").exists()

    started = await run_task(store, "vm.start", 100)
    assert started.state is TaskState.OK, started.error
    pid = started.result["pid"]

    async def beating() -> bool:
        return len(await heartbeats(short_tmp, 100)) >= 2

    await wait_for(beating, 30, "the guest's heartbeat")
    again = await run_task(store, "vm.start", 100)
    # A start of a VM that runs here is done already (a failure would make HA relocate it).
    assert again.state is TaskState.OK and again.result == {"pid": pid, "already_running": True}

    # An incoming QEMU whose migration never came (its source died, HA recovered the VM
    # here) is no running VM: a start replaces it with a guest that boots.
    os.kill(pid, signal.SIGKILL)
    await wait_for(lambda: asyncio.sleep(0, not pid_alive(pid)), 10, "the guest gone")
    vm100 = await store.vm(100)
    assert vm100 is not None
    driver = QemuDriver(short_tmp / "n1" / "run", tiny_images, "tcg")
    waiting = await driver.start(vm100.config, [short_tmp / "n1/storage/local/vm-100-disk-0.qcow2"],
                                 incoming="defer")
    fresh = await run_task(store, "vm.start", 100)
    assert fresh.state is TaskState.OK and "already_running" not in fresh.result
    assert fresh.result["pid"] != waiting and not pid_alive(waiting)
    await wait_for(beating, 30, "the fresh guest's heartbeat")

    # Nor is a paused QEMU a VM to adopt: an incoming one whose stream came whole but whose
    # move was never committed (its source host was fenced mid-migration), or a source whose
    # guest went on elsewhere. The start boots the guest afresh instead of leaving it
    # paused for good while HA counts it as started.
    paused = fresh.result["pid"]
    await driver.pause(100)
    assert await driver.status(100) is VMStatus.PAUSED
    fresh = await run_task(store, "vm.start", 100)
    assert fresh.state is TaskState.OK and "already_running" not in fresh.result
    assert fresh.result["pid"] != paused and not pid_alive(paused)
    assert await driver.status(100) is VMStatus.RUNNING
    pid = fresh.result["pid"]
    await wait_for(beating, 30, "the fresh guest's heartbeat")

    # The agent dies hard; the VM must not notice and the new agent must adopt it.
    agent.kill(signal.SIGKILL)
    os.kill(pid, 0)
    agent.start()

    async def adopted() -> bool:
        vm = await store.vm(100)
        node = await store.node("n1")
        return bool(vm and vm.runtime and vm.runtime.status is VMStatus.RUNNING
                    and vm.runtime.pid == pid and node and node.alive)

    await wait_for(adopted, 30, "adoption after the agent restart")
    before = max(await heartbeats(short_tmp, 100))

    async def still_beating() -> bool:
        return max(await heartbeats(short_tmp, 100)) > before

    await wait_for(still_beating, 10, "heartbeats after adoption")
    assert min(await heartbeats(short_tmp, 100)) == 1
    assert (await heartbeats(short_tmp, 100)).count(1) == 1, "the guest restarted"

    down = await run_task(store, "vm.shutdown", 100, timeout=30)
    assert down.state is TaskState.OK, down.error
    assert down.result["clean"] is True
    assert not pid_alive(pid)
    vm = await store.vm(100)
    assert vm is not None and vm.placement.state == "stopped"
    assert vm.runtime is not None and vm.runtime.status is VMStatus.STOPPED


async def test_pause_resume_and_delete_guarded(store: Store, agent: AgentProc,
                                               short_tmp: Path) -> None:
    cfg = VMConfig(vmid=101, name="t101", memory_mb=96, cores=1)
    assert await store.create_vm(cfg, Placement(node="n1"))
    assert (await run_task(store, "vm.start", 101)).state is TaskState.OK
    await wait_for(lambda: _has_beats(short_tmp, 101), 30, "heartbeat")
    assert (await run_task(store, "vm.suspend", 101)).state is TaskState.OK
    await asyncio.sleep(0.5)
    frozen = await heartbeats(short_tmp, 101)
    await asyncio.sleep(2.0)
    assert await heartbeats(short_tmp, 101) == frozen, "a paused guest kept running"
    vm = await store.vm(101)
    assert vm is not None and vm.placement.state == "paused"
    assert (await run_task(store, "vm.resume", 101)).state is TaskState.OK

    refused = await run_task(store, "vm.delete", 101)
    assert refused.state is TaskState.ERROR and await store.vm(101) is not None
    forced = await run_task(store, "vm.delete", 101, force=True)
    assert forced.state is TaskState.OK, forced.error
    assert await store.vm(101) is None
    assert await store.name_taken("t101") is None


async def test_hard_stop_after_shutdown_timeout(store: Store, agent: AgentProc,
                                               short_tmp: Path) -> None:
    cfg = VMConfig(vmid=102, name="t102", memory_mb=96, cores=1)
    assert await store.create_vm(cfg, Placement(node="n1"))
    assert (await run_task(store, "vm.start", 102)).state is TaskState.OK
    # Paused, the guest cannot react to the power button: the timeout must stop it hard.
    assert (await run_task(store, "vm.suspend", 102)).state is TaskState.OK
    down = await run_task(store, "vm.shutdown", 102, timeout=1)
    assert down.state is TaskState.OK and down.result["clean"] is False


async def test_guest_poweroff_is_recorded_as_stopped(store: Store, agent: AgentProc,
                                                     short_tmp: Path) -> None:
    cfg = VMConfig(vmid=103, name="t103", memory_mb=96, cores=1)
    assert await store.create_vm(cfg, Placement(node="n1"))
    started = await run_task(store, "vm.start", 103)
    await wait_for(lambda: _has_beats(short_tmp, 103), 30, "heartbeat")
    await asyncio.sleep(1.5)  # the monitor has seen it running
    os.kill(started.result["pid"], signal.SIGTERM)  # QEMU exits as on a guest power-off

    async def stopped() -> bool:
        vm = await store.vm(103)
        return bool(vm and vm.placement.state == "stopped" and vm.runtime
                    and vm.runtime.status is VMStatus.STOPPED)

    await wait_for(stopped, 15, "the exit to be recorded")


async def _has_beats(short_tmp: Path, vmid: int) -> bool:
    return len(await heartbeats(short_tmp, vmid)) >= 1


async def test_task_for_a_vm_placed_elsewhere_is_refused(store: Store, agent: AgentProc) -> None:
    """A start queued before the VM moved must never run it on the old host."""
    cfg = VMConfig(vmid=104, name="t104", memory_mb=96, cores=1)
    assert await store.create_vm(cfg, Placement(node="n2"))
    refused = await run_task(store, "vm.start", 104)
    assert refused.state is TaskState.ERROR and "placed on n2" in (refused.error or "")
    vm = await store.vm(104)
    assert vm is not None and vm.runtime is None


async def test_sigterm_while_starting_up_is_a_clean_stop_once_started(
        store: Store, etcd_endpoint: str, short_tmp: Path, tiny_images: Path) -> None:
    """SIGTERM while the agent still boots the VMs it owns: it finishes the start-up, then
    stops as on any SIGTERM (exit 0, VMs left running), rather than dying on the spot."""
    for vmid in (110, 111, 112):
        cfg = VMConfig(vmid=vmid, name=f"t{vmid}", memory_mb=64, cores=1)
        assert await store.create_vm(cfg, Placement(node="n1", state=RunState.RUNNING))
    agent = AgentProc(etcd_endpoint, short_tmp / "n1", tiny_images, "n1")
    agent.start()
    assert agent.proc is not None
    try:
        async def registered() -> bool:
            node = await store.node("n1")
            return node is not None and node.alive

        await wait_for(registered, 30, "the agent to register")
        agent.proc.send_signal(signal.SIGTERM)  # it is now starting the three VMs
        assert await asyncio.to_thread(agent.proc.wait, 60) == 0
        log = (agent.data_dir / "agent.log").read_text()
        assert "asked to stop while starting, stopping" in log and "agent of n1 stopped" in log
        driver = QemuDriver(agent.run_dir, tiny_images, "tcg")
        assert sorted(driver.running()) == [110, 111, 112]  # QEMUs outlive their agent
    finally:
        agent.stop()
