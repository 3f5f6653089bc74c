"""Positive affinity (keep VMs on one host): the placement rule on plain data, and whole runs
of the simulator with the rule set (the scenario format has no line for it yet)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from corral.cluster.models import (
    VM,
    Node,
    NodeInfo,
    Placement,
    RunState,
    Task,
    VMConfig,
)
from corral.cluster.snapshot import ClusterSnapshot
from corral.ha.models import HARule
from corral.ha.placement import choose_node, rule_breach
from corral.sim.runner import Run
from corral.sim.scenario import parse

TOGETHER = HARule(name="pair", kind="affinity", vms=[100, 101])


def vm(vmid: int, node: str, memory: int = 512) -> VM:
    return VM(VMConfig(vmid=vmid, name=f"vm{vmid}", memory_mb=memory, cores=1),
              Placement(node=node, state=RunState.RUNNING), 1, None)


def snap(alive: dict[str, bool], vms: list[VM], tasks: list[Task] | None = None
         ) -> ClusterSnapshot:
    nodes = {n: Node(n, NodeInfo(name=n, cpus=4, memory_mb=4096), a, None, None)
             for n, a in alive.items()}
    return ClusterSnapshot(now=0, nodes=nodes, vms={v.vmid: v for v in vms},
                           tasks=tasks or [])


def test_a_vm_goes_where_its_partner_is_or_is_going() -> None:
    s = snap({"n1": True, "n2": True, "n3": True}, [vm(100, "n2"), vm(101, "n1")])
    assert rule_breach(s, s.vms[101], [TOGETHER], "n3") == "rule pair: keeps it with VM 100 on n2"
    assert rule_breach(s, s.vms[101], [TOGETHER], "n2") is None
    assert choose_node(s, s.vms[101], [TOGETHER], frozenset({"n1"}), True) == ("n2", "")
    moving = Task(id="m", kind="vm.migrate", node="n2", vmid=100, params={"target": "n3"})
    s = snap({"n1": True, "n2": True, "n3": True}, [vm(100, "n2"), vm(101, "n1")], [moving])
    assert choose_node(s, s.vms[101], [TOGETHER], frozenset({"n1"}), True) == ("n3", "")


def test_a_partner_on_a_lost_host_binds_nothing() -> None:
    s = snap({"n1": True, "n2": False, "n3": True}, [vm(100, "n2"), vm(101, "n2")])
    assert rule_breach(s, s.vms[101], [TOGETHER], "n3") is None


def test_affinity_takes_vms_only() -> None:
    with pytest.raises(ValidationError):
        HARule(name="x", kind="affinity", vms=[100])
    with pytest.raises(ValidationError):
        HARule(name="x", kind="affinity", vms=[100, 101], nodes={"n1": 1})


CLUSTER = """
cluster nodes=3 run=60
vm 100 on n2 ha=started memory=1500
vm 101 on n2 ha=started memory=1500
vm 102 on n1 memory=1024
"""


def run_with(text: str, rules: list[HARule]) -> Run:
    r = Run(parse(CLUSTER + text))
    for rule in rules:
        r.world.store.rules[rule.name] = rule
    return r


@pytest.mark.parametrize("rules", [[], [TOGETHER]], ids=["apart", "together"])
def test_recovery_keeps_a_pair_together(rules: list[HARule]) -> None:
    """n3 has room for both, n1 for one: free memory alone splits them (n3 then n1)."""
    r = run_with("at 5 power-off n2\n", rules)
    result = r.run()
    assert result.ok, "\n".join(result.failures + result.log)
    where = (r.world.runs_on(100), r.world.runs_on(101))
    assert where == ((["n3"], ["n3"]) if rules else (["n3"], ["n1"])), result.log


def test_maintenance_moves_a_pair_together() -> None:
    r = run_with("at 5 maintenance n2 on\n", [TOGETHER])
    result = r.run()
    assert result.ok, "\n".join(result.failures + result.log)
    assert (r.world.runs_on(100), r.world.runs_on(101)) == (["n3"], ["n3"]), result.log
