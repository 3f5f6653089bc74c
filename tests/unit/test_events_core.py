"""The events stream's decisions on plain data: which keys make which events, with what
bodies; reconnects; one client's bounded backlog; stream tickets."""

from __future__ import annotations

import json
from typing import Any

from corral.api import events_core as core
from corral.api.stream_tickets import StreamTickets
from corral.api.views import node_out, vm_out
from corral.cluster import keys
from corral.cluster.models import (
    NodeInfo,
    NodeUsage,
    Placement,
    RunState,
    Task,
    TaskState,
    VMConfig,
    VMRuntime,
    VMStatus,
)
from corral.cluster.records import dump
from corral.cluster.view_state import Change, ViewState
from corral.ha.models import HAConfig, HASettings
from corral.ha.store import ha_inputs_from

NOW = 1000.0


class World:
    """A view state fed by changes, and the events each batch of changes makes."""

    def __init__(self) -> None:
        self.state = ViewState()
        self.rev = 1
        self.state.reset([], self.rev)
        self.memory = core.Memory.of(self.state.snapshot(NOW), self.inputs())

    def inputs(self) -> Any:
        return ha_inputs_from(self.state.ha_items())

    def flush(self, *writes: tuple[str, bytes | None]) -> list[core.Event]:
        """Apply writes as consecutive revisions, then make one flush's events."""
        changes = []
        for key, value in writes:
            self.rev += 1
            changes.append(Change(key, value, self.rev))
        changed = self.state.apply(changes)
        self.state.advance(self.rev)
        snap = self.state.snapshot(NOW)
        return core.events_for(core.touched_by(changed), snap, self.inputs(), self.memory)

    def node(self, name: str) -> list[tuple[str, bytes | None]]:
        return [(keys.node(name, "info"), dump(NodeInfo(name=name, cpus=2, memory_mb=2048))),
                (keys.node(name, "alive"), b"1")]


def vm_writes(vmid: int, node: str, status: VMStatus | None = None
              ) -> list[tuple[str, bytes | None]]:
    writes: list[tuple[str, bytes | None]] = [
        (keys.vm(vmid, "config"), dump(VMConfig(vmid=vmid, name=f"vm{vmid}", memory_mb=64,
                                                cores=1))),
        (keys.vm(vmid, "placement"), dump(Placement(node=node, state=RunState.RUNNING))),
    ]
    if status is not None:
        writes.append((keys.vm(vmid, "runtime"), dump(VMRuntime(node=node, status=status,
                                                                pid=7, updated_at=1.0))))
    return writes


def of_kind(events: list[core.Event], kind: str) -> list[dict[str, Any]]:
    return [e.data for e in events if e.kind == kind]


def usage(cpu: float) -> bytes:
    return dump(NodeUsage(cpu=cpu, memory_used_mb=1, memory_total_mb=2, sampled_at=1.0))


def test_a_new_vm_is_a_vm_event_with_its_list_body_and_its_host_counts_it() -> None:
    w = World()
    w.flush(*w.node("n1"))
    events = w.flush(*vm_writes(101, "n1", VMStatus.RUNNING))
    snap = w.state.snapshot(NOW)
    assert of_kind(events, "vm") == [
        {"vmid": 101, "vm": vm_out(snap.vms[101]).model_dump(mode="json")}]
    (node,) = of_kind(events, "node")
    assert node["node"] == node_out(snap.nodes["n1"], snap
                                    ).model_dump(mode="json")
    assert node["node"]["vms"] == 1 and node["node"]["vms_running"] == 1
    assert {e.revision for e in events} == {w.rev}


def test_a_vm_that_moves_updates_both_hosts_and_a_deleted_vm_its_last_host() -> None:
    w = World()
    w.flush(*w.node("n1"), *w.node("n2"), *vm_writes(101, "n1"))
    events = w.flush((keys.vm(101, "placement"),
                      dump(Placement(node="n2", state=RunState.RUNNING))))
    counts = {d["name"]: d["node"]["vms"] for d in of_kind(events, "node")}
    assert counts == {"n1": 0, "n2": 1}
    events = w.flush((keys.vm(101, "config"), None), (keys.vm(101, "placement"), None))
    assert of_kind(events, "vm") == [{"vmid": 101, "deleted": True}]
    assert {d["name"]: d["node"]["vms"] for d in of_kind(events, "node")} == {"n2": 0}


