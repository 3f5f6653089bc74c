"""A clean host shutdown in the simulator: the scenario lines that describe it are checked
line by line, the simulated agent follows the real agent's sequence and decisions, and HA's
deliberate wait for a shut-down host does not count as down-time."""

from __future__ import annotations

import pytest

from corral.cluster.models import ShutdownPolicy, Task, TaskState
from corral.sim import shutdown
from corral.sim.runner import Run
from corral.sim.scenario import ScenarioError, parse
from corral.sim.world import World


@pytest.mark.parametrize(("text", "message"), [
    ("cluster nodes=2\nat 5 shutdown n3\n", "line 2: no host 'n3'"),
    ("cluster nodes=2\nat 5 shutdown n1 halt\n",
     "line 2: shutdown kind 'halt' is not one of reboot, poweroff"),
    ("cluster nodes=2\nat 5 shutdown n1 reboot now\n", "line 2: expected 2 to 3 words, found 4"),
    ("cluster nodes=2\nat 5 shutdown n1 back=5\n", "line 2: back= is for a reboot"),
    ("cluster nodes=2\nat 5 shutdown n1 poweroff back=5\n", "line 2: back= is for a reboot"),
    ("cluster nodes=2\nat 5 shutdown n1 reboot back=soon\n",
     "line 2: back= 'soon' is not a number"),
    ("cluster nodes=2\nat 5 shutdown n1 timeout=-3\n", "line 2: timeout= '-3' is negative"),
    ("cluster nodes=2\nat 5 shutdown n1 reboot later=3\n", "line 2: unknown option 'later='"),
    ("cluster nodes=2\nat 5 shutdown 100 reboot\n", "line 2: expected 2 words, found 3"),
    ("cluster nodes=2\nat 5 shutdown 100 back=3\n", "line 2: unknown option 'back='"),
    ("cluster nodes=2\nshutdown-policy sometimes\n",
     "line 2: shutdown policy 'sometimes' is not one of freeze, failover, migrate, "
     "conditional"),
    ("cluster nodes=2\nshutdown-policy\n", "line 2: expected 2 words, found 1"),
    ("cluster nodes=2\nat 5 shutdown-policy halt\n", "line 2: shutdown policy 'halt'"),
    ("shutdown-policy freeze\n", "line 1: the first statement must be 'cluster'"),
])
def test_shutdown_lines_name_the_line_and_the_fault(text: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message.replace("(", r"\(")):
        parse(text)


def test_shutdown_of_a_vm_and_of_a_host_are_told_apart() -> None:
    sc = parse("cluster nodes=2\nvm 100 on n1\nat 5 shutdown 100\n"
               "at 6 shutdown n2 reboot back=4 timeout=9 stop-timeout=3\nat 7 shutdown all\n"
               "at 8 shutdown-policy migrate\n")
    assert [(t, ln.words, ln.opts) for t, ln in sc.events] == [
        (5, ["shutdown", "100"], {}),
        (6, ["shutdown", "n2", "reboot"], {"back": "4", "timeout": "9", "stop-timeout": "3"}),
        (7, ["shutdown", "all"], {}),
        (8, ["shutdown-policy", "migrate"], {}),
    ]


def test_the_policy_line_sets_the_clusters_setting() -> None:
    run = Run(parse("cluster nodes=2\nshutdown-policy migrate\n"))
    assert run.world.store.ha_config.shutdown_policy is ShutdownPolicy.MIGRATE
    assert Run(parse("cluster nodes=2\n")).world.store.ha_config.shutdown_policy \
        is ShutdownPolicy.CONDITIONAL


def tick(w: World, until: float) -> None:
    while w.t < until:
        w.leases_and_watchdogs()
        w.agents()
        w.t = round(w.t + 0.5, 6)


