"""A clean host shutdown, as pure decisions: what the agent does (policy, refusals) and what
HA makes of a host that says it shuts down or did."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest

from corral.agent.reconciler import (
    Placed,
    accept_task,
    asks_maintenance,
    ends_shutdown_maintenance,
    shutdown_policy,
)
from corral.agent.shutdown import kind_from_jobs
from corral.cluster.actions import QueueTask, SetPlacement
from corral.cluster.models import (
    VM,
    HostShutdown,
    Node,
    NodeInfo,
    NodeRequest,
    Placement,
    RunState,
    ShutdownPolicy,
    VMConfig,
    VMRuntime,
    VMStatus,
)
from corral.cluster.snapshot import ClusterSnapshot
from corral.ha.actions import SaveHAState
from corral.ha.machine import decide_ha
from corral.ha.models import (
    FenceConfirmation,
    HAInputs,
    HARequest,
    HASettings,
    HATiming,
    NodeStatusHA,
)
from corral.scheduler.capacity import unusable

T = HATiming(lease_ttl=10, watchdog_timeout=5, margin=2)
LIFE = 50.0  # the agent life of n2 that shuts down


def test_systemd_jobs_tell_a_reboot_from_a_poweroff() -> None:
    reboot = ("1234 reboot.target start waiting\n"
              "1230 shutdown.target start waiting\n"
              "1201 corral-agent.service stop running\n")
    assert kind_from_jobs(reboot) == "reboot"
    assert kind_from_jobs("88 poweroff.target start waiting\n") == "poweroff"
    assert kind_from_jobs("9 halt.target start waiting\n") == "poweroff"
    # An agent restart or a stop of its unit alone is no host shutdown.
    assert kind_from_jobs("1201 corral-agent.service restart running\n") is None
    assert kind_from_jobs("") is None


@pytest.mark.parametrize(("setting", "kind", "policy"), [
    (ShutdownPolicy.CONDITIONAL, "reboot", "freeze"),
    (ShutdownPolicy.CONDITIONAL, "poweroff", "failover"),
    (ShutdownPolicy.FREEZE, "poweroff", "freeze"),
    (ShutdownPolicy.FAILOVER, "reboot", "failover"),
    (ShutdownPolicy.MIGRATE, "reboot", "migrate"),
])
def test_policy_for_each_kind(setting: ShutdownPolicy, kind: str, policy: str) -> None:
    assert shutdown_policy(setting, kind) == policy  # type: ignore[arg-type]


def test_migrate_asks_maintenance_unless_an_operator_did_and_takes_back_only_its_own() -> None:
    assert asks_maintenance("migrate", None)
    assert asks_maintenance("migrate", NodeRequest(maintenance=False))
    assert not asks_maintenance("migrate", NodeRequest(maintenance=True))
    assert not asks_maintenance("freeze", None)
    assert ends_shutdown_maintenance(NodeRequest(maintenance=True, by="shutdown"))
    assert not ends_shutdown_maintenance(NodeRequest(maintenance=True))
    assert not ends_shutdown_maintenance(NodeRequest(maintenance=False, by="shutdown"))
    assert not ends_shutdown_maintenance(None)


def test_a_host_shutting_down_brings_no_guest_up_but_lets_them_go() -> None:
    kinds = {"vm.start", "vm.resume", "vm.receive", "vm.migrate", "vm.shutdown"}
    here = Placed(100, "n2", RunState.RUNNING)
    for kind in ("vm.start", "vm.resume"):
        v = accept_task(kind, here, "n2", True, kinds, shutting_down=True)
        assert not v.ok and "shutting down" in v.reason
    assert not accept_task("vm.receive", Placed(100, "n1", RunState.RUNNING), "n2", True,
                           kinds, shutting_down=True).ok
    assert accept_task("vm.migrate", here, "n2", True, kinds, shutting_down=True).ok
    assert accept_task("vm.shutdown", here, "n2", True, kinds, shutting_down=True).ok


# --- what HA makes of it --------------------------------------------------------------------


def snap(now: float, n2_alive: bool, sd: HostShutdown | None, vms: list[VM],
         n2_life: float = LIFE) -> ClusterSnapshot:
    def node(name: str, alive: bool, life: float, shutdown: HostShutdown | None) -> Node:
        info = NodeInfo(name=name, cpus=4, memory_mb=4096, started_at=life, lease_ttl=10,
                        watchdog_timeout=5, renew_interval=1)
        return Node(name, info, alive, None, None, shutdown)
    nodes = {"n1": node("n1", True, 0, None), "n2": node("n2", n2_alive, n2_life, sd)}
    return ClusterSnapshot(now=now, nodes=nodes, vms={v.vmid: v for v in vms})


def vm(vmid: int, status: VMStatus = VMStatus.STOPPED) -> VM:
    """Placed to run on n2; its host reports `status`."""
    return VM(VMConfig(vmid=vmid, name=f"vm{vmid}", memory_mb=512, cores=1),
              Placement(node="n2", state=RunState.RUNNING), 7,
              VMRuntime(node="n2", status=status))


def ha(*vmids: int, state: HARequest = HARequest.STARTED) -> HAInputs:
    return HAInputs(settings={v: HASettings(vmid=v, state=state) for v in vmids})


def record(policy: str, done: bool, life: float = LIFE) -> HostShutdown:
    return HostShutdown(policy=policy, kind="poweroff", life=life, done=done)  # type: ignore[arg-type]


def acted(actions: Sequence[object]) -> list[object]:
    return [a for a in actions if not isinstance(a, SaveHAState)]


@pytest.mark.parametrize("policy", ["freeze", "failover"])
def test_vm_of_a_host_shutting_down_is_never_restarted_there(policy: str) -> None:
    # Without the record this is a crash on an online host: HA would restart it there.
    crashed, _ = decide_ha(snap(100, True, None, [vm(100)]), ha(100), T)
    assert any(isinstance(a, QueueTask) and a.task.node == "n2" for a in crashed)
    s = snap(100, True, record(policy, done=False), [vm(100)])
    actions, state = decide_ha(s, ha(100), T)
    assert not any(isinstance(a, QueueTask) for a in actions)
    assert state.nodes["n2"].status is NodeStatusHA.ONLINE
    assert "shutting down" in state.nodes["n2"].reason
    moves = [a for a in actions if isinstance(a, SetPlacement)]
    if policy == "freeze":  # it waits for its host
        assert moves == [] and state.vms[100].status == "freeze"
    else:  # stopped by its host, which brings nothing up any more: elsewhere at once
        assert [m.placement.node for m in moves] == ["n1"]
        assert state.vms[100].status == "recovery" and "failover" in state.vms[100].reason


def test_failover_waits_for_a_vm_its_host_has_not_reported_stopped() -> None:
    sd = record("failover", done=False)
    for status in (VMStatus.RUNNING, VMStatus.UNKNOWN, VMStatus.SHUTTING_DOWN):
        actions, state = decide_ha(snap(100, True, sd, [vm(100, status)]), ha(100), T)
        assert acted(actions) == [] and state.vms[100].status == "freeze", status


def test_failover_recovers_at_once_when_the_host_is_down_cleanly() -> None:
    s = snap(100, False, record("failover", done=True), [vm(100)])
    actions, state = decide_ha(s, ha(100), T)
    moves = [a for a in actions if isinstance(a, SetPlacement)]
    assert len(moves) == 1 and moves[0].placement.node == "n1"
    assert moves[0].placement.state is RunState.RUNNING
    assert state.nodes["n2"].status is NodeStatusHA.FENCED
    assert "shut down cleanly" in state.nodes["n2"].reason


def test_freeze_keeps_the_vms_for_the_host_and_a_confirmation_releases_them() -> None:
    s = snap(100, False, record("freeze", done=True), [vm(100)])
    actions, state = decide_ha(s, ha(100), T)
    assert acted(actions) == []
    assert state.nodes["n2"].status is NodeStatusHA.SHUTDOWN
    assert state.vms[100].status == "freeze"
    # Much later it is still waiting: no fence timer runs for a host that shut down.
    later, state = decide_ha(replace(s, now=10_000), HAInputs(
        settings=ha(100).settings, state=state), T)
    assert acted(later) == [] and state.vms[100].status == "freeze"
    conf = {"n2": FenceConfirmation(node="n2", at=200)}
    freed, state = decide_ha(replace(s, now=10_001), HAInputs(
        settings=ha(100).settings, state=state, fenced=conf), T)
    assert any(isinstance(a, SetPlacement) and a.placement.node == "n1" for a in freed)


def test_a_vm_asked_stopped_while_frozen_does_not_start_on_return() -> None:
    s = snap(100, False, record("freeze", done=True), [vm(100)])
    actions, state = decide_ha(s, ha(100, state=HARequest.STOPPED), T)
    moves = [a for a in actions if isinstance(a, SetPlacement)]
    assert len(moves) == 1 and moves[0].placement == Placement(node="n2",
                                                               state=RunState.STOPPED)
    assert state.vms[100].status == "stopped"


def test_an_unfinished_or_old_shutdown_proves_nothing() -> None:
    # The agent died before `done`: an ordinary lost host, fenced by the clock.
    for sd in (record("failover", done=False), record("failover", done=True, life=LIFE - 1)):
        s = snap(100, False, sd, [vm(100)])
        actions, state = decide_ha(s, ha(100), T)
        assert acted(actions) == []
        assert state.nodes["n2"].status is NodeStatusHA.FENCE
        assert state.vms[100].status == "fence"
    # A new life of the agent voids the record: the host is an ordinary online host.
    s = snap(100, True, record("failover", done=False), [vm(100)], n2_life=LIFE + 5)
    assert s.nodes["n2"].shutting_down is None
    assert unusable(s, "n2") is None


def test_a_host_shutting_down_takes_no_vms() -> None:
    s = snap(100, True, record("migrate", done=False), [])
    assert unusable(s, "n2") == "node n2 is shutting down"


def test_frozen_vms_stay_while_the_returning_agent_registers() -> None:
    # The agent of the host's next life writes its facts (a new started_at) before it takes
    # its lease: in between, the host is neither back nor lost.
    s = snap(100, False, record("freeze", done=True), [vm(100)])
    _, state = decide_ha(s, ha(100), T)
    assert state.nodes["n2"].status is NodeStatusHA.SHUTDOWN
    returning = snap(10_000, False, record("freeze", done=True), [vm(100)], n2_life=LIFE + 60)
    actions, state = decide_ha(returning, HAInputs(settings=ha(100).settings, state=state), T)
    assert acted(actions) == [] and state.nodes["n2"].status is NodeStatusHA.SHUTDOWN
    assert state.vms[100].status == "freeze"
    # Once it has been online, a later loss is an ordinary one, whatever record is left.
    online = snap(10_001, True, record("freeze", done=True), [vm(100, VMStatus.RUNNING)],
                  n2_life=LIFE + 60)
    _, state = decide_ha(online, HAInputs(settings=ha(100).settings, state=state), T)
    lost = replace(online, now=10_002, nodes={**online.nodes, "n2": replace(
        online.nodes["n2"], alive=False)})
    _, state = decide_ha(lost, HAInputs(settings=ha(100).settings, state=state), T)
    assert state.nodes["n2"].status is NodeStatusHA.FENCE


def test_the_returning_host_restores_its_frozen_vms_before_ha_starts_them() -> None:
    s = snap(100, False, record("freeze", done=True), [vm(100)])
    _, state = decide_ha(s, ha(100), T)
    back = snap(200, True, None, [vm(100)], n2_life=LIFE + 100)
    actions, state = decide_ha(back, HAInputs(settings=ha(100).settings, state=state), T)
    # Its agent starts it on return: a start of HA's own would fail beside it.
    assert acted(actions) == [] and state.vms[100].status == "freeze"
    assert "waiting for it to start" in state.vms[100].reason
    later = replace(back, now=200 + T.start_timeout)
    actions, state = decide_ha(later, HAInputs(settings=ha(100).settings, state=state), T)
    assert [a.task.kind for a in actions if isinstance(a, QueueTask)] == ["vm.start"]
    running = replace(back, now=201, vms={100: vm(100, VMStatus.RUNNING)})
    _, state2 = decide_ha(running, HAInputs(settings=ha(100).settings, state=state), T)
    assert state2.vms[100].status == "started"
