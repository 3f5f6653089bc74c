"""A lab in network namespaces with records a rolling upgrade or a broken writer leaves in
etcd: one VM config with a field from a newer version, one config cut short. The CLI's lists
and `ha status` work, a killed host's HA VM is still recovered, and the VM whose config does
not decode keeps running where it is: nothing takes it for deleted."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.cluster import keys
from corral.cluster.store import Store
from corral.lab.layout import LabLayout
from tests.e2e.conftest import FAULT_LAB_ARGS, need_root
from tests.e2e.labtools import Lab, running_lab, wait_until
from tests.e2e.test_ha_e2e import HEARTBEAT_BOUND, heartbeats, lab_qemus

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def lab(tiny_images: Path) -> Iterator[Lab]:
    need_root()
    with running_lab(tiny_images, "rlab-", "--vms", "3", *FAULT_LAB_ARGS) as lab:
        yield lab


def etcd_put(lab: Lab, items: dict[str, bytes]) -> None:
    lay = LabLayout.load(lab.root)
    assert lay is not None

    async def put() -> None:
        async with Store(lay.client_urls, tls=lay.etcd_admin_tls) as store:
            for key, raw in items.items():
                await store.client.put(key.encode(), raw)

    asyncio.run(put())


def by_name(lab: Lab) -> dict[str, dict[str, object]]:
    return {str(v["name"]): v for v in lab.json("vm", "list")}


def test_lists_status_and_ha_recovery_beside_bad_records(lab: Lab) -> None:
    vms = wait_until(lambda: (v := by_name(lab)) and all(
        x["status"] == "running" for x in v.values()) and v, 90, "the lab's VMs running")
    ha_vm, newer_vm, broken_vm = (int(str(vms[n]["vmid"])) for n in ("tiny1", "tiny2", "tiny3"))
    victim = str(vms["tiny1"]["node"])
    assert victim not in (vms["tiny2"]["node"], vms["tiny3"]["node"])
    lab.corral("ha", "add", str(ha_vm))
    newer = lab.json("vm", "show", str(newer_vm))["config"]
    etcd_put(lab, {
        keys.vm(newer_vm, "config"): json.dumps({**newer, "numa": {"nodes": 2}}).encode(),
        keys.vm(broken_vm, "config"): b'{"vmid": %d, "name": "tiny3", "memo' % broken_vm,
    })
    [(broken_host, broken_pid)] = lab_qemus(lab.root)[broken_vm]

    listed = lab.corral("vm", "list")
    assert "tiny2" in listed.stdout and "tiny3" not in listed.stdout
    assert f"/corral/vms/{broken_vm}/config" in listed.stderr
    assert all(n["online"] for n in lab.json("node", "list"))
    status = lab.json("ha", "status")
    assert [s["key"] for s in status["skipped"]] == [f"/corral/vms/{broken_vm}/config"]
    assert lab.json("vm", "show", str(newer_vm))["config"]["numa"] == {"nodes": 2}

    t0 = time.monotonic()
    lab.corral("lab", "kill-node", victim)
    try:
        def recovered() -> str | None:
            vm = lab.json("vm", "show", str(ha_vm))
            if vm["node"] == victim or vm["status"] != "running":
                return None
            beats = heartbeats(lab.corral("vm", "console", str(ha_vm)).stdout)
            return str(vm["node"]) if beats else None

        home = wait_until(recovered, HEARTBEAT_BOUND + 15, f"VM {ha_vm} recovered")
        print(f"VM {ha_vm}: heartbeat on {home} {time.monotonic() - t0:.1f}s after the kill, "
              f"with a config that does not decode in etcd")
    finally:
        lab.corral("lab", "start-node", victim)
    wait_until(lambda: all(n["online"] for n in lab.json("node", "list")), 60,
               f"{victim} back online")
    time.sleep(5)  # monitor passes and manager ticks after the return
    # The VM whose config does not decode runs on, where it was, as the same process.
    assert lab_qemus(lab.root)[broken_vm] == [(broken_host, broken_pid)]
    assert [h for h, _ in lab_qemus(lab.root)[ha_vm]] == [home]
    assert by_name(lab)["tiny2"]["status"] == "running"
    assert lab.json("ha", "status")["vms"][0]["status"] == "started"
