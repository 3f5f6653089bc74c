"""When a host may take itself out of its cluster, and the steps that do it: refused (with
the reason) while VMs are on it, when its member's removal would cost the quorum, when the
cluster does not count it as a member; otherwise the cluster's steps before the host's own,
and only what is left of an earlier leave."""

from __future__ import annotations

from dataclasses import replace

import pytest

from corral.cluster.membership import EndpointStatus, Member
from corral.cluster.models import VM, ClusterHost, Placement, VMConfig, VMRuntime, VMStatus
from corral.setup.join_rules import Refusal
from corral.setup.leave_rules import (
    STEPS,
    Here,
    LeaveFacts,
    Plan,
    leave_plan,
    own_member,
    returning_to,
    summary,
    vms_here,
)


def member(i: int, name: str, learner: bool = False) -> Member:
    return Member(i, name, (f"https://10.0.0.{i}:2380",), (f"https://10.0.0.{i}:2379",),
                  learner)


def up(*ids: int) -> list[EndpointStatus]:
    return [EndpointStatus(f"https://10.0.0.{i}:2379", i, 1, 3, 10, False, 1) for i in ids]


N1, N2, N3 = member(1, "n1"), member(2, "n2"), member(3, "n3")
HOSTS = {f"n{i}": ClusterHost(name=f"n{i}", address=f"10.0.0.{i}", member_id=i)
         for i in (1, 2, 3)}
N2_HERE = Here(cluster="prod", name="n2", role="host", member_name="n2",
               peer_url="https://10.0.0.2:2380", etcd_data=True, pki_files=True,
               credentials=True, leaving=None)
THREE = LeaveFacts("prod", [N1, N2, N3], up(1, 2, 3), HOSTS, [], True, returning=[106])


def refusal(decision: Plan | Refusal) -> str:
    assert isinstance(decision, Refusal), decision
    return decision.message


def plan(decision: Plan | Refusal) -> Plan:
    assert isinstance(decision, Plan), decision
    return decision


def vm(vmid: int, name: str, node: str, runtime_on: str | None = None) -> VM:
    runtime = VMRuntime(node=runtime_on, status=VMStatus.RUNNING) if runtime_on else None
    return VM(VMConfig(vmid=vmid, name=name, memory_mb=64, cores=1), Placement(node=node), 1,
              runtime)


def test_a_member_of_three_leaves_with_every_step_in_order() -> None:
    p = plan(leave_plan(N2_HERE, THREE))
    assert p.member == N2 and p.record and not p.resuming
    assert p.steps == STEPS
    # The cluster forgets the member before the host stops its etcd or deletes anything.
    assert p.steps.index("remove_member") < p.steps.index("stop_etcd") < p.steps.index(
        "wipe_etcd_data") < p.steps.index("wipe_pki") < p.steps.index("wipe_config")
    assert p.steps[0] == "stop_workers"
    # VMs maintenance moved off it lose their way back while its maintenance request still
    # keeps the manager from sending them there.
    assert p.steps.index("clear_origins") < p.steps.index("delete_node_keys")
    assert p.returning == (106,)
    text = summary(N2_HERE, p)
    assert "leave cluster prod?" in text and "VMs placed on this host: none" in text
    assert "1 VM(s) maintenance moved off it stay where they are" in text
    without = plan(leave_plan(N2_HERE, replace(THREE, returning=[])))
    assert "clear_origins" not in without.steps and "maintenance" not in summary(N2_HERE,
                                                                                without)


@pytest.mark.parametrize(("members", "statuses", "says"), [
    ([N1, N2], up(1, 2), "last but one voter"),
    ([N2], up(2), "the last voter"),
    ([N1, N2, N3], up(1, 2), "not a majority"),  # n3 is down: n1 alone would be left
])
def test_a_leave_that_would_cost_the_quorum_is_refused(
        members: list[Member], statuses: list[EndpointStatus], says: str) -> None:
    view = LeaveFacts("prod", members, statuses, HOSTS, [], True)
    message = refusal(leave_plan(N2_HERE, view))
    assert says in message and message.startswith("n2 may not leave")


def test_vms_on_the_host_refuse_it_naming_them_and_the_way_to_move_them() -> None:
    here = vms_here("n2", [vm(101, "web", "n2"), vm(102, "db", "n1"),
                           vm(103, "cache", "n3", runtime_on="n2"), vm(104, "mail", "n1")],
                    {104: ("n1", "n2")}, [105])
    assert here == ["web (101): placed here", "cache (103): reported on this host (running)",
                    "mail (104): migrating n1 -> n2",
                    "VM 105: its records do not read (it could be placed here)"]
    message = refusal(leave_plan(N2_HERE, replace(THREE, vms_here=here)))
    assert "web (101): placed here" in message and "db" not in message
    assert "corral node maintenance enable n2" in message


