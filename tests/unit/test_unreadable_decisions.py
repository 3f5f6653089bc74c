"""Decisions over a cluster read that holds records which do not decode: the rest is decided
as usual, and a VM (or a host's request) that cannot be read is left as it is, never taken
for deleted. Snapshots are built from raw etcd items, as the manager builds them."""

from __future__ import annotations

import json

from corral.cluster import keys
from corral.cluster.actions import QueueTask, SetPlacement
from corral.cluster.models import (
    NodeInfo,
    NodeRequest,
    Placement,
    RunState,
    VMConfig,
    VMRuntime,
    VMStatus,
)
from corral.cluster.records import Item, dump
from corral.cluster.snapshot import snapshot_from
from corral.ha.actions import SaveHAState
from corral.ha.machine import decide_ha
from corral.ha.models import HASettings, HAState, HATiming, VMHAState, VMStatusHA
from corral.ha.status import ha_status
from corral.ha.store import ha_inputs_from
from corral.manager.decide import decide

T = HATiming(lease_ttl=10, watchdog_timeout=5, margin=2)
NEWER_CONFIG = b'{"vmid": 101, "name": "vm101", "memory_mb": "1G", "cores": 1}'


def host(name: str, alive: bool = True) -> list[Item]:
    info = NodeInfo(name=name, cpus=4, memory_mb=8192, started_at=0, watchdog_timeout=5)
    return [(keys.node(name, "info"), dump(info), 1)] + (
        [(keys.node(name, "alive"), b"1", 1)] if alive else [])


def vm(vmid: int, node: str, origin: str | None = None, config: bytes | None = None
       ) -> list[Item]:
    cfg = config or dump(VMConfig(vmid=vmid, name=f"vm{vmid}", memory_mb=256, cores=1))
    placement = Placement(node=node, state=RunState.RUNNING, origin=origin)
    runtime = VMRuntime(node=node, status=VMStatus.RUNNING)
    return [(keys.vm(vmid, "config"), cfg, 7), (keys.vm(vmid, "placement"), dump(placement), 7),
            (keys.vm(vmid, "runtime"), dump(runtime), 7)]


def ha_items(*vmids: int, state: HAState | None = None) -> list[Item]:
    out: list[Item] = [(keys.ha(v), dump(HASettings(vmid=v)), 1) for v in vmids]
    return out + ([(keys.HA_STATE, dump(state), 1)] if state else [])


def started(node: str) -> VMHAState:
    return VMHAState(status=VMStatusHA.STARTED, node=node, since=0.0, running_since=0.0)


def test_ha_recovers_the_readable_vm_and_leaves_the_unreadable_one_as_it_was() -> None:
    prior = HAState(vms={101: started("n2"), 102: started("n2")})
    items = [*host("n1"), *host("n2", alive=False), *vm(101, "n2", config=NEWER_CONFIG),
             *vm(102, "n2"), *ha_items(101, 102, state=prior)]
    inputs = ha_inputs_from(items)
    _, state = decide_ha(snapshot_from(items, 10, 20.0), inputs, T)
    inputs = ha_inputs_from([*items[:-1], (keys.HA_STATE, dump(state), 2)])
    actions, state = decide_ha(snapshot_from(items, 11, 30.0), inputs, T)
    moves = [a for a in actions if isinstance(a, SetPlacement)]
    assert [(m.vmid, m.placement.node) for m in moves] == [(102, "n1")]
    assert state.vms[101] == prior.vms[101]  # not dropped, not moved: unreadable, not gone
    assert state.nodes["n2"].status == "fenced"


def test_ha_keeps_the_state_of_a_vm_whose_settings_do_not_decode() -> None:
    prior = HAState(vms={101: started("n1")})
    items = [*host("n1"), *vm(101, "n1"), (keys.ha(101), b'{"vmid": 101, "state": "on"}', 1),
             (keys.HA_STATE, dump(prior), 1)]
    inputs = ha_inputs_from(items)
    assert inputs.unreadable_settings == {101}
    actions, state = decide_ha(snapshot_from(items, 3, 5.0), inputs, T)
    assert state.vms == prior.vms
    assert not [a for a in actions if not isinstance(a, SaveHAState)]


def test_ha_status_lists_the_skipped_records_and_the_unreadable_vm() -> None:
    items = [*host("n1"), *vm(101, "n1", config=NEWER_CONFIG), *vm(102, "n1"),
             *ha_items(101, 102), ("/corral/vms/abc/config", b"{}", 3)]
    report = ha_status(snapshot_from(items, 3, 5.0), ha_inputs_from(items))
    rows = {r.vmid: r for r in report.vms}
    assert rows[101].status == "unreadable" and "does not decode" in rows[101].reason
    assert rows[102].status == "started"
    assert [(s.key, s.problem.split(":")[0].split(" (")[0]) for s in report.skipped] == [
        ("/corral/vms/101/config", "memory_mb"), ("/corral/vms/abc/config", "not a VM key")]
    assert json.loads(report.model_dump_json())["skipped"][0]["key"] == "/corral/vms/101/config"


def test_maintenance_leaves_a_host_whose_request_does_not_decode() -> None:
    base = [*host("n1"), *host("n2"), *vm(101, "n1", origin="n2")]
    # A readable "maintenance off" brings the VM home to n2 ...
    off = (keys.node("n2", "request"), dump(NodeRequest(maintenance=False)), 1)
    [task] = [a.task for a in decide(snapshot_from([*base, off], 3, 5.0))
              if isinstance(a, QueueTask)]
    assert task.kind == "vm.migrate" and task.params["target"] == "n2"
    # ... one that does not decode is not taken for "off": nothing moves.
    bad = (keys.node("n2", "request"), b'{"maintenance": "until friday"}', 1)
    assert decide(snapshot_from([*base, bad], 3, 5.0)) == []
