"""The simulator's checks catch what they are there for."""

from __future__ import annotations

from dataclasses import replace

import pytest

from corral.cluster.models import VMStatus
from corral.cluster.snapshot import ClusterSnapshot
from corral.ha.models import HAInputs, HAState, HATiming, NodeStatusHA, VMStatusHA
from corral.manager.decide import decide_with_ha
from corral.sim import scenario
from corral.sim.runner import Run
from corral.sim.scenario import ScenarioError, parse

CUT = """
cluster nodes=3 ttl=10 watchdog=5 run=60
vm 100 on n2 ha=started
at 10 net-off n2
expect at 45 vm 100 running on !n2
"""


def test_safe_configuration_passes() -> None:
    assert Run(parse(CUT)).run().ok


def test_recovery_before_the_watchdog_fires_is_caught() -> None:
    # A host whose watchdog fires later than it publishes (a device timeout nobody set) still
    # runs the VM when it is recovered: two owners.
    r = Run(parse(CUT))
    r.world.hosts["n2"].watchdog = 30
    result = r.run()
    assert any("one-owner" in f for f in result.failures)


def test_ha_bound_is_checked() -> None:
    text = CUT.replace("expect at 45 vm 100 running on !n2", "bound 5")
    result = Run(parse(text)).run()
    assert any("ha-bound" in f for f in result.failures)


def test_failed_expectation_is_reported() -> None:
    result = Run(parse(CUT.replace("!n2", "n2"))).run()
    assert not result.ok and "runs on" in result.failures[0]


def test_bad_lines_name_the_line() -> None:
    with pytest.raises(ScenarioError, match="line 2"):
        parse("cluster nodes=1\nfrobnicate n1\n")


def test_run_is_deterministic() -> None:
    assert Run(parse(CUT)).run().log == Run(parse(CUT)).run().log


STRICT = """
cluster nodes=3 ttl=10 watchdog=5 run=90
vm 100 on n2 ha=started
rule prefer only-n2 n2:1 vms=100 strict
bound 20
at 10 power-off n2
at 60 power-on n2
expect at 80 vm 100 running on n2
"""


def test_ha_bound_counts_only_while_some_host_could_run_the_vm() -> None:
    # Down 50 s, but only n2 may run it and n2 is off all that time: not HA's fault.
    result = Run(parse(STRICT)).run()
    assert result.ok, result.failures


def test_ha_bound_counts_when_another_host_could_run_it() -> None:
    # Without the strict rule n1 or n3 could run it: the bound (too tight for a fence wait)
    # is broken.
    text = STRICT.replace("rule prefer only-n2 n2:1 vms=100 strict\n", "allow-down 999\n")
    text = text.replace("bound 20", "bound 5")
    assert any("ha-bound" in f for f in Run(parse(text)).run().failures)


def test_ha_bound_ignores_hosts_without_room_or_in_maintenance() -> None:
    text = """
cluster nodes=3 memory=1024 run=90
vm 100 on n1 ha=started memory=800
vm 101 on n2 memory=800
maintenance n3
bound 10
at 10 power-off n1
at 70 power-on n1
expect at 85 vm 100 running on n1
"""
    result = Run(parse(text)).run()
    assert result.ok, result.failures


@pytest.mark.parametrize(("text", "message"), [
    ("cluster nodes=2\nvm 100 on n3\n", "line 2: no host 'n3'"),
    ("cluster nodes=2\nvm 100 on n1 ha=sometimes\n", "line 2: ha= 'sometimes' is not one of"),
    ("cluster nodes=2\nat soon power-off n1\n", "line 2: time 'soon' is not a number"),
    ("cluster nodes=2\nat 5 cut-store\n", "line 2: expected 2 words, found 1"),
    ("cluster nodes=2\nexpect at 5 node n1 !dead\n", "line 2: node status '!dead'"),
    ("cluster nodes=2\nexpect at 5 vm 100 never-started-on n1\n",
     "line 2: 'never-started-on' is checked with 'expect during T1 T2'"),
    ("cluster nodes=2\nexpect during 9 5 vm 100 never-started\n", "line 2: the window ends"),
    ("cluster nodes=2\nvm 100 on n1 maintenance=later\n", "line 2: maintenance= 'later'"),
    ("cluster nodes=2\nnode n3 watchdog=soon\n", "line 2: watchdog= 'soon' is not a number"),
    ("cluster nodes=2\nat 5 agent-thaw n1 for=2\n", "line 2: unknown option 'for='"),
    ("vm 100 on n1\n", "line 1: the first statement must be 'cluster'"),
    ("cluster nodes=2\nexpect at 5 node n1 maintenace\n", "line 2: node status 'maintenace'"),
    ("cluster nodes=2\nexpect at 5 vm 100 ha hung\n", "line 2: HA status 'hung'"),
    ("cluster nodes=2\nrule together pair 100\n",
     "line 2: rule pair: vms: affinity needs at least two VMs"),
    ("cluster nodes=2\nrule anti pair 100,101,100\n", "line 2: rule pair: vms: lists a VM twice"),
    ("cluster nodes=2\nrule anti -x 100,101\n", "line 2: rule -x: name: "),
    ("cluster nodes=2\nrule prefer db n1:1 vms=100 failback=no\n",
     "line 2: failback= 'no' is not one of on, off"),
    ("cluster nodes=2\nrule near pair 100,101\n", "line 2: rule kind 'near'"),
    ("cluster nodes=2\nat 5 hang\n", "line 2: expected 2 words, found 1"),
    ("cluster nodes=2\nat 5 unhang n1\n", "line 2: VM id 'n1' is not a whole number"),
    ("cluster nodes=2 failback-hold=soon\n", "line 1: failback-hold= 'soon' is not a number"),
])
def test_parse_errors_name_the_line_and_the_fault(text: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message.replace("(", r"\(")):
        parse(text)