def test_a_refusal_names_ten_vms_and_counts_the_rest() -> None:
    here = vms_here("n2", [vm(100 + i, f"vm{i}", "n2") for i in range(13)], {}, [])
    message = refusal(leave_plan(N2_HERE, replace(THREE, vms_here=here)))
    assert "vm9 (109)" in message and "vm10 (110)" not in message and "and 3 more" in message


def test_no_vm_on_the_host_and_vms_elsewhere_do_not_refuse() -> None:
    assert vms_here("n2", [vm(102, "db", "n1")], {103: ("n1", "n3")}, []) == []


def test_the_vms_maintenance_would_bring_back_are_those_whose_origin_is_the_host() -> None:
    away = vm(101, "web", "n1")
    away = VM(away.config, Placement(node="n1", origin="n2"), 1, None)
    other = VM(vm(102, "db", "n3").config, Placement(node="n3", origin="n1"), 1, None)
    assert returning_to("n2", [away, other, vm(103, "mail", "n1")]) == [101]


def test_a_host_config_of_another_cluster_is_refused() -> None:
    message = refusal(leave_plan(N2_HERE, replace(THREE, name="staging")))
    assert "'staging'" in message and "'prod'" in message


def test_a_dropped_host_is_not_a_member_and_is_refused() -> None:
    """Its record is there but its member is not (`cluster expected 1` left it out): its
    etcd data may be the only copy of what it wrote, and `rejoin` is its way back."""
    view = LeaveFacts("prod", [N1, N3], up(1, 3), HOSTS, [], True)
    message = refusal(leave_plan(N2_HERE, view))
    assert "not a member of cluster prod" in message and "rejoin" in message


def test_an_earlier_leave_that_removed_the_member_goes_on_with_the_record() -> None:
    view = LeaveFacts("prod", [N1, N3], up(1, 3), HOSTS, [], True)
    p = plan(leave_plan(replace(N2_HERE, leaving=2), view))
    assert p.member is None and p.record and "remove_member" in p.steps
    # A marker of another membership (an older member id) does not count.
    assert isinstance(leave_plan(replace(N2_HERE, leaving=7), view), Refusal)


def test_a_host_the_cluster_forgot_finishes_its_own_steps_only() -> None:
    """Removed by `remove-node`, or by an earlier leave that stopped after its cluster steps."""
    view = LeaveFacts("prod", [N1, N3], up(1, 3), {"n1": HOSTS["n1"]}, [], False)
    p = plan(leave_plan(N2_HERE, view))
    assert p.resuming and p.member is None
    assert p.steps == ("stop_workers", "stop_etcd", "wipe_etcd_data", "wipe_pki",
                       "wipe_config")
    assert "no longer a member" in summary(N2_HERE, p)
    # What is done already is not done again.
    done = replace(N2_HERE, etcd_data=False, pki_files=False, credentials=False)
    assert plan(leave_plan(done, view)).steps == ("stop_workers", "stop_etcd", "wipe_config")


def test_without_its_certificates_a_host_with_etcd_data_is_refused() -> None:
    here = replace(N2_HERE, credentials=False)
    message = refusal(leave_plan(here, LeaveFacts(None, [], [], {}, [], False)))
    assert "certificate or key files are missing" in message


def test_a_witness_member_leaves_through_a_host() -> None:
    witness = Member(4, "witness-w1", ("https://10.0.0.4:2380",), ("https://10.0.0.4:2379",),
                     False)
    here = Here(cluster="prod", name="w1", role="witness", member_name="witness-w1",
                peer_url="https://10.0.0.4:2380", etcd_data=True, pki_files=True,
                credentials=True, leaving=None)
    members = [N1, N2, witness]
    message = refusal(leave_plan(here, LeaveFacts(None, members, up(1, 2, 4), {}, [], False)))
    assert "corral cluster remove-node w1" in message
    # Once a host removed it, the witness finishes on its own (it runs no workers).
    p = plan(leave_plan(here, LeaveFacts(None, [N1, N2], up(1, 2), {}, [], False)))
    assert p.steps == ("stop_etcd", "wipe_etcd_data", "wipe_pki", "wipe_config")


def test_its_own_member_is_found_by_record_name_or_peer_url() -> None:
    assert own_member(N2_HERE, [N1, N2], HOSTS["n2"]) == N2
    renamed = Member(2, "other", N2.peer_urls, N2.client_urls, False)
    assert own_member(N2_HERE, [N1, renamed], HOSTS["n2"]) == renamed  # by the record's id
    assert own_member(N2_HERE, [N1, N2], None) == N2  # by name (create writes no record id)
    never_started = Member(9, "", N2.peer_urls, (), True)
    assert own_member(N2_HERE, [N1, never_started], None) == never_started
    assert own_member(N2_HERE, [N1, N3], HOSTS["n2"]) is None
