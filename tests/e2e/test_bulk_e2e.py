"""Bulk actions on a lab host, through the CLI: shut a host's VMs down in reverse start
order, start them again in start order, migrate a selection."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.labtools import Lab, wait_until

pytestmark = pytest.mark.e2e


def vms(lab: Lab) -> dict[str, dict[str, Any]]:
    return {str(v["name"]): v for v in lab.json("vm", "list")}


def test_bulk_shutdown_start_and_migrate(lab: Lab) -> None:
    for name, startup in (("b1", 1), ("b2", 2)):
        lab.corral("vm", "create", "--name", name, "--memory", "96", "--cores", "1",
                   "--node", "n2", "--startup", str(startup))
        lab.corral("vm", "start", str(vms(lab)[name]["vmid"]))
    ids = {name: int(vms(lab)[name]["vmid"]) for name in ("b1", "b2")}
    wait_until(lambda: all(vms(lab)[n]["status"] == "running" for n in ids), 60, "VMs running")

    out = lab.corral("node", "bulk", "shutdown", "n2", "--timeout", "5", timeout=180)
    assert "2 ok, 0 failed" in out.stdout, out.stdout
    assert all(vms(lab)[n]["state"] == "stopped" for n in ids)
    task = lab.json("task", "list", "--node", "n2", "--limit", "20")
    children = [t for t in task if t["kind"] == "vm.shutdown" and t["vmid"] in ids.values()]
    by_start = sorted(children, key=lambda t: t["created_at"])
    assert [t["vmid"] for t in by_start] == [ids["b2"], ids["b1"]]  # reverse start order

    out = lab.corral("node", "bulk", "start", "n2", "--parallel", "1", timeout=180)
    assert "2 ok, 0 failed" in out.stdout and "skipped" in out.stdout
    again = lab.corral("node", "bulk", "start", "n2", timeout=60)
    assert "already running" in again.stdout

    out = lab.corral("node", "bulk", "migrate", "n2", "--target", "n3",
                     "--vms", f"{ids['b1']},{ids['b2']}", timeout=300)
    assert "2 ok, 0 failed" in out.stdout, out.stdout
    assert all(vms(lab)[n]["node"] == "n3" for n in ids)

    refused = lab.corral("node", "bulk", "migrate", "n2", check=False)
    assert refused.returncode != 0
    refused = lab.corral("node", "bulk", "migrate", "n2", "--target", "n2", check=False)
    assert refused.returncode != 0 and "target" in refused.stderr
