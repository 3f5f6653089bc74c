"""The migrate dialog's target list, from plain-data snapshots: every host, its free memory
and CPU, and every reason a migration there would be refused."""

from __future__ import annotations

from corral.cluster.models import (
    VM,
    Disk,
    HostShutdown,
    Node,
    NodeInfo,
    NodeRequest,
    NodeUsage,
    Placement,
    RunState,
    StorageConfig,
    StorageType,
    Task,
    VMConfig,
)
from corral.cluster.snapshot import ClusterSnapshot
from corral.ha.models import HARule
from corral.ha.placement import rule_breach
from corral.scheduler.capacity import HOST_RESERVE_MB, migration_refusal
from corral.scheduler.targets import MigrationTarget, migration_targets

STORAGES = {
    "local": StorageConfig(id="local", type=StorageType.DIR, path="l"),
    "shared": StorageConfig(id="shared", type=StorageType.SHARED_DIR, path="/s"),
}


def node(name: str, memory_mb: int = 4096, cpus: int = 4, alive: bool = True,
         maintenance: bool = False, cpu: float | None = 0.25,
         shutting_down: bool = False) -> Node:
    usage = None if cpu is None else NodeUsage(cpu=cpu, memory_used_mb=100,
                                               memory_total_mb=memory_mb)
    info = NodeInfo(name=name, cpus=cpus, memory_mb=memory_mb, started_at=60.0)
    shutdown = HostShutdown(policy="migrate", life=60.0) if shutting_down else None
    return Node(name, info, alive, usage,
                NodeRequest(maintenance=True) if maintenance else None, shutdown)


def vm(vmid: int, on: str = "n1", memory_mb: int = 512, cores: int = 1,
       state: RunState = RunState.RUNNING, disks: tuple[str, ...] = ()) -> VM:
    cfg = VMConfig(vmid=vmid, name=f"v{vmid}", memory_mb=memory_mb, cores=cores,
                   disks=[Disk(volume=d, size_mb=64) for d in disks])
    return VM(cfg, Placement(node=on, state=state), 1, None)


def snap(nodes: list[Node], vms: list[VM], tasks: list[Task] | None = None) -> ClusterSnapshot:
    return ClusterSnapshot(now=0.0, nodes={n.name: n for n in nodes},
                           vms={v.vmid: v for v in vms}, tasks=tasks or [], storages=STORAGES)


def by_node(s: ClusterSnapshot, v: VM, rules: list[HARule] | None = None,
            with_local_disks: bool = False) -> dict[str, MigrationTarget]:
    return {t.node: t for t in
            migration_targets(s, v, rules or [], with_local_disks).targets}


def test_every_host_is_listed_with_its_free_memory_and_cpu() -> None:
    v = vm(100, memory_mb=512, cores=2)
    other = vm(101, on="n2", memory_mb=1024, cores=3)
    stopped = vm(102, on="n2", memory_mb=2048, cores=8, state=RunState.STOPPED)
    s = snap([node("n1"), node("n2", memory_mb=8192, cpus=8, cpu=0.5)], [v, other, stopped])
    answer = migration_targets(s, v, [])
    assert (answer.vmid, answer.node, answer.running, answer.memory_mb) == (100, "n1", True, 512)
    assert [t.node for t in answer.targets] == ["n1", "n2"]
    n2 = answer.targets[1]
    assert n2.allowed and n2.reasons == [] and not n2.current and n2.online
    # The stopped VM holds neither memory nor cores.
    assert n2.free_memory_mb == 8192 - HOST_RESERVE_MB - 1024
    assert (n2.cpus, n2.cpu_used, n2.cpu_free, n2.cores_allocated) == (8, 0.5, 4.0, 3)


def test_the_vm_s_own_host_is_refused_for_that_reason_alone() -> None:
    v = vm(100, memory_mb=8000)  # more than n1 has free: not worth saying on its own host
    n1 = by_node(snap([node("n1"), node("n2")], [v]), v)["n1"]
    assert n1.current and not n1.allowed
    assert n1.reasons == ["VM 100 is already on n1"]


def test_offline_maintenance_and_shutting_down_hosts_are_refused_with_the_reason() -> None:
    v = vm(100)
    s = snap([node("n1"), node("down", alive=False), node("maint", maintenance=True),
              node("leaving", shutting_down=True)], [v])
    t = by_node(s, v)
    assert t["down"].reasons == ["node down is offline"]
    assert not t["down"].online and t["down"].cpu_used is None  # an old sample says nothing
    assert t["maint"].reasons == ["node maint is in maintenance"] and t["maint"].maintenance
    assert t["leaving"].reasons == ["node leaving is shutting down"]