THAW = """
cluster nodes=3 ttl=10 watchdog=5 run=60
node n2 watchdog=0
vm 100 on n2 ha=started
at 10 agent-freeze n2
at 30 agent-thaw n2
expect at 25 node n2 fence
expect at 40 node n2 online
expect at 40 vm 100 running on n2
expect during 10 60 vm 100 never-started
"""


def test_thaw_continues_the_same_agent() -> None:
    # No watchdog on n2: its VM runs through the freeze; the thawed agent renews a new lease
    # and carries on, without a start-up reconcile (no "agent started" line).
    result = Run(parse(THAW)).run()
    assert result.ok, result.failures
    after = [ln for ln in result.log if float(ln.split()[0]) >= 30]
    assert any("n2/lease" in ln and "registers a new one" in ln for ln in after)
    assert not any("agent started" in ln for ln in after)


def test_never_started_window_catches_a_start() -> None:
    text = THAW.replace("node n2 watchdog=0\n", "").replace(
        "expect at 25 node n2 fence\nexpect at 40 node n2 online\n"
        "expect at 40 vm 100 running on n2\n", "")
    result = Run(parse(text)).run()
    assert any("never-started; it started on" in f for f in result.failures)


def test_freeze_and_thaw_of_a_host_that_is_off_change_nothing() -> None:
    text = """
cluster nodes=3 run=40
vm 100 on n2
at 5 power-off n2
at 6 agent-freeze n2
at 7 agent-thaw n2
at 10 power-on n2
expect at 20 vm 100 running on n2
"""
    result = Run(parse(text)).run()
    assert result.ok, result.failures
    assert any("nothing to freeze" in ln for ln in result.log)
    assert any("nothing to thaw" in ln for ln in result.log)


def test_a_window_fails_at_the_first_tick_that_breaks_it() -> None:
    text = CUT.replace("expect at 45 vm 100 running on !n2",
                       "expect during 0 40 node n2 online")
    result = Run(parse(text)).run()
    # n2's lease ends 10 s after its last renewal (9.5): the manager sees it lost at 20.
    assert result.failures == ["t=20: expected during 0-40 node n2 online; "
                               "HA node status is fence"]


@pytest.mark.parametrize("status", [*(s.value for s in NodeStatusHA)])
def test_every_node_status_can_be_expected_and_is_documented(status: str) -> None:
    parse(f"cluster nodes=2\nexpect at 5 node n1 {status}\nexpect at 5 node n1 !{status}\n")
    assert status in (scenario.__doc__ or "").split("node:")[1].split("\n")[0]


@pytest.mark.parametrize("status", [*(s.value for s in VMStatusHA)])
def test_every_vm_status_can_be_expected_and_is_documented(status: str) -> None:
    parse(f"cluster nodes=2\nexpect at 5 vm 100 ha {status}\n")
    assert status in (scenario.__doc__ or "").split("VM:")[1].split("node:")[0].split()


HUNG = """
cluster nodes=3 run=40
vm 100 on n1 ha=started max-restart=0
at 5 hang 100
"""


def blind_to_unknown(snap: ClusterSnapshot, inputs: HAInputs, timing: HATiming
                     ) -> tuple[list[object], HAState]:
    """A broken decision: takes a VM whose QEMU does not answer for stopped."""
    vms = {vmid: replace(vm, runtime=vm.runtime.model_copy(update={"status": VMStatus.STOPPED}))
           if vm.runtime is not None and vm.runtime.status is VMStatus.UNKNOWN else vm
           for vmid, vm in snap.vms.items()}
    actions, state = decide_with_ha(replace(snap, vms=vms), inputs, timing)
    return list(actions), state


def test_a_hung_qemu_counts_as_running_for_one_owner() -> None:
    # Relocating a hung VM runs it twice: its QEMU on n1 lives on while n2 starts another.
    # The host's agent is frozen right after it reported the VM unknown: a running agent
    # would stop a QEMU of a VM placed elsewhere itself, before the copy elsewhere starts.
    r = Run(parse(HUNG.replace("on n1", "on n2") + "at 5.5 agent-freeze n2\n"))
    r.manager.decide = blind_to_unknown
    result = r.run()
    assert any("one-owner: VM 100 runs on" in f for f in result.failures), result.log


def test_the_real_decisions_leave_a_hung_vm_alone() -> None:
    result = Run(parse(HUNG)).run()
    assert result.ok, result.failures
    assert any("VM 100 does not answer QMP: reports it unknown" in ln for ln in result.log)
