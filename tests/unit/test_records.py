"""Decoding records as etcd holds them: a newer version's fields are accepted and kept, a
malformed record is reported and skipped, and everything else decodes as before."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from corral.cluster import keys, records
from corral.cluster.models import (
    NodeInfo,
    NodeRequest,
    Placement,
    RunState,
    StorageConfig,
    StorageType,
    Task,
    VMConfig,
    VMRuntime,
    VMStatus,
)
from corral.cluster.records import Item, Problem, UnreadableRecord, dump
from corral.cluster.snapshot import snapshot_from
from corral.ha.models import FenceConfirmation, HARule, HASettings, HAState, VMHAState
from corral.ha.store import ha_inputs_from


def vm_items(vmid: int, node: str = "n1", rev: int = 5) -> list[Item]:
    return [
        (keys.vm(vmid, "config"),
         dump(VMConfig(vmid=vmid, name=f"vm{vmid}", memory_mb=64, cores=1)), rev),
        (keys.vm(vmid, "placement"), dump(Placement(node=node, state=RunState.RUNNING)), rev),
    ]


def config_json(vmid: int, **change: object) -> bytes:
    data = json.loads(dump(VMConfig(vmid=vmid, name=f"vm{vmid}", memory_mb=64, cores=1)))
    data.update(change)
    for k in [k for k, v in change.items() if v is None]:
        del data[k]
    return json.dumps(data).encode()


def with_config(vmid: int, raw: bytes) -> list[Item]:
    return [(keys.vm(vmid, "config"), raw, 5), *vm_items(vmid)[1:]]


# --- a newer version's fields ------------------------------------------------------------


def test_a_newer_versions_field_is_accepted_and_kept_on_write_back() -> None:
    raw = config_json(101, numa={"nodes": 2}, disks=[{"volume": "local:a.qcow2",
                                                       "size_mb": 10, "iothread": True}])
    vms, problems = records.vms_from(with_config(101, raw))
    assert problems == [] and [v.vmid for v in vms] == [101]
    changed = vms[0].config.model_copy(update={"memory_mb": 128})
    again = json.loads(dump(changed))
    assert again["numa"] == {"nodes": 2} and again["memory_mb"] == 128
    assert again["disks"][0]["iothread"] is True
    # Comparisons are about what this version knows.
    plain = VMConfig.model_validate_json(config_json(101, disks=[
        {"volume": "local:a.qcow2", "size_mb": 10}]))
    assert vms[0].config == plain


def test_placement_changed_by_an_old_version_keeps_the_new_field() -> None:
    stored = json.loads(dump(Placement(node="n1", state=RunState.RUNNING)))
    stored["owner_epoch"] = 7
    placement = records.load(Placement, json.dumps(stored).encode())
    moved = placement.model_copy(update={"node": "n2", "generation": 1})
    assert json.loads(dump(moved))["owner_epoch"] == 7


# --- each kind of malformed record -------------------------------------------------------


@pytest.mark.parametrize(("raw", "what"), [
    (b"{not json", "not JSON"),
    (config_json(101, memory_mb="lots"), "memory_mb: Input should be a valid integer"),
    (config_json(101, name=None), "name: Field required"),
    (config_json(101, cores=0), "cores: Input should be greater than or equal to 1"),
    (b"[1, 2]", "Input should be an object"),
    (b"\xff\xfe", "not JSON"),
])
def test_a_malformed_config_is_skipped_and_its_vm_is_unreadable_not_gone(
        raw: bytes, what: str) -> None:
    items = with_config(101, raw) + vm_items(102) + vm_items(103)
    vms, problems = records.vms_from(items)
    assert [v.vmid for v in vms] == [102, 103]
    assert len(problems) == 1 and problems[0].key == keys.vm(101, "config")
    assert problems[0].what.startswith(what), problems[0].what
    assert records.unreadable_vms(problems) == {101}


def test_a_malformed_placement_makes_the_vm_unreadable() -> None:
    items = vm_items(101)[:1] + [(keys.vm(101, "placement"), b'{"node": "n1", '
                                                             b'"state": "frozen"}', 5)]
    vms, problems = records.vms_from(items + vm_items(102))
    assert [v.vmid for v in vms] == [102]
    assert problems[0].key == keys.vm(101, "placement") and "state" in problems[0].what
    assert records.unreadable_vms(problems) == {101}


def test_a_malformed_runtime_counts_as_no_report_yet() -> None:
    items = vm_items(101) + [(keys.vm(101, "runtime"), b'{"node": "n1", "status": 3}', 6)]
    vms, problems = records.vms_from(items)
    assert [v.vmid for v in vms] == [101] and vms[0].runtime is None
    assert [p.key for p in problems] == [keys.vm(101, "runtime")]
    assert records.unreadable_vms(problems) == set()


def test_a_key_that_does_not_parse_is_reported_and_skipped() -> None:
    bad = ("/corral/vms/abc/config", dump(VMConfig(vmid=104, name="x", memory_mb=64,
                                                   cores=1)), 3)
    vms, problems = records.vms_from([bad, *vm_items(102)])
    assert [v.vmid for v in vms] == [102]
    assert problems == [Problem("/corral/vms/abc/config",
                                "not a VM key (/corral/vms/<vmid>/<field>)")]
    assert records.unreadable_vms(problems) == set()


def test_a_config_under_another_vms_key_is_not_taken_for_that_vm() -> None:
    vms, problems = records.vms_from(with_config(101, config_json(102)))
    assert vms == [] and records.unreadable_vms(problems) == {101}
    assert "VM 102" in problems[0].what


def test_half_written_vm_is_no_vm_and_no_problem() -> None:
    vms, problems = records.vms_from(vm_items(101)[:1])
    assert vms == [] and problems == []


def test_a_lone_record_that_does_not_decode_is_reported_and_keeps_its_id() -> None:
    """A config with no placement beside it is no VM, but a broken one is still named."""
    f = {"config": (b'{"bad json', 5)}
    problems: list[Problem] = []
    assert records.vm_from(999, f, problems) is None
    assert [p.key for p in problems] == [keys.vm(999, "config")]
    assert records.unreadable_vms(problems) == {999}
    with pytest.raises(UnreadableRecord):
        records.vm_or_raise(999, f)
    assert records.vm_or_raise(999, {"placement": (b'{"node": "n1"}', 5)}) is None


def test_one_vm_read_raises_for_unreadable_and_answers_none_for_absent() -> None:
    f = {key.rsplit("/", 1)[1]: (value, rev) for key, value, rev in
         with_config(101, b"{not json")}
    with pytest.raises(UnreadableRecord) as err:
        records.vm_or_raise(101, f)
    assert keys.vm(101, "config") in str(err.value)
    assert records.vm_or_raise(101, {}) is None
    with pytest.raises(UnreadableRecord):
        records.load_or_raise(Task, keys.task("t1"), b'{"id": "t1"}')


def test_nodes_tasks_and_storages_skip_what_does_not_decode() -> None:
    info = dump(NodeInfo(name="n1", cpus=2, memory_mb=1024))
    task = dump(Task(id="t1", kind="vm.start", node="n1", vmid=101))
    items: list[Item] = [
        (keys.node("n1", "info"), info, 1),
        (keys.node("n1", "alive"), b"1", 1),
        (keys.node("n1", "usage"), b'{"cpu": "high"}', 1),
        (keys.node("n2", "info"), b'{"name": "n2"}', 1),
        (keys.node("n2", "request"), b'{"maintenance": "maybe"}', 1),
        (keys.node("n3", "request"), dump(NodeRequest(maintenance=True)), 1),
        (keys.task("t1"), task, 1),
        (keys.task("t2"), b'{"id": "t2", "kind": "vm.start"}', 1),
        (keys.storage("local"), dump(StorageConfig(id="local", type=StorageType.DIR,
                                                   path="x")), 1),
        (keys.storage("nfs"), b'{"id": "nfs", "type": "ceph", "path": "/x"}', 1),
    ]
    snap = snapshot_from(items, 9, 0.0)
    n1, n2 = snap.nodes["n1"], snap.nodes["n2"]
    assert n1.info is not None and n1.alive and n1.usage is None
    assert n2.info is None and n2.request is None
    assert snap.nodes["n3"].request == NodeRequest.model_validate_json(items[5][1])
    assert [t.id for t in snap.tasks] == ["t1"] and list(snap.storages) == ["local"]
    assert {p.key for p in snap.problems} == {
        keys.node("n1", "usage"), keys.node("n2", "info"), keys.node("n2", "request"),
        keys.task("t2"), keys.storage("nfs")}
    assert snap.unreadable_requests == {"n2"}
    assert all(p.what and len(p.what) <= records.MAX_WHAT for p in snap.problems)


def test_snapshot_carries_unreadable_vms() -> None:
    snap = snapshot_from(with_config(101, b"{") + vm_items(102), 3, 0.0)
    assert list(snap.vms) == [102] and snap.unreadable_vms == {101}
    assert [p.key for p in snap.problems] == [keys.vm(101, "config")]


# --- HA records --------------------------------------------------------------------------


def test_ha_inputs_skip_what_does_not_decode() -> None:
    rule = HARule(name="apart", kind="anti-affinity", vms=[101, 102])
    items: list[Item] = [
        (keys.ha(101), dump(HASettings(vmid=101)), 1),
        (keys.ha(102), b'{"vmid": 102, "max_restart": "many"}', 1),
        (keys.ha(103), dump(HASettings(vmid=104)), 1),
        ("/corral/ha/groups", b"{}", 1),
        (keys.ha_rule("apart"), dump(rule), 1),
        (keys.ha_rule("broken"), b'{"name": "broken", "kind": "anti-affinity"}', 1),
        (keys.ha_fenced("n2"), dump(FenceConfirmation(node="n2", at=5.0)), 1),
        (keys.ha_fenced("n3"), b"{", 1),
    ]
    inputs = ha_inputs_from(items)
    assert list(inputs.settings) == [101] and inputs.rules == [rule]
    assert list(inputs.fenced) == ["n2"]
    assert {p.key for p in inputs.problems} == {
        keys.ha(102), keys.ha(103), "/corral/ha/groups", keys.ha_rule("broken"),
        keys.ha_fenced("n3")}
    assert inputs.unreadable_settings == {102, 103}


def test_ha_state_keeps_the_entries_that_decode() -> None:
    good = HAState(vms={101: VMHAState(status="started", node="n1"),  # type: ignore[arg-type]
                        102: VMHAState(status="fence", node="n2")},  # type: ignore[arg-type]
                   )
    data = json.loads(dump(good))
    data["vms"]["102"]["status"] = "frozen-by-newer-version"
    data["nodes"]["n1"] = {"status": "online", "lost_at": "yesterday"}
    inputs = ha_inputs_from([(keys.HA_STATE, json.dumps(data).encode(), 1)])
    assert list(inputs.state.vms) == [101] and inputs.state.nodes == {}
    assert sorted(p.what.split(":")[0] for p in inputs.problems) == ["nodes.n1.lost_at",
                                                                     "vms.102.status"]
    broken = ha_inputs_from([(keys.HA_STATE, b"not json", 1)])
    assert broken.state == HAState() and broken.problems[0].what.startswith("not JSON")


# --- models: records accept, requests refuse ---------------------------------------------


def test_runtime_record_accepts_unknown_fields() -> None:
    rt = VMRuntime.model_validate({"node": "n1", "status": "running", "cpu_ns": 5})
    assert rt.status is VMStatus.RUNNING


def test_request_bodies_refuse_unknown_fields() -> None:
    from corral.api.routes_bulk import BulkRequest
    from corral.api.routes_ha import HARuleIn, HASettingsIn, HAUpdate

    for cls, body in ((HASettingsIn, {"vmid": 101}), (HAUpdate, {}),
                      (HARuleIn, {"name": "r", "kind": "anti-affinity", "vms": [101, 102]}),
                      (BulkRequest, {"action": "start"})):
        cls.model_validate(body)
        with pytest.raises(ValidationError, match="max_restrat"):
            cls.model_validate({**body, "max_restrat": 3})
