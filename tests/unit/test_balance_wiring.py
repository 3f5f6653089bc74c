"""The balancer as the manager runs it: what it reads from a cluster snapshot (hosts, the
recent usage records, opt-outs, busy VMs, past migrations) and the migration tasks it
queues. Plain data."""

from __future__ import annotations

from dataclasses import replace

from corral.balancer.inputs import balance_input, balance_task_id
from corral.balancer.model import BalanceConfig
from corral.balancer.planner import still_valid
from corral.cluster import keys
from corral.cluster.actions import QueueTask
from corral.cluster.models import (
    VM,
    Disk,
    Node,
    NodeInfo,
    NodeRequest,
    Placement,
    RecentUsage,
    RunState,
    Series,
    StorageConfig,
    StorageType,
    Task,
    TaskState,
    VMConfig,
    VmRecent,
    VMRuntime,
    VMStatus,
)
from corral.cluster.records import Problem
from corral.cluster.snapshot import ClusterSnapshot
from corral.ha.models import HAInputs, HARule, HATiming
from corral.manager.balance import decide_balance, round_due
from corral.manager.decide import decide_with_balance
from corral.migration.params import MigrateParams

NOW = 10_000.0
POINTS = 15
STORAGES = {"local": StorageConfig(id="local", type=StorageType.DIR, path="l")}
ON = BalanceConfig(enabled=True, window_s=600, horizon_s=600, cooldown_s=600)
NO_HA = HAInputs()


def recent(vms: dict[int, float]) -> RecentUsage:
    series: Series = [0.1] * POINTS
    return RecentUsage(step_seconds=60, last_at=NOW, cpu_avg=series, cpu_max=series,
                       memory_used_mib=[1000] * POINTS, other_cores=[0.05] * POINTS,
                       vms={vmid: VmRecent(cores_avg=[c] * POINTS, cores_max=[c] * POINTS,
                                           memory_mib=200) for vmid, c in vms.items()})


def node(name: str, vms: dict[int, float], alive: bool = True, maintenance: bool = False
         ) -> Node:
    return Node(name, NodeInfo(name=name, cpus=4, memory_mb=16384), alive, None,
                NodeRequest(maintenance=True) if maintenance else None, recent=recent(vms))


def vm(vmid: int, on: str, balance: bool = True, local_disk: bool = False,
       state: RunState = RunState.RUNNING) -> VM:
    cfg = VMConfig(vmid=vmid, name=f"v{vmid}", memory_mb=512, cores=2, balance=balance,
                   disks=[Disk(volume="local:d", size_mb=64)] if local_disk else [])
    running = VMRuntime(node=on, status=VMStatus.RUNNING) if state is RunState.RUNNING \
        else None
    return VM(cfg, Placement(node=on, state=state), 3, running)


def snap(nodes: list[Node], vms: list[VM], tasks: list[Task] | None = None
         ) -> ClusterSnapshot:
    return ClusterSnapshot(now=NOW, nodes={n.name: n for n in nodes},
                           vms={v.vmid: v for v in vms}, tasks=tasks or [], storages=STORAGES)


def crowded(**flags: bool) -> ClusterSnapshot:
    """Four busy VMs on n1, two idle hosts."""
    demand = {101: 1.8, 102: 1.8, 103: 1.8, 104: 1.8}
    return snap([node("n1", demand), node("n2", {}), node("n3", {})],
                [vm(v, "n1") for v in demand])


def test_the_input_carries_hosts_usage_and_running_vms_only() -> None:
    s = snap([node("n1", {101: 1.5}), node("n2", {}, maintenance=True),
              node("n3", {}, alive=False)],
             [vm(101, "n1"), vm(102, "n1", state=RunState.STOPPED)])
    inp = balance_input(s, [])
    hosts = {h.name: h for h in inp.hosts}
    assert hosts["n1"].accepts and hosts["n1"].cpus == 4 and hosts["n1"].cpu_other
    assert not hosts["n2"].accepts and hosts["n2"].why_not == "is in maintenance"
    assert not hosts["n3"].accepts and hosts["n3"].why_not == "is offline"
    assert [v.vmid for v in inp.vms] == [101]
    assert inp.vms[0].cpu == (1.5,) * POINTS and inp.vms[0].memory_used_mb == 200
    assert inp.step_s == 60


