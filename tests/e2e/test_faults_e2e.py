"""Fault injection on a lab in network namespaces: fencing by the hosts' watchdogs.

Only fencing and the faults themselves are checked here; HA recovery is tested elsewhere.
"""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from corral.fencing.labdog import host_qemu_pids
from corral.lab import faults
from corral.lab.layout import LabLayout
from tests.e2e.conftest import LEASE_TTL, WATCHDOG_TIMEOUT
from tests.e2e.labtools import Lab, wait_until

pytestmark = pytest.mark.e2e
SLACK = 2.0  # scheduling on a loaded 2-core machine


def layout(lab: Lab) -> LabLayout:
    loaded = LabLayout.load(lab.root)
    assert loaded is not None
    return loaded


def etcd_health(lay: LabLayout, i: int, timeout: float) -> httpx.Response:
    """Host i's etcd member's /health, as its own clients ask it (TLS in a cluster lab)."""
    member = lay.etcd_member(i)
    extra = member.tls.httpx_kwargs() if member.tls else {}
    return httpx.get(f"{member.client_url}/health", timeout=timeout, **extra)


def online(lab: Lab) -> dict[str, bool]:
    return {n["name"]: bool(n["online"]) for n in lab.json("node", "list")}


def running_qemu(lab: Lab, node: str) -> dict[int, int]:
    lay = layout(lab)
    pids: dict[int, int] = wait_until(
        lambda: host_qemu_pids(lay.run_dir(lay.node_index(node))), 60, f"a VM on {node}")
    return pids


def wait_gone(lab: Lab, node: str, timeout: float) -> float:
    lay = layout(lab)
    start = time.monotonic()
    wait_until(lambda: not host_qemu_pids(lay.run_dir(lay.node_index(node))), timeout,
               f"{node}'s VMs fenced")
    return time.monotonic() - start


def wait_offline(lab: Lab, node: str, timeout: float) -> None:
    wait_until(lambda: not online(lab)[node], timeout, f"{node} offline")


def test_frozen_agent_is_fenced_by_its_watchdog(fault_lab: Lab) -> None:
    lab = fault_lab
    running_qemu(lab, "n2")
    lab.corral("lab", "freeze-agent", "n2")
    try:
        fenced = wait_gone(lab, "n2", WATCHDOG_TIMEOUT + SLACK)
        print(f"n2 fenced {fenced:.2f}s after freeze-agent (watchdog {WATCHDOG_TIMEOUT}s)")
        assert online(lab)["n2"], "fencing must come before the lease expires"
        wait_offline(lab, "n2", LEASE_TTL + SLACK)
        assert "FENCED" in (lab.root / "logs/n2-watchdog.log").read_text()
    finally:
        lab.corral("lab", "thaw-agent", "n2")
    wait_until(lambda: online(lab)["n2"], 30, "n2 back online")


def test_partitioned_host_is_cut_off_and_fenced_then_rejoins(fault_lab: Lab) -> None:
    lab = fault_lab
    lay = layout(lab)
    running_qemu(lab, "n3")
    lab.corral("lab", "partition", "n3")
    try:
        with pytest.raises(httpx.TransportError):
            etcd_health(lay, 3, timeout=1.0)
        fenced = wait_gone(lab, "n3", WATCHDOG_TIMEOUT + SLACK)
        print(f"n3 fenced {fenced:.2f}s after partition (watchdog {WATCHDOG_TIMEOUT}s)")
        wait_offline(lab, "n3", LEASE_TTL + 10)
        status = lab.corral("lab", "status").stdout
        assert "partitioned: n3" in status
    finally:
        lab.corral("lab", "heal")
    wait_until(lambda: online(lab)["n3"], 40, "n3 rejoined")
    assert etcd_health(lay, 3, timeout=2.0).status_code == 200


def reachable(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=2.0).close()
    except OSError:
        return False
    return True


def test_host_cut_from_etcd_alone_is_fenced_though_its_peers_still_reach_it(
        fault_lab: Lab) -> None:
    """Its own etcd member loses the quorum, so its lease lapses: the watchdog must fence it
    even though every other machine still reaches its agent (and it theirs)."""
    lab = fault_lab
    lay = layout(lab)
    wait_until(lambda: all(online(lab).values()), 60, "every host online")
    vm = next(v for v in lab.json("vm", "list") if v["node"] == "n3")
    if vm["status"] != "running":  # fenced by an earlier test (no HA in this lab)
        lab.corral("vm", "start", str(vm["vmid"]))
    running_qemu(lab, "n3")
    lab.corral("lab", "partition", "n3", "--only", "etcd")
    try:
        assert reachable(lay.host_address(3), lay.agent_port(3))
        with pytest.raises(httpx.TransportError):
            etcd_health(lay, 3, timeout=1.0)
        fenced = wait_gone(lab, "n3", WATCHDOG_TIMEOUT + SLACK)
        print(f"n3 fenced {fenced:.2f}s after its etcd cut (watchdog {WATCHDOG_TIMEOUT}s)")
        wait_offline(lab, "n3", LEASE_TTL + 10)
        assert reachable(lay.host_address(3), lay.agent_port(3))  # its peers reach it still
        assert "partitioned: n3 (etcd only)" in lab.corral("lab", "status").stdout
    finally:
        lab.corral("lab", "heal")
    wait_until(lambda: online(lab)["n3"], 40, "n3 rejoined")
    assert "partitioned" not in lab.corral("lab", "status").stdout


