"""A running VM that breaks a hard HA rule where it runs (a rule added or changed while it
runs): which VM of a clash moves (the pure ha.compliance), and what the HA state machine
queues for it, pass by pass, on plain data."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from corral.cluster.actions import QueueTask
from corral.cluster.models import (
    VM,
    Node,
    NodeInfo,
    NodeRequest,
    Placement,
    RunState,
    Task,
    TaskState,
    VMConfig,
    VMRuntime,
    VMStatus,
)
from corral.cluster.snapshot import ClusterSnapshot
from corral.ha.compliance import breach_here
from corral.ha.machine import decide_ha
from corral.ha.models import HAInputs, HARequest, HARule, HASettings, HAState, HATiming
from corral.ha.placement import rule_breach

T = HATiming(lease_ttl=10, watchdog_timeout=5, margin=2, stable_after=60)
UP3 = ("n1", "n2", "n3")
PINNED = HARule(name="pinned", kind="node-preference", vms=[100], nodes={"n2": 2, "n3": 1},
                strict=True)
APART = HARule(name="apart", kind="anti-affinity", vms=[100, 101, 102])
PAIR = HARule(name="pair", kind="affinity", vms=[100, 101, 102])


def vm(vmid: int, node: str, origin: str | None = None, memory: int = 512) -> VM:
    return VM(VMConfig(vmid=vmid, name=f"vm{vmid}", memory_mb=memory, cores=1),
              Placement(node=node, state=RunState.RUNNING, origin=origin), 7,
              VMRuntime(node=node, status=VMStatus.RUNNING))


def snap(now: float, vms: list[VM], tasks: list[Task] | None = None,
         hosts: tuple[str, ...] = UP3, memory: int = 4096,
         maintenance: frozenset[str] = frozenset()) -> ClusterSnapshot:
    nodes = {n: Node(n, NodeInfo(name=n, cpus=4, memory_mb=memory, started_at=0), True, None,
                     NodeRequest(maintenance=True) if n in maintenance else None)
             for n in hosts}
    return ClusterSnapshot(now=now, nodes=nodes, vms={v.vmid: v for v in vms},
                           tasks=tasks or [])


def settings(*vmids: int) -> dict[int, HASettings]:
    return {v: HASettings(vmid=v) for v in vmids}


def inputs(rules: list[HARule], *vmids: int, state: HAState | None = None) -> HAInputs:
    return HAInputs(settings=settings(*vmids), rules=rules, state=state or HAState())


def migrations(actions: Sequence[object]) -> dict[int, str]:
    return {a.task.vmid: str(a.task.params["target"]) for a in actions
            if isinstance(a, QueueTask) and a.task.kind == "vm.migrate" and a.task.vmid}


# --- which VM of a clash moves ------------------------------------------------------------

def test_a_strict_rule_that_leaves_out_its_host_is_a_breach() -> None:
    s = snap(0, [vm(100, "n1")])
    b = breach_here(s, 100, "n1", [PINNED], settings(100))
    assert b is not None and b.rule is PINNED and b.only is None
    assert b.why == "rule pinned: n1 is not among its nodes"
    assert breach_here(s, 100, "n2", [PINNED], settings(100)) is None
    # A non-strict preference is failback's business, not a breach.
    soft = PINNED.model_copy(update={"strict": False})
    assert breach_here(s, 100, "n1", [soft], settings(100)) is None


def test_anti_affinity_moves_the_higher_id_unless_ha_cannot_move_the_other() -> None:
    s = snap(0, [vm(100, "n1"), vm(101, "n1")])
    rule = [APART]
    assert breach_here(s, 100, "n1", rule, settings(100, 101)) is None
    b = breach_here(s, 101, "n1", rule, settings(100, 101))
    assert b is not None and b.why == "rule apart: VM 100 runs on n1 too"
    # 101 is not an HA VM (or is stopped by HA): 100 is the one HA can move.
    assert breach_here(s, 100, "n1", rule, settings(100)) is not None
    stopped = {**settings(100), 101: HASettings(vmid=101, state=HARequest.IGNORED)}
    assert breach_here(s, 100, "n1", rule, stopped) is not None
    # 101 is away for maintenance, which brings it back: 100 moves, 101 is left alone.
    s = snap(0, [vm(100, "n1"), vm(101, "n1", origin="n3")])
    assert breach_here(s, 100, "n1", rule, settings(100, 101)) is not None


def test_a_partner_already_leaving_is_no_clash_and_one_arriving_is() -> None:
    leaving = Task(id="m", kind="vm.migrate", node="n1", vmid=101, params={"target": "n2"})
    s = snap(0, [vm(100, "n1"), vm(101, "n1"), vm(102, "n2")], [leaving])
    assert breach_here(s, 102, "n2", [APART], settings(100, 101, 102)) is not None
    assert breach_here(s, 100, "n1", [APART], settings(100, 101, 102)) is None
    # And no other VM of the rule may go where 101 is going (placement's own check).
    assert rule_breach(s, s.vms[100], [APART], "n2") == "rule apart: VM 101 runs on n2"


def test_affinity_gathers_on_one_home_chosen_the_same_from_every_member() -> None:
    every = settings(100, 101, 102)
    # The most members: n2 holds 101 and 102.
    s = snap(0, [vm(100, "n1"), vm(101, "n2"), vm(102, "n2")])
    b = breach_here(s, 100, "n1", [PAIR], every)
    assert b is not None and b.only == "n2" and "gathers on n2 (VM 101, 102)" in b.why
    assert breach_here(s, 101, "n2", [PAIR], every) is None
    # A tie: the host of the lowest id.
    s = snap(0, [vm(100, "n1"), vm(101, "n2"), vm(102, "n3")])
    assert [breach_here(s, v, n, [PAIR], every) is None
            for v, n in ((100, "n1"), (101, "n2"), (102, "n3"))] == [True, False, False]
    # A member HA cannot move anchors the group.
    b = breach_here(s, 100, "n1", [PAIR], settings(100, 101))
    assert b is not None and b.only == "n3"
    # A host some member's strict rule forbids is no home while another host would do.
    only_n2 = HARule(name="only-n2", kind="node-preference", vms=[101], nodes={"n2": 1},
                     strict=True)
    s = snap(0, [vm(100, "n1"), vm(101, "n2")])
    pair = HARule(name="pair", kind="affinity", vms=[100, 101])
    b = breach_here(s, 100, "n1", [pair, only_n2], settings(100, 101))
    assert b is not None and b.only == "n2"
    assert breach_here(s, 101, "n2", [pair, only_n2], settings(100, 101)) is None


# --- what the state machine does -----------------------------------------------------------

def test_a_strict_breach_queues_one_live_move_to_the_best_listed_host() -> None:
    vms = [vm(100, "n1")]
    _, state = decide_ha(snap(0, vms), inputs([], 100), T)
    actions, state = decide_ha(snap(1, vms), inputs([PINNED], 100, state=state), T)
    [task] = [a.task for a in actions if isinstance(a, QueueTask)]
    assert (task.kind, task.node, task.vmid) == ("vm.migrate", "n1", 100)
    assert task.params == {"target": "n2", "with_local_disks": False, "bwlimit_mbps": None,
                           "origin": None}
    st = state.vms[100]
    assert st.status == "migrate" and st.task == task.id
    assert st.reason == "rule pinned: n1 is not among its nodes: moving to n2"
    # While it moves: no second move.
    actions, state = decide_ha(snap(2, vms, [task]), inputs([PINNED], 100, state=state), T)
    assert migrations(actions) == {} and state.vms[100].status == "migrate"
    # Moved: the rule holds, nothing more to do.
    done = task.model_copy(update={"state": TaskState.OK})
    there = [vm(100, "n2")]
    for now in (5, 6, 100):
        actions, state = decide_ha(snap(now, there, [done]), inputs([PINNED], 100, state=state),
                                   T)
        assert migrations(actions) == {} and state.vms[100].status == "started"


def test_the_same_pass_sees_the_moves_queued_before_so_nothing_lands_together() -> None:
    vms = [vm(100, "n1"), vm(101, "n1"), vm(102, "n1")]
    _, state = decide_ha(snap(0, vms), inputs([], 100, 101, 102), T)
    actions, state = decide_ha(snap(1, vms), inputs([APART], 100, 101, 102, state=state), T)
    assert migrations(actions) == {101: "n2", 102: "n3"}
    assert state.vms[100].status == "started"


def test_an_affinity_pair_moves_one_member_to_the_other() -> None:
    pair = HARule(name="pair", kind="affinity", vms=[100, 101])
    vms = [vm(100, "n1"), vm(101, "n2")]
    _, state = decide_ha(snap(0, vms), inputs([], 100, 101), T)
    actions, _ = decide_ha(snap(1, vms), inputs([pair], 100, 101, state=state), T)
    assert migrations(actions) == {101: "n1"}


def test_with_no_compliant_host_it_stays_running_and_says_why() -> None:
    vms = [vm(100, "n1"), vm(101, "n2"), vm(102, "n1")]
    two = ("n1", "n2")
    _, state = decide_ha(snap(0, vms, hosts=two), inputs([], 100, 101, 102), T)
    actions, state = decide_ha(snap(1, vms, hosts=two),
                               inputs([APART], 100, 101, 102, state=state), T)
    assert migrations(actions) == {}
    st = state.vms[102]
    assert st.status == "started" and st.node == "n1"
    assert st.reason == ("rule apart: VM 100 runs on n1 too; stays, no host keeps the rules: "
                         "rule apart: VM 101 runs on n2")
    # Not enough memory where the rule would let it go is said as well.
    small = snap(1, [vm(100, "n1", memory=2048)], memory=2400)
    _, state = decide_ha(small, inputs([], 100), T)
    actions, state = decide_ha(replace(small, now=2), inputs([PINNED], 100, state=state), T)
    assert migrations(actions) == {}
    assert "stays, no host keeps the rules: not enough free memory on n2" in \
        state.vms[100].reason


def test_maintenance_tasks_and_unhealthy_states_are_left_alone() -> None:
    def moves(vms: list[VM], tasks: list[Task] | None = None,
              maintenance: frozenset[str] = frozenset()) -> dict[int, str]:
        _, state = decide_ha(snap(0, vms, tasks, maintenance=maintenance), inputs([], 100), T)
        actions, _ = decide_ha(snap(1, vms, tasks, maintenance=maintenance),
                               inputs([PINNED], 100, state=state), T)
        return migrations(actions)

    assert moves([vm(100, "n1")]) == {100: "n2"}
    assert moves([vm(100, "n1", origin="n2")]) == {}  # evacuated: maintenance owns it
    busy = Task(id="b", kind="vm.shutdown", node="n1", vmid=100)
    assert moves([vm(100, "n1")], [busy]) == {}
    hung = vm(100, "n1")
    hung = replace(hung, runtime=VMRuntime(node="n1", status=VMStatus.UNKNOWN))
    assert moves([hung]) == {}


def test_a_failed_move_is_tried_again_only_after_stable_after() -> None:
    # Failback off: it would move the VM to its preferred n2 once n2 has been up for
    # failback_hold, which is a retry of its own.
    pinned = PINNED.model_copy(update={"failback": False})
    vms = [vm(100, "n1")]
    _, state = decide_ha(snap(0, vms), inputs([], 100), T)
    actions, state = decide_ha(snap(1, vms), inputs([pinned], 100, state=state), T)
    [task] = [a.task for a in actions if isinstance(a, QueueTask)]
    failed = [task.model_copy(update={"state": TaskState.ERROR, "error": "cut"})]
    actions, state = decide_ha(snap(5, vms, failed), inputs([pinned], 100, state=state), T)
    assert state.vms[100].status == "started"  # back from migrate at 5
    for now in (6, 30, 64):
        actions, state = decide_ha(snap(now, vms, failed), inputs([pinned], 100, state=state),
                                   T)
        assert migrations(actions) == {}
        assert "the move off n1 failed" in state.vms[100].reason
    actions, state = decide_ha(snap(65, vms, failed), inputs([pinned], 100, state=state), T)
    assert migrations(actions) == {100: "n2"}

