"""End to end on a lab cluster, through the CLI, as an operator would type it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from corral.lab import faults
from corral.lab.layout import LabLayout
from tests.e2e.labtools import Lab, wait_until

pytestmark = pytest.mark.e2e


def heartbeats(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"corral-heartbeat (\d+)", text)]


def vm_by_name(lab: Lab, name: str) -> dict[str, object]:
    vms = lab.json("vm", "list")
    return next(v for v in vms if v["name"] == name)


def test_three_hosts_online(lab: Lab) -> None:
    nodes = lab.json("node", "list")
    assert sorted(n["name"] for n in nodes) == ["n1", "n2", "n3"]
    assert all(n["online"] for n in nodes)
    table = lab.corral("node", "list").stdout
    assert "n1" in table and "n3" in table


def test_the_labs_own_vm_runs(lab: Lab) -> None:
    vm = vm_by_name(lab, "tiny1")
    wait_until(lambda: vm_by_name(lab, "tiny1")["status"] == "running", 60, "tiny1 running")
    wait_until(lambda: heartbeats(lab.corral("vm", "console", str(vm["vmid"])).stdout), 30,
               "tiny1's heartbeat")


def test_vm_lifecycle_through_the_cli(lab: Lab) -> None:
    lab.corral("vm", "create", "--name", "web1", "--memory", "128", "--cores", "1",
               "--disk", "local:1G", "--node", "n1")
    vm = vm_by_name(lab, "web1")
    vmid = str(vm["vmid"])
    disk = lab.root / "nodes/n1/storage/local" / f"vm-{vmid}-disk-0.qcow2"
    assert disk.exists()

    lab.corral("vm", "start", vmid)
    wait_until(lambda: len(heartbeats(lab.corral("vm", "console", vmid).stdout)) >= 2, 30,
               "web1's heartbeat")
    refused = lab.corral("vm", "start", vmid, check=False)
    assert refused.returncode != 0 and "already running" in refused.stderr + refused.stdout

    refused = lab.corral("vm", "delete", vmid, "--yes", check=False)
    assert refused.returncode != 0 and vm_by_name(lab, "web1")

    lab.corral("vm", "suspend", vmid)
    assert vm_by_name(lab, "web1")["status"] == "paused"
    lab.corral("vm", "resume", vmid)
    assert vm_by_name(lab, "web1")["status"] == "running"

    lab.corral("vm", "shutdown", vmid, "--timeout", "30")
    assert vm_by_name(lab, "web1")["status"] == "stopped"
    assert "power button" in lab.corral("vm", "console", vmid).stdout

    lab.corral("vm", "start", vmid)
    lab.corral("vm", "stop", vmid)
    assert vm_by_name(lab, "web1")["status"] == "stopped"
    lab.corral("vm", "delete", vmid, "--yes")
    assert all(v["name"] != "web1" for v in lab.json("vm", "list"))
    assert not disk.exists()


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--name", "tiny1", "--memory", "128", "--node", "n1"], "name"),
        (["--name", "m0", "--memory", "0", "--node", "n1"], "memory"),
        (["--name", "c0", "--memory", "96", "--cores", "-1", "--node", "n1"], "cores"),
        (["--name", "d0", "--memory", "96", "--disk", "nope:1G", "--node", "n1"], "disks"),
        (["--name", "d1", "--memory", "96", "--disk", "local:../x", "--node", "n1"], "disks"),
        (["--name", "n0", "--memory", "96", "--node", "n9"], "node"),
    ],
)
def test_bad_input_names_the_field_and_changes_nothing(lab: Lab, args: list[str],
                                                       field: str) -> None:
    before = lab.json("vm", "list")
    out = lab.corral("vm", "create", *args, check=False)
    assert out.returncode != 0
    assert field in (out.stderr + out.stdout).lower()
    assert lab.json("vm", "list") == before


def test_unknown_vm_is_a_clear_error(lab: Lab) -> None:
    out = lab.corral("vm", "start", "99999", check=False)
    assert out.returncode != 0 and "99999" in out.stderr + out.stdout


def test_agent_killed_vm_keeps_running_and_is_adopted(lab: Lab) -> None:
    vm = vm_by_name(lab, "tiny1")
    vmid, node = str(vm["vmid"]), str(vm["node"])
    wait_until(lambda: vm_by_name(lab, "tiny1")["status"] == "running", 60, "tiny1 running")
    pid = int(str(vm_by_name(lab, "tiny1")["pid"]))
    agent = lab.child_pid(f"{node}-agent")
    os.kill(agent, signal.SIGKILL)
    # The supervisor restarts the agent, as systemd would.
    wait_until(lambda: lab.child_pid(f"{node}-agent") != agent, 30, "the agent to restart")
    wait_until(lambda: next(n for n in lab.json("node", "list") if n["name"] == node)["online"],
               30, "the host back online")
    os.kill(pid, 0)  # QEMU never stopped
    after = vm_by_name(lab, "tiny1")
    assert after["status"] == "running" and int(str(after["pid"])) == pid
    beats = heartbeats(lab.corral("vm", "console", vmid).stdout)
    assert beats.count(1) == 1, "the guest was restarted"


def etcd_leader(lab: Lab) -> str:
    """The lab host whose etcd member leads the cluster right now."""
    layout = LabLayout.load(lab.root)
    assert layout is not None
    leader = faults.etcd_leader(layout)
    assert leader is not None, "no etcd leader"
    return leader[0]


def test_cluster_works_with_the_etcd_leader_down(lab: Lab) -> None:
    """Killing the leader forces an election mid-use: clients must ride it out."""
    supervisor = lab.supervisor()["pid"]
    member = lab.child_pid(f"{etcd_leader(lab)}-etcd")
    os.kill(supervisor, signal.SIGSTOP)  # keep it from restarting the member at once
    try:
        os.kill(member, signal.SIGKILL)
        lab.corral("vm", "create", "--name", "quorum1", "--memory", "96", "--node", "n2")
        vmid = str(vm_by_name(lab, "quorum1")["vmid"])
        lab.corral("vm", "start", vmid)
        wait_until(lambda: heartbeats(lab.corral("vm", "console", vmid).stdout), 30,
                   "quorum1's heartbeat")
        lab.corral("vm", "stop", vmid)
        lab.corral("vm", "delete", vmid, "--yes")
    finally:
        os.kill(supervisor, signal.SIGCONT)
    wait_until(lambda: member not in _all_pids(lab), 30, "the member to restart")


def test_down_stops_everything_and_up_keeps_state(lab: Lab) -> None:
    lab.corral("vm", "create", "--name", "keep1", "--memory", "96", "--disk", "local:64M",
               "--node", "n2")
    vmid = str(vm_by_name(lab, "keep1")["vmid"])
    pids = [int(p) for p in _all_pids(lab)]
    lab.corral("lab", "down")
    for pid in pids:
        assert not _alive(pid), f"pid {pid} survived lab down"
    leftovers = subprocess.run(["pgrep", "-f", str(lab.root)], capture_output=True, text=True)
    assert leftovers.stdout.strip() == "", leftovers.stdout

    lab.corral("lab", "up", timeout=180)
    assert vm_by_name(lab, "keep1")["vmid"] == int(vmid)
    assert (lab.root / "nodes/n2/storage/local" / f"vm-{vmid}-disk-0.qcow2").exists()
    # tiny1 was meant to run: its host starts it again.
    wait_until(lambda: vm_by_name(lab, "tiny1")["status"] == "running", 60, "tiny1 back")


def _all_pids(lab: Lab) -> list[int]:
    state = lab.supervisor()
    pids = [int(state["pid"])]
    for child in state["children"].values():
        pid = child["pid"] if isinstance(child, dict) else child
        if pid is not None:
            pids.append(int(pid))
    for pidfile in lab.root.glob("nodes/*/run/*.pid"):
        pids.append(int(pidfile.read_text().strip()))
    return pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"
