"""HA recoveries, maintenance evacuations and new VMs rank the hosts they may use by the
balancer's score: with room everywhere, the VM goes where the cluster stays most even, not
merely where most memory is free. Plain data."""

from __future__ import annotations

from corral.balancer.fit import fit_scores
from corral.balancer.model import BalanceConfig
from corral.balancer.placement import place_new
from corral.cluster.actions import QueueTask, SetPlacement
from corral.cluster.models import (
    VM,
    Node,
    NodeInfo,
    NodeRequest,
    Placement,
    RecentUsage,
    RunState,
    Series,
    Task,
    VMConfig,
    VmRecent,
    VMRuntime,
    VMStatus,
)
from corral.cluster.snapshot import ClusterSnapshot
from corral.ha.machine import decide_ha
from corral.ha.models import HAInputs, HASettings, HATiming
from corral.manager.maintenance import decide_maintenance

POINTS = 10


def recent(demand: dict[int, float], memory: int) -> RecentUsage:
    flat: Series = [0.0] * POINTS
    return RecentUsage(step_seconds=60, last_at=1e9, cpu_avg=flat, cpu_max=flat,
                       memory_used_mib=[0] * POINTS, other_cores=flat,
                       vms={v: VmRecent(cores_avg=[c] * POINTS, cores_max=[c] * POINTS,
                                        memory_mib=memory) for v, c in demand.items()})


def node(name: str, demand: dict[int, float], alive: bool = True, maintenance: bool = False,
         memory: int = 400) -> Node:
    return Node(name, NodeInfo(name=name, cpus=4, memory_mb=8192, started_at=0), alive, None,
                NodeRequest(maintenance=True) if maintenance else None,
                recent=recent(demand, memory))


def vm(vmid: int, on: str, memory: int = 512) -> VM:
    return VM(VMConfig(vmid=vmid, name=f"vm{vmid}", memory_mb=memory, cores=4),
              Placement(node=on, state=RunState.RUNNING), 7,
              VMRuntime(node=on, status=VMStatus.RUNNING))


def busy_n2(n1_alive: bool = True, n1_maintenance: bool = False,
            tasks: list[Task] | None = None) -> ClusterSnapshot:
    """VM 100 on n1. n2 runs a small VM burning 3 cores; n3 a big idle one, so n2 has the
    most free memory and n3 the spare CPU."""
    nodes = [node("n1", {100: 0.5}, n1_alive, n1_maintenance), node("n2", {201: 3.0}),
             node("n3", {301: 0.05}, memory=3000)]
    vms = [vm(100, "n1"), vm(201, "n2", memory=512), vm(301, "n3", memory=3072)]
    return ClusterSnapshot(now=100.0, nodes={n.name: n for n in nodes},
                           vms={v.vmid: v for v in vms}, tasks=tasks or [])


def test_the_score_prefers_spare_cpu_over_spare_memory() -> None:
    scores = fit_scores(busy_n2(), busy_n2().vms[100], ["n2", "n3"])
    assert scores["n3"] < scores["n2"]


def test_an_ha_recovery_goes_where_the_cpu_is_spare() -> None:
    timing = HATiming(lease_ttl=10, watchdog_timeout=5, margin=2)
    inputs = HAInputs(settings={100: HASettings(vmid=100)})
    _, state = decide_ha(busy_n2(n1_alive=False), inputs, timing)
    later = busy_n2(n1_alive=False)
    actions, _ = decide_ha(ClusterSnapshot(now=1000.0, nodes=later.nodes, vms=later.vms),
                           HAInputs(settings=inputs.settings, state=state), timing)
    [move] = [a for a in actions if isinstance(a, SetPlacement)]
    assert move.placement.node == "n3"


def test_a_maintenance_evacuation_goes_where_the_cpu_is_spare() -> None:
    [action] = decide_maintenance(busy_n2(n1_maintenance=True))
    assert isinstance(action, QueueTask) and action.task.params["target"] == "n3"


def test_the_weights_are_the_balancers() -> None:
    memory_only = BalanceConfig(cpu_weight=0, memory_weight=1)
    [action] = decide_maintenance(busy_n2(n1_maintenance=True), scoring=memory_only)
    assert isinstance(action, QueueTask) and action.task.params["target"] == "n2"


def test_a_new_vm_goes_where_the_cpu_is_spare() -> None:
    snap = busy_n2(n1_maintenance=True)
    host, why = place_new(snap, [], BalanceConfig(), memory_mb=512, cores=2)
    assert (host, why) == ("n3", "")