def test_gaps_in_a_series_are_left_out() -> None:
    n = node("n1", {})
    assert n.recent is not None
    n.recent.vms[101] = VmRecent(cores_avg=[None] * (POINTS - 2) + [0.5, 0.7],
                                 cores_max=[None] * POINTS)
    inp = balance_input(snap([n], [vm(101, "n1")]), [])
    assert inp.vms[0].cpu == (0.5, 0.7)


def test_opted_out_busy_and_local_disk_vms_are_held_with_the_reason() -> None:
    busy = Task(id="s1", kind="vm.suspend", node="n1", vmid=103, state=TaskState.RUNNING)
    s = snap([node("n1", {101: 1, 102: 1, 103: 1}), node("n2", {})],
             [vm(101, "n1", balance=False), vm(102, "n1", local_disk=True), vm(103, "n1")],
             [busy])
    fixed = {v.vmid: v.why_fixed for v in balance_input(s, []).vms if not v.movable}
    assert "opted out" in fixed[101]
    assert "local disks" in fixed[102]
    assert "vm.suspend" in fixed[103]


def test_finished_migrations_are_the_history_and_running_ones_are_counted() -> None:
    done = Task(id="m1", kind="vm.migrate", node="n2", vmid=101, params={"target": "n1"},
                state=TaskState.OK, ended_at=NOW - 30)
    failed = Task(id="m2", kind="vm.migrate", node="n2", vmid=102, params={"target": "n1"},
                  state=TaskState.ERROR, ended_at=NOW - 20)
    moving = Task(id="m3", kind="vm.migrate", node="n1", vmid=103, params={"target": "n2"},
                  state=TaskState.RUNNING)
    s = snap([node("n1", {101: 1, 102: 1, 103: 1}), node("n2", {})],
             [vm(101, "n1"), vm(102, "n1"), vm(103, "n1")], [done, failed, moving])
    inp = balance_input(s, [])
    assert [(m.vmid, m.source, m.target) for m in inp.history] == [(101, "n2", "n1")]
    assert inp.migrations_running == 1
    assert {v.vmid: v.moving_to for v in inp.vms}[103] == "n2"


def test_a_round_queues_migrations_that_say_why() -> None:
    s = crowded()
    rnd = decide_balance(s, NO_HA, ON)
    assert rnd.plan.moves and len(rnd.queued) == len(rnd.plan.moves)
    for action, move in zip(rnd.queued, rnd.plan.moves, strict=True):
        assert isinstance(action, QueueTask)
        task = action.task
        assert task.kind == "vm.migrate" and task.node == "n1" == move.source
        assert task.id == balance_task_id(s.vms[move.vmid])
        params = MigrateParams.model_validate(task.params)
        assert params.target == move.target != "n1"
        assert params.reason.startswith("load balancing: n1 at CPU")
    assert len(rnd.queued) <= ON.max_concurrent


def test_a_round_keeps_anti_affinity_and_never_moves_an_opted_out_vm() -> None:
    demand = {101: 1.8, 102: 1.8, 103: 1.8, 104: 1.8}
    s = snap([node("n1", demand), node("n2", {201: 0.1}), node("n3", {})],
             [vm(101, "n1", balance=False), vm(102, "n1"), vm(103, "n1"), vm(104, "n1"),
              vm(201, "n2")])
    rule = HARule(name="apart", kind="anti-affinity", vms=[102, 201])
    for _ in range(3):
        rnd = decide_balance(s, HAInputs(rules=[rule]), ON.model_copy(update={"max_concurrent": 10,
                                                               "max_moves_per_round": 10}))
        targets = {m.vmid: m.target for m in rnd.plan.moves}
        assert 101 not in targets
        assert targets.get(102) != "n2"
        assert "opted out" in rnd.plan.held[101]