def test_the_shutdown_record_is_the_snapshots_for_one_agent_life() -> None:
    w = World(ttl=10.0, watchdog=5.0)
    w.add_host("n1", 4096)
    w.add_host("n2", 4096)
    w.add_vm(100, "n2", 512, running=True)
    tick(w, 2.0)
    shutdown.begin(w, w.hosts["n2"], "reboot", back=5.0)
    sd = w.snapshot().nodes["n2"].shutting_down
    assert sd is not None and (sd.policy, sd.kind, sd.done) == ("freeze", "reboot", False)
    tick(w, 4.5)  # the guest is off 2 s after its power button: done, lease released
    n2 = w.snapshot().nodes["n2"]
    assert n2.shutting_down is not None and n2.shutting_down.done and not n2.alive
    assert w.runs_on(100) == []
    tick(w, 13.0)  # back 5 s later, its agent 3 s after that: a new life, the record gone
    n2 = w.snapshot().nodes["n2"]
    assert n2.alive and n2.shutdown is None and n2.shutting_down is None
    assert w.runs_on(100) == ["n2"]  # placed to run there all along: started again


def test_an_agent_that_empties_its_host_refuses_to_start_a_guest() -> None:
    w = World(ttl=10.0, watchdog=5.0)
    w.add_host("n1", 4096)
    w.add_host("n2", 4096)
    w.add_vm(100, "n2", 512, running=True, maintenance="stay")
    w.add_vm(101, "n2", 512, running=False, maintenance="stay")
    w.add_vm(102, "n2", 512, running=True)  # maintenance moves it: the agent waits for that
    w.store.ha_config = w.store.ha_config.model_copy(
        update={"shutdown_policy": ShutdownPolicy.MIGRATE})
    shutdown.begin(w, w.hosts["n2"], "poweroff", timeout=20.0)
    req = w.store.requests["n2"]
    assert req.maintenance and req.by == "shutdown"
    w.store.tasks["t"] = Task(id="t", kind="vm.start", node="n2", vmid=101, created_at=0.0)
    tick(w, 1.0)
    task = w.store.tasks["t"]
    assert task.state is TaskState.ERROR and task.error == "n2 is shutting down"
    assert w.runs_on(101) == []
    tick(w, 20.5)  # nobody moved 102 (no manager here): the wait ends at its bound
    assert w.runs_on(100) == w.runs_on(102) == ["n2"]
    tick(w, 23.0)
    assert w.runs_on(100) == w.runs_on(102) == [] and not w.alive("n2")


FROZEN = """
cluster nodes=3 run=80
shutdown-policy freeze
bound 5
vm 100 on n2 ha=started
at 10 shutdown n2 poweroff
at 60 fence-confirm n2
expect at 70 vm 100 running on !n2
"""


def test_a_vm_frozen_for_its_host_is_not_down_time() -> None:
    # Down for about 50 s with two hosts free, against a bound of 5 s: HA waits on purpose.
    result = Run(parse(FROZEN)).run()
    assert result.ok, result.failures


def test_a_shutdown_cut_short_is_down_time_again() -> None:
    # The host dies before its shutdown is done: an ordinary lost host, whose VM counts as
    # down once HA no longer waits for the host on purpose (fence wait, then recovery).
    text = """
cluster nodes=3 run=60
bound 2
vm 100 on n2 ha=started
at 5 hang 100
at 10 shutdown n2 poweroff
at 20 power-off n2
"""
    failures = Run(parse(text)).run().failures
    assert failures == ["t=32: ha-bound: HA VM 100 down longer than 2s while a host could "
                        "run it"]


def test_a_host_without_a_running_agent_shuts_down_as_a_lost_host() -> None:
    # A stopped agent carries out no policy: no record, no lease given up; its VMs end with
    # the host and the lease runs out as for a host that died.
    w = World(ttl=10.0, watchdog=5.0)
    w.add_host("n1", 4096)
    w.add_host("n2", 4096)
    w.add_vm(100, "n2", 512, running=True)
    tick(w, 2.0)
    h = w.hosts["n2"]
    h.agent_up, h.frozen = False, True  # as the scenario runner's agent-freeze
    shutdown.begin(w, h, "poweroff")
    assert not h.powered and w.runs_on(100) == []
    assert w.store.shutdowns == {} and w.alive("n2")
    tick(w, 12.0)
    assert not w.alive("n2")
