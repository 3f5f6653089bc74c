"""The cluster's metrics from hand-built snapshots: exact values and labels."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from corral.cluster.models import (
    VM,
    Disk,
    Node,
    NodeInfo,
    NodeRequest,
    NodeUsage,
    Placement,
    RunState,
    Task,
    TaskState,
    VMConfig,
    VMRuntime,
    VMStatus,
)
from corral.cluster.records import Problem
from corral.cluster.snapshot import ClusterSnapshot
from corral.ha.models import (
    HAInputs,
    HASettings,
    HAState,
    NodeHAState,
    NodeStatusHA,
    VMHAState,
    VMStatusHA,
)
from corral.metrics import names
from corral.metrics.cluster import HOST_HA_STATUSES, VM_HA_STATUSES, buckets, cluster_metrics

MB = 1024 * 1024
Key = tuple[str, frozenset[tuple[str, str]]]


def samples(snap: ClusterSnapshot, ha: HAInputs | None = None) -> dict[Key, float]:
    found: dict[Key, float] = {}
    for family in cluster_metrics(snap, ha or HAInputs()):
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in found, f"two samples {key}"
            found[key] = s.value
    return found


def of(found: dict[Key, float], name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in found.items() if n == name}


def lab(**labels: str) -> frozenset[tuple[str, str]]:
    return frozenset(labels.items())


def node(name: str, alive: bool, usage: NodeUsage | None = None,
         maintenance: bool = False) -> Node:
    return Node(name=name, info=NodeInfo(name=name, cpus=8, memory_mb=16384), alive=alive,
                usage=usage, request=NodeRequest(maintenance=True) if maintenance else None)


def vm(vmid: int, name: str, node: str, state: RunState, status: VMStatus | None,
       disks: tuple[int, ...] = ()) -> VM:
    config = VMConfig(vmid=vmid, name=name, memory_mb=512, cores=2, disks=[
        Disk(volume=f"local:vm-{vmid}-disk-{i}.qcow2", size_mb=size)
        for i, size in enumerate(disks)])
    runtime = VMRuntime(node=node, status=status) if status is not None else None
    return VM(config=config, placement=Placement(node=node, state=state), placement_rev=3,
              runtime=runtime)


def task(id: str, kind: str, state: TaskState, vmid: int | None = None,
         started: float | None = None, ended: float | None = None,
         result: dict[str, Any] | None = None) -> Task:
    return Task(id=id, kind=kind, node="n1", vmid=vmid, state=state, created_at=0.0,
                started_at=started, ended_at=ended, result=result or {})


USAGE = NodeUsage(cpu=0.25, memory_used_mb=3000, memory_total_mb=16000, load1=1.5,
                  vms_running=1, sampled_at=1000.0)


def cluster(tasks: list[Task] | None = None) -> ClusterSnapshot:
    return ClusterSnapshot(
        now=1010.0,
        nodes={"n1": node("n1", True, USAGE), "n2": node("n2", False, maintenance=True)},
        vms={101: vm(101, "web", "n1", RunState.RUNNING, VMStatus.RUNNING, disks=(1024, 512)),
             102: vm(102, "db", "n2", RunState.STOPPED, None)},
        tasks=tasks or [], revision=42)


def test_hosts_usage_and_state() -> None:
    found = samples(cluster())
    assert of(found, "corral_host_up") == {lab(host="n1"): 1, lab(host="n2"): 0}
    assert of(found, "corral_host_maintenance") == {lab(host="n1"): 0, lab(host="n2"): 1}
    assert of(found, "corral_host_cpus") == {lab(host="n1"): 8, lab(host="n2"): 8}
    # Usage only where a host reported a sample: no made-up zeros for n2.
    assert of(found, "corral_host_cpu_usage_ratio") == {lab(host="n1"): 0.25}
    assert of(found, "corral_host_memory_used_bytes") == {lab(host="n1"): 3000 * MB}
    assert of(found, "corral_host_memory_total_bytes") == {lab(host="n1"): 16000 * MB}
    assert of(found, "corral_host_load1") == {lab(host="n1"): 1.5}
    assert of(found, "corral_host_vms_running") == {lab(host="n1"): 1}
    assert of(found, "corral_host_usage_sampled_timestamp_seconds") == {lab(host="n1"): 1000}
    assert of(found, "corral_snapshot_revision") == {lab(): 42}


def test_vms_configuration_and_current_status() -> None:
    found = samples(cluster())
    web, db = lab(vmid="101", name="web"), lab(vmid="102", name="db")
    assert of(found, "corral_vm_info") == {lab(vmid="101", name="web", host="n1"): 1,
                                           lab(vmid="102", name="db", host="n2"): 1}
    # The current status only: one series per VM.
    assert of(found, "corral_vm_status") == {web | {("status", "running")}: 1,
                                             db | {("status", "unknown")}: 1}
    assert of(found, "corral_vm_requested_running") == {web: 1, db: 0}
    assert of(found, "corral_vm_memory_bytes") == {web: 512 * MB, db: 512 * MB}
    assert of(found, "corral_vm_cores") == {web: 2, db: 2}
    assert of(found, "corral_vm_disk_bytes") == {web: 1536 * MB, db: 0}
    counts = of(found, "corral_vms")
    assert counts[lab(status="running")] == 1 and counts[lab(status="unknown")] == 1
    assert sum(counts.values()) == 2 and len(counts) == len(VMStatus)



def test_a_vm_reported_running_by_a_lost_host_counts_as_unknown_as_the_api_shows_it() -> None:
    snap = cluster()
    lost = replace(snap, vms={103: vm(103, "cache", "n2", RunState.RUNNING, VMStatus.RUNNING)})
    found = samples(lost)
    assert of(found, "corral_vm_status") == {lab(vmid="103", name="cache", status="unknown"): 1}
    assert of(found, "corral_vms")[lab(status="running")] == 0

def test_ha_states_of_vms_and_hosts() -> None:
    ha = HAInputs(
        settings={101: HASettings(vmid=101), 102: HASettings(vmid=102), 103: HASettings(vmid=103)},
        state=HAState(
            vms={101: VMHAState(status=VMStatusHA.STARTED, node="n1", restarts=1)},
            nodes={"n2": NodeHAState(status=NodeStatusHA.FENCE)}),
        problems=(Problem("/corral/ha/rules/x", "bad"),))
    found = samples(cluster(), ha)
    # 102: the manager has not looked at it yet; 103: HA settings of a VM that is gone.
    assert of(found, "corral_vm_ha_status") == {lab(vmid="101", name="web", status="started"): 1,
                                                lab(vmid="102", name="db", status="pending"): 1,
                                                lab(vmid="103", name="", status="error"): 1}
    assert of(found, "corral_vm_ha_restarts") == {
        lab(vmid="101", name="web"): 1, lab(vmid="102", name="db"): 0,
        lab(vmid="103", name=""): 0}
    assert of(found, "corral_host_ha_status") == {lab(host="n1", status="online"): 1,
                                                  lab(host="n2", status="fence"): 1}
    ha_vms = of(found, "corral_ha_vms")
    assert len(ha_vms) == len(VM_HA_STATUSES)  # the counts have every status
    assert len(of(found, "corral_ha_hosts")) == len(HOST_HA_STATUSES)
    assert {k: v for k, v in ha_vms.items() if v} == {
        lab(status="started"): 1, lab(status="pending"): 1, lab(status="error"): 1}
    assert {k: v for k, v in of(found, "corral_ha_hosts").items() if v} == {
        lab(status="online"): 1, lab(status="fence"): 1}
    assert of(found, "corral_unreadable_records") == {lab(): 1}


def test_without_ha_no_vm_has_an_ha_status() -> None:
    found = samples(cluster())
    assert of(found, "corral_vm_ha_status") == {}
    assert sum(of(found, "corral_ha_vms").values()) == 0
    # Hosts have an HA status all the same (what `corral ha status` shows).
    assert of(found, "corral_host_ha_status") == {lab(host="n1", status="online"): 1,
                                                  lab(host="n2", status="unknown"): 1}


def test_task_counts_and_run_times_of_finished_tasks() -> None:
    tasks = [task("a", "vm.start", TaskState.OK, 101, started=10.0, ended=12.0),
             task("b", "vm.start", TaskState.OK, 102, started=10.0, ended=70.0),
             task("c", "vm.start", TaskState.ERROR, 101, started=5.0, ended=5.2),
             task("d", "vm.start", TaskState.RUNNING, 101, started=5.0),
             task("e", "vm.create", TaskState.QUEUED, 103),
             task("f", "vm.create", TaskState.ERROR, 104, ended=9.0)]  # never started
    found = samples(replace(cluster(tasks), now=3670.0))
    assert of(found, "corral_tasks") == {
        lab(kind="vm.start", state="ok"): 2, lab(kind="vm.start", state="error"): 1,
        lab(kind="vm.start", state="running"): 1, lab(kind="vm.create", state="queued"): 1,
        lab(kind="vm.create", state="error"): 1}
    # At t=3670 the last hour goes back to 70 s: the task that ended then is the only one.
    assert of(found, "corral_tasks_finished_last_hour") == {lab(kind="vm.start", state="ok"): 1}
    ok = lab(kind="vm.start", state="ok")
    bucket = of(found, "corral_task_duration_seconds_bucket")
    assert bucket[ok | {("le", "2.5")}] == 1  # the 2 s start
    assert bucket[ok | {("le", "30.0")}] == 1
    assert bucket[ok | {("le", "60.0")}] == 2  # the 60 s one too: bounds are inclusive
    assert bucket[ok | {("le", "+Inf")}] == 2
    assert of(found, "corral_task_duration_seconds_gcount")[ok] == 2
    assert of(found, "corral_task_duration_seconds_gsum")[ok] == 62.0
    failed = lab(kind="vm.start", state="error")
    assert bucket[failed | {("le", "0.5")}] == 1
    # Unfinished tasks, and a finished one that never started, have no run time.
    assert {dict(k)["state"] for k in of(found, "corral_task_duration_seconds_gcount")} == {
        "ok", "error"}
    assert not [k for k in of(found, "corral_task_duration_seconds_gcount")
                if dict(k)["kind"] == "vm.create"]


def migrate(id: str, vmid: int, ended: float, **result: Any) -> Task:
    return task(id, "vm.migrate", TaskState.OK, vmid, started=ended - 5, ended=ended,
                result=result)


def test_migration_bytes_and_downtime_from_successful_migrate_tasks() -> None:
    tasks = [migrate("m2", 101, 200.0, mode="live", bytes=3 * 2**30, downtime_ms=20,
                     pause_ms=35),
             migrate("m1", 101, 100.0, mode="live", bytes=2**20, downtime_ms=400,
                     pause_ms=410),
             migrate("m3", 102, 150.0, mode="cold", bytes=0),
             migrate("m4", 999, 150.0, mode="live", bytes=5, downtime_ms=1),  # VM gone since
             task("m5", "vm.migrate", TaskState.ERROR, 101, started=1.0, ended=2.0,
                  result={"mode": "live", "bytes": 7}),
             migrate("m6", 101, 50.0, mode="live")]  # no figures: left out
    found = samples(cluster(tasks))
    # The latest move of each VM that still exists.
    assert of(found, "corral_vm_last_migration_bytes") == {
        lab(vmid="101", name="web", mode="live"): 3 * 2**30,
        lab(vmid="102", name="db", mode="cold"): 0}
    assert of(found, "corral_vm_last_migration_downtime_seconds") == {
        lab(vmid="101", name="web"): 0.035}
    moved = of(found, "corral_migration_bytes_bucket")
    live = lab(mode="live")
    assert moved[live | {("le", repr(float(2**24)))}] == 2  # 1 MiB and 5 bytes
    assert moved[live | {("le", repr(float(2**32)))}] == 3  # and 3 GiB
    assert moved[lab(mode="cold") | {("le", "+Inf")}] == 1
    assert of(found, "corral_migration_bytes_gsum")[live] == 3 * 2**30 + 2**20 + 5
    pause = of(found, "corral_migration_downtime_seconds_bucket")
    assert pause[lab(le="0.005")] == 1  # m4: its downtime alone (no pause_ms reported)
    assert pause[lab(le="0.05")] == 2
    assert pause[lab(le="0.5")] == 3
    assert of(found, "corral_migration_downtime_seconds_gcount") == {lab(): 3}


def test_buckets_are_cumulative_with_inf() -> None:
    assert buckets([0.1, 1.0, 7.0], (0.5, 1.0, 5.0)) == [
        ("0.5", 1.0), ("1.0", 2.0), ("5.0", 2.0), ("+Inf", 3.0)]
    assert buckets([], (1.0,)) == [("1.0", 0.0), ("+Inf", 0.0)]


def test_every_family_is_a_declared_metric() -> None:
    declared = {s.name: s for s in names.CLUSTER}
    families = cluster_metrics(cluster([migrate("m", 101, 9.0, mode="live", bytes=1)]),
                               HAInputs())
    assert sorted(f.name for f in families) == sorted(declared)
    for f in families:
        spec = declared[f.name]
        assert f.type == spec.type and f.documentation == spec.help
        for s in f.samples:
            assert set(s.labels) - {"le"} == set(spec.labels), (f.name, s.labels)
