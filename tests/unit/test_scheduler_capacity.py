"""Where a VM may move: refusals and target choice, from plain-data snapshots."""

from __future__ import annotations

from corral.cluster.models import (
    VM,
    Disk,
    Node,
    NodeInfo,
    NodeRequest,
    Placement,
    RunState,
    StorageConfig,
    StorageType,
    Task,
    TaskState,
    VMConfig,
)
from corral.cluster.snapshot import ClusterSnapshot
from corral.scheduler.capacity import (
    HOST_RESERVE_MB,
    free_memory,
    migration_refusal,
)

STORAGES = {
    "local": StorageConfig(id="local", type=StorageType.DIR, path="l"),
    "shared": StorageConfig(id="shared", type=StorageType.SHARED_DIR, path="/s"),
}


def node(name: str, memory_mb: int = 4096, alive: bool = True,
         maintenance: bool = False) -> Node:
    return Node(name, NodeInfo(name=name, cpus=2, memory_mb=memory_mb), alive, None,
                NodeRequest(maintenance=True) if maintenance else None)


def vm(vmid: int, on: str = "n1", memory_mb: int = 512, state: RunState = RunState.RUNNING,
       disks: tuple[str, ...] = ()) -> VM:
    cfg = VMConfig(vmid=vmid, name=f"v{vmid}", memory_mb=memory_mb, cores=1,
                   disks=[Disk(volume=d, size_mb=64) for d in disks])
    return VM(cfg, Placement(node=on, state=state), 1, None)


def snap(nodes: list[Node], vms: list[VM], tasks: list[Task] | None = None) -> ClusterSnapshot:
    return ClusterSnapshot(now=0.0, nodes={n.name: n for n in nodes},
                           vms={v.vmid: v for v in vms}, tasks=tasks or [], storages=STORAGES)


def migrating(vmid: int, target: str, state: TaskState = TaskState.RUNNING) -> Task:
    return Task(id=f"t{vmid}", kind="vm.migrate", node="n1", vmid=vmid,
                params={"target": target}, state=state)


def test_a_healthy_target_with_room_is_accepted() -> None:
    v = vm(100)
    assert migration_refusal(snap([node("n1"), node("n2")], [v]), v, "n2", False) is None


def test_target_unknown_offline_or_in_maintenance_is_refused() -> None:
    v = vm(100)
    s = snap([node("n1"), node("n2", alive=False), node("n3", maintenance=True)], [v])
    assert migration_refusal(s, v, "n9", False) == "node n9 is unknown"
    assert migration_refusal(s, v, "n2", False) == "node n2 is offline"
    assert migration_refusal(s, v, "n3", False) == "node n3 is in maintenance"
    assert "already on n1" in (migration_refusal(s, v, "n1", False) or "")


def test_an_offline_source_is_refused() -> None:
    v = vm(100)
    s = snap([node("n1", alive=False), node("n2")], [v])
    assert "n1 is offline" in (migration_refusal(s, v, "n2", False) or "")


def test_a_vm_with_a_task_is_busy_or_already_migrating() -> None:
    v = vm(100)
    s = snap([node("n1"), node("n2")], [v], [migrating(100, "n2")])
    assert "already migrating" in (migration_refusal(s, v, "n2", False) or "")
    other = Task(id="x", kind="vm.shutdown", node="n1", vmid=100)
    s = snap([node("n1"), node("n2")], [v], [other])
    assert "busy with vm.shutdown" in (migration_refusal(s, v, "n2", False) or "")
    done = snap([node("n1"), node("n2")], [v], [migrating(100, "n2", TaskState.OK)])
    assert migration_refusal(done, v, "n2", False) is None


def test_local_disks_need_the_flag_shared_ones_do_not() -> None:
    local = vm(100, disks=("local:vm-100-disk-0.qcow2",))
    shared = vm(101, disks=("shared:vm-101-disk-0.qcow2",))
    s = snap([node("n1"), node("n2")], [local, shared])
    why = migration_refusal(s, local, "n2", False) or ""
    assert "local:vm-100-disk-0.qcow2" in why and "--with-local-disks" in why
    assert migration_refusal(s, local, "n2", True) is None
    assert migration_refusal(s, shared, "n2", False) is None


def test_memory_counts_running_vms_and_arriving_ones_but_not_stopped() -> None:
    size = HOST_RESERVE_MB + 1024
    big = vm(100, memory_mb=600)
    there = vm(101, on="n2", memory_mb=300)
    stopped = vm(102, on="n2", memory_mb=900, state=RunState.STOPPED)
    arriving = vm(103, memory_mb=200)
    s = snap([node("n1"), node("n2", memory_mb=size)], [big, there, stopped, arriving],
             [migrating(103, "n2")])
    assert free_memory(s, "n2") == 1024 - 300 - 200
    why = migration_refusal(s, big, "n2", False) or ""
    assert "not enough free memory on n2" in why and "524 MiB free" in why
    # A stopped VM moves cold: it needs no memory on the target.
    cold = vm(104, memory_mb=4000, state=RunState.STOPPED)
    s2 = snap([node("n1"), node("n2", memory_mb=size)], [cold])
    assert migration_refusal(s2, cold, "n2", False) is None


def test_a_migration_stuck_on_a_dead_source_reserves_nothing_on_its_target() -> None:
    """Its task never ends while the source is down; the VM is recovered from the source, so
    the target's memory must stay free for the recovery choosing it (or another VM)."""
    big = vm(100, "n1", memory_mb=3000)
    tasks = [migrating(100, "n2")]
    live = snap([node("n1"), node("n2")], [big], tasks)
    assert free_memory(live, "n2") == 4096 - HOST_RESERVE_MB - 3000
    dead = snap([node("n1", alive=False), node("n2")], [big], tasks)
    assert free_memory(dead, "n2") == 4096 - HOST_RESERVE_MB