def test_a_vm_whose_record_does_not_decode_leaves_the_list_as_unreadable() -> None:
    w = World()
    w.flush(*w.node("n1"), *vm_writes(101, "n1"))
    events = w.flush((keys.vm(101, "config"), b'{"broken'))
    assert of_kind(events, "vm") == [{"vmid": 101, "deleted": True, "unreadable": True}]


def test_a_burst_of_usage_samples_is_one_node_event_with_the_last_sample() -> None:
    w = World()
    w.flush(*w.node("n1"), *w.node("n2"), *vm_writes(101, "n1"))
    events = w.flush(*[(keys.node("n1", "usage"), usage(c)) for c in (0.1, 0.2, 0.3)],
                     (keys.node("n2", "usage"), usage(0.9)))
    assert [e.kind for e in events] == ["node", "node"]  # no VM, no HA event
    cpu = {d["name"]: d["node"]["usage"]["cpu"] for d in of_kind(events, "node")}
    assert cpu == {"n1": 0.3, "n2": 0.9}


def test_a_host_that_goes_offline_turns_its_vms_unknown_and_changes_ha() -> None:
    w = World()
    w.flush(*w.node("n1"), *w.node("n2"), *vm_writes(101, "n1", VMStatus.RUNNING),
            *vm_writes(102, "n2", VMStatus.RUNNING))
    events = w.flush((keys.node("n1", "alive"), None))
    assert [(d["vmid"], d["vm"]["status"]) for d in of_kind(events, "vm")] == [(101, "unknown")]
    assert [(d["name"], d["node"]["online"]) for d in of_kind(events, "node")] == [("n1", False)]
    (ha,) = of_kind(events, "ha")  # the row that changed, not the whole report
    assert [(n["node"], n["status"]) for n in ha["nodes"]] == [("n1", "unknown")]
    assert [u["vmid"] for u in ha["unprotected"]] == [101]
    assert "vms" not in ha and "skipped" not in ha


def test_tasks_carry_their_record_or_deleted() -> None:
    w = World()
    task = Task(id="t1", kind="vm.start", node="n1", vmid=101, state=TaskState.RUNNING,
                created_at=5.0)
    events = w.flush((keys.task("t1"), dump(task)))
    assert of_kind(events, "task") == [{"id": "t1", "task": task.model_dump(mode="json")}]
    assert of_kind(w.flush((keys.task("t1"), None)), "task") == [{"id": "t1", "deleted": True}]


def test_ha_is_sent_only_when_the_report_changed() -> None:
    w = World()
    w.flush(*w.node("n1"), *vm_writes(101, "n1", VMStatus.RUNNING))
    w.flush(*vm_writes(102, "n1", VMStatus.RUNNING))
    events = w.flush((keys.ha(101), dump(HASettings(vmid=101))),
                     (keys.ha(102), dump(HASettings(vmid=102))))
    (ha,) = of_kind(events, "ha")
    assert [(v["vmid"], v["status"]) for v in ha["vms"]] == [(101, "started"), (102, "started")]
    # The cluster-wide HA config is no part of the report: nothing to send.
    assert w.flush((keys.HA_CONFIG, dump(HAConfig()))) == []
    # One HA VM stops: its row alone; one leaves HA: its id.
    events = w.flush((keys.vm(101, "runtime"), dump(VMRuntime(
        node="n1", status=VMStatus.STOPPED, updated_at=2.0))), (keys.ha(102), None))
    (ha,) = of_kind(events, "ha")
    assert [v["vmid"] for v in ha["vms"]] == [101] and ha["vms_removed"] == [102]


def test_ha_rows_merged_into_the_old_report_give_the_new_one() -> None:
    w = World()
    w.flush(*w.node("n1"), *w.node("n2"), *vm_writes(101, "n1", VMStatus.RUNNING),
            *vm_writes(102, "n2", VMStatus.RUNNING), (keys.ha(101), dump(HASettings(vmid=101))))
    old = w.memory.ha.model_dump(mode="json")
    events = w.flush((keys.node("n2", "alive"), None), (keys.node("n1", "info"), None),
                     (keys.ha(101), None), (keys.ha(102), dump(HASettings(vmid=102))))
    (ha,) = of_kind(events, "ha")
    merged = dict(old)
    for part, ident in (("vms", "vmid"), ("nodes", "node")):
        rows = {r[ident]: r for r in old[part]}
        rows.update({r[ident]: r for r in ha.get(part, [])})
        for gone in ha.get(f"{part}_removed", []):
            del rows[gone]
        merged[part] = [rows[k] for k in sorted(rows)]
    for part in ("unprotected", "skipped"):
        merged[part] = ha.get(part, old[part])
    assert merged == w.memory.ha.model_dump(mode="json")
    assert merged != old