def test_nothing_moves_while_a_vm_record_or_a_rule_does_not_decode() -> None:
    # VM 105's config does not decode: it runs on n2 and uses memory there, unseen; a rule
    # that does not decode may forbid the very move planned.
    s = crowded()
    assert decide_balance(s, NO_HA, ON).queued
    unreadable = Problem(keys.vm(105, "config"), "not JSON")
    for blind_snap, ha, key in (
            (replace(s, problems=(unreadable,)), NO_HA, "/corral/vms/105"),
            (s, HAInputs(problems=(Problem(keys.ha_rule("apart"), "not JSON"),)),
             keys.ha_rule("apart"))):
        rnd = decide_balance(blind_snap, ha, ON)
        assert rnd.queued == () and rnd.plan.moves == ()
        assert key in rnd.plan.notes[-1] and "nothing moves" in rnd.plan.notes[-1]
    # An HA setting that does not decode says nothing about load or rules.
    setting = HAInputs(problems=(Problem(keys.ha(105), "not JSON"),))
    assert decide_balance(s, setting, ON).queued


def test_a_failed_balancing_move_is_not_tried_again_for_the_same_placement() -> None:
    s = crowded()
    first = decide_balance(s, NO_HA, ON).queued[0].task
    failed = first.model_copy(update={"state": TaskState.ERROR, "error": "target died",
                                      "ended_at": NOW})
    again = decide_balance(s.with_tasks([failed]), NO_HA, ON)
    assert first.vmid not in {m.vmid for m in again.plan.moves}
    assert "target died" in again.plan.held[first.vmid or 0]


def test_nothing_while_disabled_and_rounds_every_interval() -> None:
    off = BalanceConfig()
    assert not round_due(off, None)
    assert round_due(ON, None)
    assert not round_due(ON, ON.interval_s - 1)
    assert round_due(ON, ON.interval_s)


def test_a_round_runs_after_ha_and_maintenance_and_never_moves_what_they_move() -> None:
    """n1 goes into maintenance with four busy VMs: maintenance evacuates two (its
    parallel), and the round in the same pass neither moves those nor targets n1."""
    demand = {101: 1.8, 102: 1.8, 103: 1.8, 104: 1.8}
    s = snap([node("n1", demand, maintenance=True), node("n2", {}), node("n3", {})],
             [vm(v, "n1") for v in demand])
    timing = HATiming(lease_ttl=10, watchdog_timeout=5, margin=2)
    actions, _, rnd = decide_with_balance(s, HAInputs(), timing,
                                          ON.model_copy(update={"max_concurrent": 10}))
    evacuating = {a.task.vmid for a in actions if isinstance(a, QueueTask)
                  and a.task.id.startswith("maint-")}
    assert len(evacuating) == 2
    assert rnd is not None and not rnd.plan.moves
    for vmid in demand:
        why = rnd.plan.held[vmid]
        assert why.startswith("already migrating") if vmid in evacuating else "n1" in why


def test_no_round_when_none_is_due_and_one_counts_running_migrations() -> None:
    s = crowded()
    timing = HATiming(lease_ttl=10, watchdog_timeout=5, margin=2)
    actions, _, rnd = decide_with_balance(s, HAInputs(), timing, None)
    assert rnd is None and not [a for a in actions if isinstance(a, QueueTask)]
    busy = ON.model_copy(update={"max_concurrent": 1})
    moving = Task(id="m", kind="vm.migrate", node="n1", vmid=101, params={"target": "n2"},
                  state=TaskState.RUNNING)
    _, _, rnd = decide_with_balance(s.with_tasks([moving]), HAInputs(), timing, busy)
    assert rnd is not None and not rnd.plan.moves
    assert any("max_concurrent" in n for n in rnd.plan.notes)


def test_a_move_to_a_host_that_died_since_the_plan_is_not_started() -> None:
    s = crowded()
    [first, *_] = decide_balance(s, NO_HA, ON).plan.moves
    dead = dict(s.nodes)
    target = dead[first.target]
    dead[first.target] = Node(target.name, target.info, False, None, None,
                              recent=target.recent)
    later = ClusterSnapshot(now=NOW + 5, nodes=dead, vms=s.vms, storages=STORAGES)
    why = still_valid(first, balance_input(later, []), ON)
    assert why is not None and first.target in why
    assert all(m.target != first.target for m in decide_balance(later, NO_HA, ON).plan.moves)
