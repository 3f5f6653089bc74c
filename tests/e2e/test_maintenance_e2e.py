"""Maintenance mode on a lab cluster, through the CLI: empty a host, bring its VMs back, and
survive the manager's host dying midway."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import pytest

from corral.cluster.store import Store, StoreError
from corral.lab.layout import LabLayout
from tests.e2e.labtools import Lab, wait_until

pytestmark = pytest.mark.e2e


def vms(lab: Lab) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = lab.json("vm", "list")
    return found


def on(lab: Lab, node: str) -> list[int]:
    return sorted(int(v["vmid"]) for v in vms(lab) if v["node"] == node)


def create(lab: Lab, name: str, node: str, start: bool = True) -> int:
    lab.corral("vm", "create", "--name", name, "--memory", "96", "--cores", "1", "--node", node)
    vmid = next(int(v["vmid"]) for v in vms(lab) if v["name"] == name)
    if start:
        lab.corral("vm", "start", str(vmid))
    return vmid


def manager(lab: Lab) -> str:
    """The host holding the manager key, read straight from etcd."""
    layout = LabLayout.load(lab.root)
    assert layout is not None

    async def read() -> str:
        async with Store(layout.client_urls, timeout=2.0, tls=layout.etcd_admin_tls) as store:
            kv = await store.client.get(b"/corral/manager")
            return kv.value.decode() if kv is not None else ""

    try:
        return asyncio.run(read())
    except (StoreError, OSError):
        return ""


def test_enable_empties_the_host_and_disable_brings_the_vms_back(lab: Lab) -> None:
    wait_until(lambda: manager(lab), 30, "a manager to be elected")
    create(lab, "m1", "n1")
    create(lab, "m2", "n1")
    create(lab, "m3", "n1", start=False)  # moves cold
    home = on(lab, "n1")
    assert len(home) >= 3
    out = lab.corral("node", "maintenance", "enable", "n1", "--wait", "--timeout", "300",
                     timeout=330)
    assert "in-maintenance" in out.stdout
    assert on(lab, "n1") == []
    status = lab.json("node", "maintenance", "status", "n1")
    assert status["state"] == "in-maintenance" and sorted(status["away"]) == home
    running = {int(v["vmid"]): v["status"] for v in vms(lab)}
    assert all(running[v] == "running" for v in home if v != max(home))  # still running
    # The host takes no new VMs while in maintenance.
    table = lab.corral("node", "maintenance", "status").stdout
    assert "n1" in table and "in-maintenance" in table

    lab.corral("node", "maintenance", "disable", "n1", "--wait", "--timeout", "300",
               timeout=330)
    assert on(lab, "n1") == home
    assert lab.json("node", "maintenance", "status", "n1")["state"] == "off"


def test_disable_with_no_return_leaves_the_vms(lab: Lab) -> None:
    vmid = create(lab, "m4", "n2")
    lab.corral("node", "maintenance", "enable", "n2", "--wait", "--timeout", "300", timeout=330)
    moved_to = next(v["node"] for v in vms(lab) if int(v["vmid"]) == vmid)
    assert moved_to != "n2"
    lab.corral("node", "maintenance", "disable", "n2", "--no-return", "--wait", timeout=120)
    assert lab.json("node", "maintenance", "status", "n2")["state"] == "off"
    assert next(v["node"] for v in vms(lab) if int(v["vmid"]) == vmid) == moved_to


def test_evacuation_resumes_after_the_manager_host_is_killed(lab: Lab) -> None:
    for k in range(3):
        create(lab, f"f{k}", "n3")
    home = on(lab, "n3")
    lab.corral("node", "maintenance", "enable", "n3", "--parallel", "1")
    # Tiny guests migrate in a second or two: catch the evacuation once it has begun.
    wait_until(lambda: (lambda s: s["moving"] or s["away"])(
        lab.json("node", "maintenance", "status", "n3")), 60, "a migration to start")
    leader = manager(lab)
    agent = lab.child_pid(f"{leader}-agent")
    os.kill(agent, signal.SIGKILL)  # the supervisor restarts it, as systemd would
    wait_until(lambda: lab.child_pid(f"{leader}-agent") != agent, 30, "the agent to restart")
    wait_until(lambda: manager(lab), 60, "a new manager")
    out = lab.corral("node", "maintenance", "enable", "n3", "--wait", "--timeout", "300",
                     check=False, timeout=330)
    assert out.returncode == 0, out.stdout + out.stderr
    assert on(lab, "n3") == []
    lab.corral("node", "maintenance", "disable", "n3", "--wait", "--timeout", "300",
               timeout=330)
    assert on(lab, "n3") == home