def test_killed_node_stays_down_until_started(fault_lab: Lab) -> None:
    lab = fault_lab
    before = {n: p for n, p in lab.supervisor()["children"].items() if n.startswith("n1-")}
    qemu = running_qemu(lab, "n1")
    out = lab.corral("lab", "kill-node", "n1").stdout
    assert "n1 powered off" in out
    for pid in [*before.values(), *qemu.values()]:
        assert not _alive(pid), f"pid {pid} survived kill-node"
    wait_offline(lab, "n1", LEASE_TTL + SLACK + 5)
    time.sleep(1.0)  # supervisor ticks: nothing of n1 comes back on its own
    state = lab.supervisor()
    assert all(state["children"][n] is None for n in before)
    assert state["powered_off"] == ["n1"]
    assert not json.loads(lab.corral("lab", "status", "--json").stdout)["processes"][0]["alive"]
    lab.corral("lab", "start-node", "n1")
    wait_until(lambda: online(lab)["n1"], 40, "n1 back online")


def test_killed_etcd_leader_is_replaced_and_restarted(fault_lab: Lab) -> None:
    lab = fault_lab
    lay = layout(lab)
    first = wait_until(lambda: faults.etcd_leader(lay), 20, "an etcd leader")
    pid = lab.child_pid(f"{first[0]}-etcd")
    out = lab.corral("lab", "kill-etcd-leader").stdout
    assert f"{first[0]}-etcd (pid {pid})" in out, out
    # The two others elect a leader in a later term; the supervisor restarts the killed one.
    after = wait_until(lambda: (x := faults.etcd_leader(lay)) and x[1] > first[1] and x, 20,
                       "a new etcd leader")
    print(f"etcd leader {first} -> {after}")
    wait_until(lambda: lab.child_pid(f"{first[0]}-etcd") != pid, 20, "the member restarted")
    wait_until(lambda: all(online(lab).values()), 30, "every host online")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except OSError:
        return False


def test_migration_over_a_cut_network_leaves_the_vm_on_its_source(fault_lab: Lab) -> None:
    """The target's network is cut mid-transfer: nothing moves any more, the migration is
    abandoned, and the guest never stops running on its source."""
    lab = fault_lab
    wait_until(lambda: all(online(lab).values()), 60, "every host online")
    lab.corral("vm", "create", "--name", "cut1", "--memory", "128", "--node", "n2")
    vm = next(v for v in lab.json("vm", "list") if v["name"] == "cut1")
    vmid = str(vm["vmid"])
    lab.corral("vm", "start", vmid)
    pid = int(next(v for v in lab.json("vm", "list") if v["name"] == "cut1")["pid"])
    # 1 MiB/s: the transfer would take a minute, so the cut surely lands during it.
    task = lab.json("vm", "migrate", vmid, "n3", "--bwlimit", "1", "--no-wait")["task"]

    def moving() -> bool:
        rec = lab.json("task", "show", task)
        return bool(rec["progress"] > 0.05 and rec["state"] == "running")

    wait_until(moving, 60, "the transfer to start")
    lab.corral("lab", "partition", "n3")
    try:
        done = lab.corral("task", "wait", task, "--timeout", "120", check=False, timeout=150)
        assert done.returncode != 0, done.stdout
    finally:
        lab.corral("lab", "heal")
    after = next(v for v in lab.json("vm", "list") if v["name"] == "cut1")
    assert after["node"] == "n2" and after["status"] == "running" and int(after["pid"]) == pid
    assert not host_qemu_pids(layout(lab).run_dir(3)).get(int(vmid))
    wait_until(lambda: all(online(lab).values()), 60, "n3 back")
    # Back on the network, the target sees the migration aborted and ends its half of it.
    wait_until(lambda: all(t["state"] in ("ok", "error")
                           for t in lab.json("task", "list", "--vmid", vmid)),
               60, "the target's receiving task to end")
    lab.corral("vm", "stop", vmid)
    lab.corral("vm", "delete", vmid, "--yes")