def test_a_host_without_room_says_how_much_is_free_a_cold_move_needs_none() -> None:
    big = vm(100, memory_mb=3000)
    s = snap([node("n1"), node("small", memory_mb=2048)], [big])
    small = by_node(s, big)["small"]
    assert small.reasons == [
        f"not enough free memory on small: {2048 - HOST_RESERVE_MB} MiB free, "
        "VM 100 needs 3000 MiB"]
    cold = vm(100, memory_mb=3000, state=RunState.STOPPED)
    s = snap([node("n1"), node("small", memory_mb=2048)], [cold])
    answer = migration_targets(s, cold, [])
    assert not answer.running and answer.targets[1].allowed


def test_local_disks_are_named_and_refused_unless_copied() -> None:
    v = vm(100, disks=("local:vm-100-disk-0.qcow2", "shared:vm-100-disk-1.qcow2"))
    s = snap([node("n1"), node("n2")], [v])
    answer = migration_targets(s, v, [])
    assert answer.local_disks == ["local:vm-100-disk-0.qcow2"]
    n2 = answer.targets[1]
    assert not n2.allowed and "--with-local-disks" in n2.reasons[0]
    assert by_node(s, v, with_local_disks=True)["n2"].allowed


def test_ha_rules_refuse_hosts_the_migration_would_refuse() -> None:
    v = vm(100)
    apart = vm(101, on="n2")
    rules = [HARule(name="apart", kind="anti-affinity", vms=[100, 101]),
             HARule(name="home", kind="node-preference", vms=[100],
                    nodes={"n1": 2, "n2": 1, "n3": 1}, strict=True)]
    s = snap([node("n1"), node("n2"), node("n3"), node("n4")], [v, apart])
    t = by_node(s, v, rules)
    assert t["n2"].reasons == ["rule apart: VM 101 runs on n2"]
    assert t["n3"].allowed
    assert t["n4"].reasons == ["rule home: n4 is not among its nodes"]


def test_every_reason_is_listed_not_only_the_first() -> None:
    v = vm(100, memory_mb=3000, disks=("local:vm-100-disk-0.qcow2",))
    apart = vm(101, on="n2")
    rules = [HARule(name="apart", kind="anti-affinity", vms=[100, 101])]
    s = snap([node("n1"), node("n2", memory_mb=2048, maintenance=True)], [v, apart])
    reasons = by_node(s, v, rules)["n2"].reasons
    assert [r.split(":")[0] for r in reasons] == [
        "node n2 is in maintenance", "VM 100 has local disks (local", "not enough free memory "
        "on n2", "rule apart"]


def test_a_busy_vm_or_a_lost_source_is_refused_everywhere() -> None:
    v = vm(100)
    busy = Task(id="t1", kind="vm.shutdown", node="n1", vmid=100)
    t = by_node(snap([node("n1"), node("n2")], [v], [busy]), v)
    assert t["n2"].reasons == ["VM 100 is busy with vm.shutdown (task t1)"]
    t = by_node(snap([node("n1", alive=False), node("n2")], [v]), v)
    assert t["n2"].reasons == ["the VM's host n1 is offline"]


def test_the_list_agrees_with_what_the_migration_refuses() -> None:
    """Allowed exactly where POST /migrate would accept, refused first for its reason."""
    vms = [vm(100, memory_mb=1500), vm(101, on="n2"), vm(102, on="n3", memory_mb=3000),
           vm(103, on="n4", disks=("local:d.qcow2",)), vm(104, state=RunState.STOPPED)]
    rules = [HARule(name="apart", kind="anti-affinity", vms=[100, 101]),
             HARule(name="with", kind="affinity", vms=[103, 104])]
    nodes = [node("n1"), node("n2"), node("n3", memory_mb=4096), node("n4", alive=False),
             node("n5", maintenance=True), node("n6", memory_mb=1024)]
    s = snap(nodes, vms)
    for v in vms:
        for copy in (False, True):
            for t in migration_targets(s, v, rules, copy).targets:
                first = migration_refusal(s, v, t.node, copy) or (
                    None if t.current else rule_breach(s, v, rules, t.node))
                assert t.allowed == (first is None), (v.vmid, t)
                assert (t.reasons[0] if t.reasons else None) == first, (v.vmid, t)
