"""An agent runs a guest only while it owns it, on real etcd and real QEMU: a start cut short
by a stall ends refused once the VM moved and the lease lapsed, a restarted agent does not boot
a VM that moved meanwhile, a running agent stops QEMUs of VMs placed elsewhere, and a frozen
QEMU is reported `unknown` and left alone.

The stalls are made deterministic with a FIFO as the VM's serial log: the driver's
synchronous open of it blocks the whole agent (lease renewal included) inside the start, past
every earlier check, until the test opens the FIFO for reading."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from agents import Cluster, cluster_fixture, wait_for

from corral.cluster.models import Placement, RunState, TaskState, VMConfig, VMStatus
from corral.cluster.store import Store
from corral.host.processes import pid_alive

pytestmark = pytest.mark.integration
__all__ = ["cluster_fixture"]


def qemu_pid(c: Cluster, node: str, vmid: int) -> int | None:
    pidfile = c.agents[node].run_dir / f"{vmid}.pid"
    with contextlib.suppress(OSError, ValueError):
        pid = int(pidfile.read_text().strip())
        return pid if pid_alive(pid) else None
    return None


async def create(store: Store, vmid: int, node: str, state: RunState = RunState.STOPPED) -> None:
    cfg = VMConfig(vmid=vmid, name=f"own{vmid}", memory_mb=96, cores=1)
    assert await store.create_vm(cfg, Placement(node=node, state=state))


async def move(store: Store, vmid: int, node: str) -> None:
    """What HA recovery does to a VM whose host it counts as lost."""
    vm = await store.vm(vmid)
    assert vm is not None
    new = vm.placement.model_copy(update={"node": node,
                                          "generation": vm.placement.generation + 1})
    assert await store.set_placement(vmid, new, vm.placement_rev)


async def lease_gone(store: Store, node: str) -> None:
    async def gone() -> bool:
        n = await store.node(node)
        return n is not None and not n.alive

    await wait_for(gone, 30, f"the lease of {node} to expire")


@contextlib.contextmanager
def stalled_serial(c: Cluster, node: str, vmid: int) -> Iterator[Path]:
    fifo = c.agents[node].run_dir / f"{vmid}.serial.log"
    fifo.parent.mkdir(parents=True, exist_ok=True)
    fifo.unlink(missing_ok=True)
    os.mkfifo(fifo)
    yield fifo


class SerialReader:
    """Opens the FIFO read-write (never blocks, never sees EOF): the agent's stall ends, and
    whatever a QEMU writes to its serial port is counted."""

    def __init__(self, fifo: Path) -> None:
        self.fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
        self.total = 0

    def drain(self) -> int:
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                return self.total
            if not chunk:
                return self.total
            self.total += len(chunk)

    def close(self) -> None:
        os.close(self.fd)


async def qemu_appears(c: Cluster, node: str, vmid: int, seconds: float) -> bool:
    """Whether a QEMU of the VM shows up on the node at any moment within `seconds`, sampled
    often enough to see one that the monitor stops again a second later."""
    for _ in range(int(seconds / 0.05)):
        if qemu_pid(c, node, vmid) is not None:
            return True
        await asyncio.sleep(0.05)
    return False


async def agent_log_has(c: Cluster, node: str, text: str) -> bool:
    path = c.agents[node].data_dir / "agent.log"
    return path.exists() and text in path.read_text(errors="replace")


async def test_start_stalled_past_its_checks_is_refused_after_the_vm_moved(c: Cluster) -> None:
    """(a) The agent claims vm.start, passes every check, stalls (frozen) until its lease
    expired and the VM was moved to n2: on waking it must not start QEMU."""
    store, agent = c.store, c.agents["n1"]
    await create(store, 300, "n1")
    with stalled_serial(c, "n1", 300) as fifo:
        task_id = await c.queue("vm.start", 300, "n1")

        async def stalled_in_start() -> bool:
            t = await store.task(task_id)
            return t is not None and any("starting QEMU" in line for line in t.log)

        await wait_for(stalled_in_start, 30, "the start to reach the driver")
        await asyncio.sleep(0.5)  # well inside the driver's blocking open of the serial log
        assert agent.proc is not None
        agent.proc.send_signal(signal.SIGSTOP)
        try:
            await lease_gone(store, "n1")
            await move(store, 300, "n2")
        finally:
            reader = SerialReader(fifo)
            agent.proc.send_signal(signal.SIGCONT)
        try:
            assert not await qemu_appears(c, "n1", 300, 8.0), "QEMU started on n1 after the move"
            done = await c.wait_task(task_id, 30)
            assert done.state is TaskState.ERROR
            assert "placed on n2" in (done.error or ""), done.error
            assert reader.drain() == 0, "QEMU ran the guest on n1 after the VM moved to n2"
        finally:
            reader.close()
    vm = await store.vm(300)
    assert vm is not None and vm.placement.node == "n2"


async def test_restarted_agent_neither_boots_nor_keeps_a_vm_that_moved(c: Cluster) -> None:
    """(b) The host comes back: a VM meant to run here is moved away while the start-up
    reconcile stalls before booting it, and another one's QEMU survived although its VM now
    lives on n2. The agent boots neither and kills the survivor."""
    store, agent = c.store, c.agents["n1"]
    await create(store, 301, "n1")
    await create(store, 302, "n1")
    for vmid in (301, 302):
        started = await c.run("vm.start", vmid, "n1")
        assert started.state is TaskState.OK, started.error
    survivor = qemu_pid(c, "n1", 302)
    assert survivor is not None
    agent.kill(signal.SIGKILL)
    # 301: its QEMU died with the host; it is meant to run here when the host returns.
    pid301 = qemu_pid(c, "n1", 301)
    assert pid301 is not None
    os.kill(pid301, signal.SIGKILL)
    await wait_for(lambda: asyncio.sleep(0, not pid_alive(pid301)), 10, "QEMU 301 to die")
    await move(store, 302, "n2")
    with stalled_serial(c, "n1", 301) as fifo:
        agent.start()
        await wait_for(lambda: agent_log_has(c, "n1", "startup: start VM 301"), 30,
                       "the start-up reconcile to start VM 301")
        await asyncio.sleep(0.5)
        await lease_gone(store, "n1")
        await move(store, 301, "n2")
        reader = SerialReader(fifo)
        try:
            appeared = asyncio.create_task(qemu_appears(c, "n1", 301, 8.0))
            await wait_for(lambda: asyncio.sleep(0, not pid_alive(survivor)), 20,
                           "the QEMU of VM 302 (placed on n2) to be killed")
            assert not await appeared, "VM 301 started on n1 after it moved to n2"

            async def registered() -> bool:
                n = await store.node("n1")
                return n is not None and n.alive

            await wait_for(registered, 30, "the agent to register again")
            await asyncio.sleep(3.0)
            assert reader.drain() == 0, "VM 301 booted on n1 after it moved to n2"
            assert qemu_pid(c, "n1", 301) is None
        finally:
            reader.close()
    assert qemu_pid(c, "n1", 302) is None


async def test_running_agent_stops_qemu_of_a_vm_placed_elsewhere(c: Cluster) -> None:
    """(c) Without any restart: a QEMU here whose VM moves to another host, and one whose VM
    is deleted from etcd, are stopped within seconds."""
    store, agent = c.store, c.agents["n1"]
    assert agent.proc is not None
    agent_pid = agent.proc.pid
    await create(store, 303, "n1")
    await create(store, 304, "n1")
    pids = {}
    for vmid in (303, 304):
        started = await c.run("vm.start", vmid, "n1")
        assert started.state is TaskState.OK, started.error
        pids[vmid] = started.result["pid"]
    await asyncio.sleep(2.0)  # the monitor sees both as running and its own
    assert all(pid_alive(pid) for pid in pids.values())
    t0 = time.monotonic()
    await move(store, 303, "n2")
    vm304 = await store.vm(304)
    assert vm304 is not None and await store.delete_vm(vm304)
    for vmid, pid in pids.items():
        async def stopped(pid: int = pid) -> bool:
            return not pid_alive(pid)

        await wait_for(stopped, 15, f"the QEMU of VM {vmid} to be stopped")
    print(f"orphan QEMUs stopped {time.monotonic() - t0:.1f}s after the move and the delete")
    assert agent.proc.poll() is None and agent.proc.pid == agent_pid
    assert await agent_log_has(c, "n1", "placed on n2")


async def test_frozen_qemu_is_unknown_not_stopped_and_is_not_restarted(c: Cluster) -> None:
    """(d) A QEMU that does not answer (SIGSTOP) is `unknown` with a message, its placement
    stays running, nothing starts another copy; after SIGCONT it is running, same pid."""
    store = c.store
    await create(store, 305, "n1")
    started = await c.run("vm.start", 305, "n1")
    assert started.state is TaskState.OK, started.error
    pid = started.result["pid"]
    await asyncio.sleep(1.5)
    os.kill(pid, signal.SIGSTOP)
    t0 = time.monotonic()
    try:
        async def unknown() -> bool:
            vm = await store.vm(305)
            rt = vm.runtime if vm else None
            return bool(rt and rt.status is VMStatus.UNKNOWN and rt.pid == pid
                        and "does not answer" in rt.message)

        await wait_for(unknown, 20, "the runtime to say unknown")
        print(f"frozen QEMU reported unknown {time.monotonic() - t0:.1f}s after SIGSTOP")
        await asyncio.sleep(4.0)  # several monitor passes
        vm = await store.vm(305)
        assert vm is not None and vm.placement.node == "n1"
        assert vm.placement.state is RunState.RUNNING
        assert vm.runtime is not None and vm.runtime.status is VMStatus.UNKNOWN
        assert qemu_pid(c, "n1", 305) == pid and qemu_pid(c, "n2", 305) is None
        assert not [t for t in await store.tasks() if t.vmid == 305 and t.id != started.id]
    finally:
        os.kill(pid, signal.SIGCONT)

    async def running_again() -> bool:
        vm = await store.vm(305)
        rt = vm.runtime if vm else None
        return bool(rt and rt.status is VMStatus.RUNNING and rt.pid == pid and not rt.message)

    await wait_for(running_again, 20, "the runtime to say running again")
    assert pid_alive(pid)
