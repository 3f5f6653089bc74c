"""The scenario lines of store quorum (witness, voter=, partition, expected, rejoin, the quorum
and member expectations): checked line by line, and what they do in a run."""

from __future__ import annotations

import pytest

from corral.cluster.snapshot import ClusterSnapshot
from corral.ha.models import HAInputs, HAState, HATiming
from corral.sim.runner import Run
from corral.sim.scenario import ScenarioError, parse


@pytest.mark.parametrize(("text", "message"), [
    ("witness n1\n", "line 2: 'n1' is a host already"),
    ("witness w\nwitness w\n", "line 3: 'w' is a witness already"),
    ("witness all\n", "line 2: 'all' cannot name a witness"),
    ("witness w extra\n", "line 2: expected 2 words, found 3"),
    ("witness w memory=3\n", "line 2: unknown option 'memory='"),
    ("witness w\nnode w\n", "line 3: 'w' is a witness already"),
    ("node n1 voter=maybe\n", "line 2: voter= 'maybe' is not one of yes, no"),
    ("node n1 voter=no\nnode n2 voter=no\n", "line 3: no etcd voter is left"),
    ("witness w\nvm 100 on w\n", "line 3: 'w' is a witness (no agent, no VMs), not a host"),
    ("witness w\nat 5 agent-freeze w\n", "line 3: 'w' is a witness"),
    ("witness w\nat 5 cut-peers w\n", "line 3: 'w' is a witness"),
    ("witness w\nat 5 power-off w9\n", "line 3: no host or witness 'w9' (known: n1, n2, w)"),
    ("at 5 power-off w\n", "line 2: no host 'w'"),
    ("at 5 partition n1\n", "line 2: expected 'partition SIDE SIDE"),
    ("at 5 partition n1 n1\n", "line 2: 'n1' is on two sides"),
    ("at 5 partition n1,n3 n2\n", "line 2: no host 'n3'"),
    ("at 5 partition n1, n2\n", "line 2: an empty name in a side"),
    ("at 5 partition n1 n2 for=3\n", "line 2: unknown option 'for='"),
    ("at 5 expected n1 2\n", "line 2: expected votes '2' is not 1"),
    ("at 5 expected n1\n", "line 2: expected 3 words, found 2"),
    ("witness w\nat 5 expected w 1\n", "line 3: 'w' is a witness"),
    ("at 5 rejoin n3\n", "line 2: no host 'n3'"),
    ("at 5 rejoin all\n", "line 2: no host 'all'"),
    ("expect at 5 quorum maybe\n", "line 2: quorum 'maybe' is not one of yes, no"),
    ("expect at 5 quorum n3 yes\n", "line 2: no host 'n3'"),
    ("expect at 5 quorum n1 yes no\n", "line 2: expected 2 to 3 words, found 4"),
    ("expect at 5 member n1 gone\n", "line 2: member state 'gone' is not one of voter, out"),
])
def test_quorum_lines_name_the_line_and_the_fault(text: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse("cluster nodes=2\n" + text)


def test_the_lines_are_read_as_written() -> None:
    sc = parse("cluster nodes=2\nwitness w\nnode n3 voter=no\nat 5 partition n1,w n2 n3\n"
               "at 6 expected n1 1\nat 7 rejoin w\nexpect at 8 quorum n1 yes\n"
               "expect at 8 member n3 client\n")
    assert [ln.words for ln in sc.setup[1:]] == [["witness", "w"], ["node", "n3"]]
    assert sc.setup[2].opts == {"voter": "no"}
    assert [(t, ln.words) for t, ln in sc.events] == [
        (5, ["partition", "n1,w", "n2", "n3"]), (6, ["expected", "n1", "1"]),
        (7, ["rejoin", "w"])]


def test_voters_by_default_every_host_and_each_witness() -> None:
    run = Run(parse("cluster nodes=3\nnode n4\nnode n5 voter=no\nwitness w\n"))
    assert run.world.members.voters == {"n1", "n2", "n3", "n4", "w"}
    assert "w" not in run.world.hosts  # no agent, no node in the cluster's records
    assert "w" not in run.world.snapshot().nodes


def test_a_node_line_keeps_what_it_does_not_say() -> None:
    run = Run(parse("cluster nodes=2\nnode n2 voter=no\nnode n2 memory=1024\n"))
    assert run.world.members.voters == {"n1"}
    assert run.world.hosts["n2"].memory_mb == 1024


TWO = """
cluster nodes=2 run=60
vm 100 on n1 ha=started
bound 5
at 5 power-off n2
"""


def idle(snap: ClusterSnapshot, inputs: HAInputs, timing: HATiming
         ) -> tuple[list[object], HAState]:
    """A manager that never acts: a VM it should restart stays down."""
    return [], inputs.state


def test_the_bound_does_not_count_without_quorum() -> None:
    # n1 is up, with room, but the store has no majority: nothing may run VM 100.
    run = Run(parse(TWO))
    run.manager.decide = idle
    result = run.run()
    assert result.ok, result.failures
    assert any("quorum lost" in ln for ln in result.log)


def test_the_bound_counts_again_once_the_store_has_quorum() -> None:
    # Counted from 20, when the store has its majority again, not from 9.5, when n1's
    # watchdog killed the VM.
    run = Run(parse(TWO + "at 20 power-on n2\n"))
    run.manager.decide = idle
    result = run.run()
    assert [f for f in result.failures if "ha-bound" in f] == [
        "t=25: ha-bound: HA VM 100 down longer than 5s while a host could run it"]


def test_all_names_the_witnesses_for_power_and_network() -> None:
    run = Run(parse("cluster nodes=2 run=20\nwitness w\nat 5 power-off all\n"
                    "at 10 power-on all\nat 12 net-off all\nexpect at 6 quorum no\n"))
    result = run.run()
    assert result.ok, result.failures
    assert run.world.witnesses["w"].powered and not run.world.witnesses["w"].reaches_store


def test_a_witness_cut_from_the_store_counts_for_nobody() -> None:
    result = Run(parse("cluster nodes=2 run=30\nwitness w\nat 5 cut-store w\n"
                       "at 6 power-off n2\nexpect at 7 quorum no\nat 10 heal w\n"
                       "expect at 11 quorum n1 yes\n")).run()
    assert result.ok, result.failures


def test_heal_brings_a_host_back_to_the_first_side() -> None:
    run = Run(parse("cluster nodes=3 run=30\nat 5 partition n1 n2 n3\nat 10 heal n2\n"
                    "expect at 9 quorum no\nexpect at 11 quorum n1 yes\n"
                    "expect at 11 quorum n3 no\n"))
    result = run.run()
    assert result.ok, result.failures
    assert [run.world.hosts[n].side for n in ("n1", "n2", "n3")] == [0, 0, 2]


def test_no_migration_across_a_partition() -> None:
    result = Run(parse("cluster nodes=3 run=20\nvm 100 on n1\nat 5 partition n1,n2 n3\n"
                       "at 6 migrate 100 n3\nat 12 migrate 100 n2\n"
                       "expect at 18 vm 100 running on n2\n")).run()
    assert result.ok, result.failures
    assert any("task op-100-migrate-6 error" in ln for ln in result.log)


def test_the_override_while_a_majority_lives_elsewhere_is_not_modelled() -> None:
    # n1 is cut off from n2 and n3, who keep the cluster: an override on n1 would make a
    # second cluster; the simulator has one store and changes nothing.
    run = Run(parse("cluster nodes=3 run=20\nat 5 cut-store n1\nat 6 expected n1 1\n"
                    "expect at 7 member n2 voter\n"))
    result = run.run()
    assert result.ok, result.failures
    assert run.world.members.epoch == 1
    assert any("would make two clusters" in ln for ln in result.log)


def test_a_rejoin_needs_the_majority_in_reach_and_the_machine_on() -> None:
    text = """
cluster nodes=2 run=40
witness w
at 5 power-off n2
at 5 power-off w
at 10 expected n1 1
at 12 rejoin w
at 14 power-on w
at 15 cut-store w
at 16 rejoin w
at 18 heal w
at 20 rejoin w
at 21 rejoin w
expect at 13 member w out
expect at 17 member w out
expect at 22 member w voter
expect at 22 member n2 out
"""
    run = Run(parse(text))
    result = run.run()
    assert result.ok, result.failures
    said = [ln.split("store", 1)[1].strip() for ln in result.log if " store " in ln]
    assert "w cannot rejoin: it is off" in said
    assert "w cannot rejoin: no majority of voters n1 in reach" in said
    assert "w rejoins, its old etcd data wiped: voters n1, w" in said
    assert "nothing to rejoin: w is a voter" in said
    assert run.world.members.voters == {"n1", "w"} and run.world.members.epoch == 2


def test_an_out_host_gets_no_lease_and_starts_nothing() -> None:
    run = Run(parse("""
cluster nodes=2 run=60
vm 100 on n2
at 5 power-off n2
at 10 expected n1 1
at 20 power-on n2
expect at 30 vm 100 stopped
expect at 30 quorum n2 no
"""))
    result = run.run()
    assert result.ok, result.failures
    assert not run.world.alive("n2")
    assert any("n2/agent     agent does not start VM 100" in ln for ln in result.log)


def test_the_override_is_a_new_election() -> None:
    # n1 leads when the store loses its majority, and its lease has not run out yet when
    # the override comes: still a new term in a new epoch.
    run = Run(parse("cluster nodes=2 run=20\nat 5 power-off n2\nat 6 expected n1 1\n"))
    result = run.run()
    assert result.ok, result.failures
    assert any("manager      n1 is leader in epoch 2 (was n1)" in ln for ln in result.log)
    assert run.manager.term == 2
