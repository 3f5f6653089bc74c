"""A clean host shutdown with real agents, etcd and QEMU: the agent carries out the cluster's
shutdown policy (freeze, failover, migrate) and says so before its lease goes; a plain agent
stop leaves the VMs running."""

from __future__ import annotations

import signal

import pytest
from agents import (  # noqa: F401  (fixtures)
    AgentProc,
    Cluster,
    agent_fixture,
    cluster_fixture,
    wait_for,
)

from corral.agent.settings import HOST_SHUTDOWN_MARKER
from corral.cluster import keys
from corral.cluster.models import Placement, RunState, ShutdownPolicy, VMConfig, VMStatus
from corral.cluster.store import Store
from corral.ha import store as ha_store
from corral.ha.models import HAConfig, HASettings
from corral.host.processes import pid_alive

pytestmark = pytest.mark.integration


async def running_vm(c: Cluster, vmid: int, node: str) -> int:
    """A diskless tiny guest started on node; its QEMU pid once it beats."""
    cfg = VMConfig(vmid=vmid, name=f"t{vmid}", memory_mb=96, cores=1)
    assert await c.store.create_vm(cfg, Placement(node=node))
    started = await c.run("vm.start", vmid, node)
    assert started.state.value == "ok", started.error

    async def beating() -> bool:
        return len(c.heartbeats(node, vmid)) >= 1

    await wait_for(beating, 30, f"VM {vmid}'s heartbeat on {node}")
    return int(started.result["pid"])


def shut_down(agent: AgentProc, kind: str) -> None:
    """What the host's shutdown does to the agent: systemd's job says the host goes down
    (here the run dir marker), then SIGTERM; the agent has until it exits."""
    (agent.run_dir / HOST_SHUTDOWN_MARKER).write_text(kind)
    assert agent.proc is not None
    agent.proc.send_signal(signal.SIGTERM)
    agent.proc.wait(120)


async def test_reboot_freezes_vms_and_they_start_on_return(store: Store, agent: AgentProc,
                                                          short_tmp: object) -> None:
    c = Cluster(store, agent.data_dir.parent, {"n1": agent})
    pid = await running_vm(c, 100, "n1")

    # A plain stop of the agent (an upgrade, a restart) is no host shutdown: the VM runs on.
    agent.kill(signal.SIGTERM)
    assert pid_alive(pid)
    node = await store.node("n1")
    assert node is not None and node.shutdown is None and node.info is not None
    first_life = node.info.started_at
    agent.start()

    async def back() -> bool:
        """The new agent is past its start-up (it handles SIGTERM from then on)."""
        n = await store.node("n1")
        log = (agent.data_dir / "agent.log").read_text()
        return bool(n and n.alive and n.info and n.info.started_at > first_life
                    and log.count("agent of n1 is up") == 2)

    await wait_for(back, 30, "the agent back")

    shut_down(agent, "reboot")  # the default policy, conditional: a reboot freezes
    assert not pid_alive(pid), "the host's shutdown left its QEMU running"
    node = await store.node("n1")
    assert node is not None and node.info is not None and not node.alive
    sd = node.shutdown
    assert sd is not None and sd.done and sd.policy == "freeze" and sd.kind == "reboot"
    assert sd.life == node.info.started_at and node.shutting_down == sd
    vm = await store.vm(100)
    assert vm is not None and vm.placement.node == "n1"
    assert vm.placement.state is RunState.RUNNING, "frozen VMs must start when the host returns"
    assert vm.runtime is not None and vm.runtime.status is VMStatus.STOPPED

    agent.start()  # the host is back

    async def restarted() -> int | None:
        v = await store.vm(100)
        ok = v and v.runtime and v.runtime.status is VMStatus.RUNNING and v.runtime.pid
        return v.runtime.pid if ok and v and v.runtime and v.runtime.pid != pid else None

    await wait_for(restarted, 30, "the frozen VM started on the host's return")
    node = await store.node("n1")
    assert node is not None and node.shutdown is None, "the old life's record stayed"
    assert not (agent.run_dir / HOST_SHUTDOWN_MARKER).exists()


async def test_poweroff_fails_over_ha_vm_without_a_fence_wait(c: Cluster) -> None:
    # These agents run without a watchdog: a lost host's VMs would wait for a confirmed
    # power-off forever. Only the clean shutdown's word lets HA start the VM elsewhere.
    pid = await running_vm(c, 100, "n1")
    await ha_store.put_settings(c.store, HASettings(vmid=100))
    await ha_store.put_config(c.store, HAConfig(shutdown_policy=ShutdownPolicy.FAILOVER))

    shut_down(c.agents["n1"], "reboot")  # failover whatever the kind
    assert not pid_alive(pid)

    async def on_n2() -> bool:
        vm = await c.store.vm(100)
        return bool(vm and vm.placement.node == "n2" and vm.runtime
                    and vm.runtime.node == "n2" and vm.runtime.status is VMStatus.RUNNING)

    await wait_for(on_n2, 30, "the HA VM started on n2")

    async def beats() -> list[int]:
        return c.heartbeats("n2", 100)

    assert (await wait_for(beats, 30, "heartbeats on n2"))[0] == 1, \
        "a recovered VM boots afresh"


async def test_migrate_policy_moves_vms_live_and_back(c: Cluster) -> None:
    await running_vm(c, 100, "n1")
    await ha_store.put_config(c.store, HAConfig(shutdown_policy=ShutdownPolicy.MIGRATE))

    shut_down(c.agents["n1"], "poweroff")
    vm = await c.store.vm(100)
    assert vm is not None and vm.placement.node == "n2" and vm.placement.origin == "n1"
    assert vm.runtime is not None and vm.runtime.status is VMStatus.RUNNING
    beats = c.heartbeats("n2", 100)
    assert beats and beats[0] > 1, "the guest was restarted instead of moved live"
    node = await c.store.node("n1")
    assert node is not None and node.request is not None and node.request.maintenance
    assert node.request.by == "shutdown" and node.shutdown is not None and node.shutdown.done

    c.agents["n1"].start()  # back: the maintenance its shutdown asked for ends

    async def home() -> bool:
        v = await c.store.vm(100)
        return bool(v and v.placement.node == "n1" and v.placement.origin is None
                    and v.runtime and v.runtime.node == "n1"
                    and v.runtime.status is VMStatus.RUNNING)

    await wait_for(home, 60, "the VM back on n1")
    node = await c.store.node("n1")
    assert node is not None and node.request is not None and not node.request.maintenance
    raw = await c.store.client.get(keys.node("n1", "shutdown").encode())
    assert raw is None
