"""The emergency override on a two-host cluster lab (built by `cluster create` and `join`):
n2 dies, n1 alone has no quorum; `cluster expected 1` on n1 carries the cluster on and HA
runs both HA VMs there; n2 returns with its stale etcd data, runs nothing and is told it is
no longer a member; `cluster rejoin` on n2 brings it back clean, with one copy of each VM."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from corral.fencing.labdog import host_qemu_pids
from corral.lab.layout import LabLayout
from tests.e2e.conftest import FAULT_LAB_ARGS, need_root
from tests.e2e.labtools import Lab, running_lab, wait_until

pytestmark = pytest.mark.e2e
HA_VMS = {100: "n1", 101: "n2"}  # tiny1, tiny2
RECOVERY = 120.0  # lease, fence wait and a TCG boot on a loaded machine, with room


@pytest.fixture(scope="module")
def pair_lab(tiny_images: Path) -> Iterator[Lab]:
    need_root()
    with running_lab(tiny_images, "olab-", "--vms", "2", "--cluster", "--nodes", "2",
                     *FAULT_LAB_ARGS) as lab:
        yield lab


def layout(lab: Lab) -> LabLayout:
    loaded = LabLayout.load(lab.root)
    assert loaded is not None and loaded.cluster_mode and loaded.nodes == 2
    return loaded


def on_host(lab: Lab, i: int, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`corral ARGS` run on host i: inside its namespace, with its own host config."""
    lay = layout(lab)
    proc = subprocess.run(
        ["ip", "netns", "exec", lay.netns_name(i), sys.executable, "-m", "corral.cli.main",
         *args, "--host-config", str(lay.host_config_path(i))],
        env=lab.env, text=True, capture_output=True, timeout=300)
    if check:
        assert proc.returncode == 0, f"{args} on n{i}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def status_on(lab: Lab, i: int) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(on_host(lab, i, "cluster", "status", "--json").stdout)
    return out


def qemus(lab: Lab, node: str) -> set[int]:
    lay = layout(lab)
    return set(host_qemu_pids(lay.run_dir(lay.node_index(node))))


def placed(lab: Lab) -> dict[int, tuple[str, str]]:
    return {v["vmid"]: (v["node"], v["status"]) for v in lab.json("vm", "list")}


def test_expected_1_then_the_dead_host_rejoins_clean(pair_lab: Lab) -> None:
    lab = pair_lab
    for vmid in HA_VMS:
        lab.corral("ha", "add", str(vmid))
    wait_until(lambda: all(placed(lab).get(v) == (n, "running") for v, n in HA_VMS.items()),
               60, "both HA VMs running where they were made")

    lab.corral("lab", "kill-node", "n2")
    # One voter of two: no quorum, and n1's own watchdog fences its HA VM (no lease).
    wait_until(lambda: not status_on(lab, 1)["quorum"], 30, "n1 without quorum")
    wait_until(lambda: not qemus(lab, "n1"), 30, "n1's HA VM fenced for want of a lease")

    on_host(lab, 1, "cluster", "expected", "1", "--yes-i-know")
    status = status_on(lab, 1)
    assert status["quorum"] and status["voters"] == ["n1"]
    assert status["cluster"]["epoch"] == 2
    assert [h["in_etcd"] for h in status["hosts"] if h["name"] == "n2"] == [False]

    # HA brings both VMs up on n1: its own, and n2's once n2's lease and fence wait ran out.
    wait_until(lambda: all(placed(lab).get(v) == ("n1", "running") for v in HA_VMS),
               RECOVERY, "both HA VMs running on n1")
    assert len(qemus(lab, "n1")) == 2

    # n2 comes back with its old etcd data: it runs nothing and says it is out. Its etcd
    # member stops as soon as the rebuilt cluster refuses it (and is restarted, and stops
    # again), so `start-node` may report that n2 did not fully come back.
    lab.corral("lab", "start-node", "n2", check=False)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert not qemus(lab, "n2"), "the dropped host started a VM"
        time.sleep(0.5)
    dropped = on_host(lab, 2, "cluster", "status", check=False)
    assert dropped.returncode != 0 and "NOT A MEMBER" in dropped.stdout + dropped.stderr
    assert all(placed(lab)[v] == ("n1", "running") for v in HA_VMS)

    on_host(lab, 2, "cluster", "rejoin")
    wait_until(lambda: sorted(status_on(lab, 1)["voters"]) == ["n1", "n2"]
               and {h["name"] for h in status_on(lab, 1)["hosts"] if h["agent_online"]}
               == {"n1", "n2"}, 120, "n2 a voter again with its agent online")
    time.sleep(5)  # a few monitor passes and manager ticks that could misbehave
    assert not qemus(lab, "n2") and len(qemus(lab, "n1")) == 2
    assert all(placed(lab)[v] == ("n1", "running") for v in HA_VMS)
