"""Live migration on a lab cluster through the CLI: the guest's heartbeat goes on."""

from __future__ import annotations

import json
import re

import pytest

from tests.e2e.labtools import Lab, wait_until

pytestmark = pytest.mark.e2e


def heartbeats(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"corral-heartbeat (\d+)", text)]


def test_migrate_running_vm_keeps_its_heartbeat(lab: Lab) -> None:
    lab.corral("vm", "create", "--name", "mig1", "--memory", "96", "--disk", "shared:64M",
               "--node", "n1")
    vm = next(v for v in lab.json("vm", "list") if v["name"] == "mig1")
    vmid = str(vm["vmid"])
    lab.corral("vm", "start", vmid)
    before = wait_until(lambda: (b := heartbeats(lab.corral("vm", "console", vmid).stdout))
                        and len(b) >= 2 and b, 40, "heartbeats on n1")

    refused = lab.corral("vm", "migrate", vmid, "n9", check=False)
    assert refused.returncode != 0 and "n9 is unknown" in refused.stderr

    moved = lab.corral("vm", "migrate", vmid, "n2", "--json", timeout=120)
    reply = json.loads(moved.stdout)
    assert reply["state"] == "ok", reply
    assert reply["result"]["mode"] == "live" and reply["result"]["target"] == "n2"
    assert reply["result"]["tls"] is True  # a cluster lab's hosts hold the cluster's certificates
    shown = lab.json("vm", "show", vmid)
    assert shown["node"] == "n2"

    after = wait_until(lambda: (b := heartbeats(lab.corral("vm", "console", vmid).stdout))
                       and len(b) >= 2 and b, 30, "heartbeats on n2")
    assert 1 not in after, f"the guest restarted: {after[:5]}"
    # The console now reads n2; n1's own log holds everything the guest printed there.
    source_log = lab.root / "nodes/n1/run" / f"{vmid}.serial.log"
    before = heartbeats(source_log.read_text(errors="replace"))
    assert before == list(range(1, len(before) + 1)), before
    assert after[0] <= before[-1] + 1, f"gap: n1 ended at {before[-1]}, n2 began {after[0]}"
    joined = before + [n for n in after if n > before[-1]]
    assert joined == list(range(1, len(joined) + 1)), joined

    back = lab.corral("vm", "migrate", vmid, "n1", timeout=120)
    assert "migrated to n1 (live)" in back.stdout and "downtime" in back.stdout
