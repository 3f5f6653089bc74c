"""Failback on the simulator with a rule the scenario format cannot write yet (`failback`
off): follows Proxmox test-node-affinity-nonstrict2 (nofailback), with the preferred host's
return in place of a manual migration."""

from __future__ import annotations

import pytest

from corral.ha.models import HARule
from corral.sim.runner import Run
from corral.sim.scenario import parse

SCENARIO = """
cluster nodes=3 run=140
vm 100 on n1 ha=started
at 5 power-off n1
at 40 power-on n1
expect at 35 vm 100 running on n2
"""


@pytest.mark.parametrize("failback", [True, False])
def test_a_returning_preferred_host_gets_the_vm_back_only_with_failback(failback: bool
                                                                        ) -> None:
    r = Run(parse(SCENARIO))
    r.world.store.rules["home"] = HARule(name="home", kind="node-preference", vms=[100],
                                         nodes={"n1": 2, "n2": 1}, failback=failback)
    result = r.run()
    assert result.ok, "\n".join(result.failures + result.log)
    assert r.world.runs_on(100) == (["n1"] if failback else ["n2"]), "\n".join(result.log)
    moves = [line for line in result.log if "failback to n1" in line]
    assert len(moves) == (1 if failback else 0), "\n".join(result.log)