def test_keys_of_no_event_make_none() -> None:
    w = World()
    assert w.flush((keys.name("web"), b"101"), (keys.token("ab"), b"{}"),
                   (keys.MANAGER, b"m1"), (f"{keys.NODES}n1", b"1")) == []


def test_encoded_events_are_one_sse_message_with_the_revision_as_id() -> None:
    text = core.Event("vm", 42, {"vmid": 101, "vm": {"message": "two\nlines"}}).encode()
    assert text.endswith("\n\n")
    lines = text[:-2].split("\n")
    assert lines[:2] == ["id: 42", "event: vm"]
    (data,) = lines[2:]
    assert json.loads(data.removeprefix("data: ")) == {
        "revision": 42, "vmid": 101, "vm": {"message": "two\nlines"}}


def test_reconnects_resync_unless_they_saw_this_revision() -> None:
    assert core.resync_on_connect(None, 7) == core.resync(7, core.CONNECTED)
    assert core.resync_on_connect("6", 7) == core.resync(7, core.MISSED)
    assert core.resync_on_connect("not a number", 7) == core.resync(7, core.MISSED)
    assert core.resync_on_connect("7", 7) is None
    assert core.resync_on_connect("9", 7) is None  # another API's view got further


def reasons(chunks: list[str]) -> list[str]:
    return [json.loads(c.split("data: ", 1)[1])["reason"] for c in chunks]


def test_a_backlog_that_overflows_is_dropped_for_one_resync() -> None:
    backlog = core.Backlog(max_events=10, max_bytes=1 << 20)
    event = core.Event("task", 1, {"id": "t"}).encode()
    for rev in range(1, 1001):  # a client that never reads
        backlog.push([event, event, event], rev)
        assert len(backlog) <= 10
    assert backlog.dropped > 0
    chunks = backlog.take()
    assert 1 <= len(chunks) <= 10 and len(backlog) == 0 and backlog.size == 0
    assert reasons(chunks[:1]) == [core.BEHIND]  # then what came after the drop
    assert chunks[1:] == [event] * (len(chunks) - 1)


def test_a_backlog_is_bounded_in_bytes_too() -> None:
    backlog = core.Backlog(max_events=1000, max_bytes=2000)
    big = core.Event("ha", 1, {"ha": "x" * 900}).encode()
    for rev in range(50):
        backlog.push([big], rev)
        assert backlog.size <= 2000
    assert backlog.dropped > 0


def test_a_backlog_within_bounds_keeps_every_event_in_order() -> None:
    backlog = core.Backlog(max_events=10, max_bytes=1 << 20)
    events = [core.Event("task", r, {"id": f"t{r}"}).encode() for r in range(5)]
    for r, e in enumerate(events):
        backlog.push([e], r)
    assert backlog.take() == events and backlog.dropped == 0


def test_stream_tickets_open_once_and_expire() -> None:
    tickets = StreamTickets(ttl=30.0, limit=3)
    t = tickets.issue(now=100.0)
    assert tickets.redeem(t, now=110.0)
    assert not tickets.redeem(t, now=110.0)  # spent
    late = tickets.issue(now=100.0)
    assert not tickets.redeem(late, now=130.0)
    assert not tickets.redeem("made-up", now=100.0)
    issued = [tickets.issue(now=200.0) for _ in range(5)]
    assert len(tickets) == 3  # the oldest are forgotten, never more than the limit
    assert not tickets.redeem(issued[0], now=200.0) and tickets.redeem(issued[-1], now=200.0)


def test_a_ticket_carries_the_token_it_was_traded_for_once() -> None:
    tickets = StreamTickets(ttl=30.0)
    t = tickets.issue(now=100.0, token="secret")
    assert tickets.redeem_token(t, now=101.0) == "secret"
    assert tickets.redeem_token(t, now=101.0) is None  # spent
    assert tickets.redeem_token(tickets.issue(now=100.0), now=101.0) == ""  # none carried
    assert tickets.redeem_token(tickets.issue(now=100.0, token="x"), now=131.0) is None
