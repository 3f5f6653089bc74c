"""What the events stream (`GET /api/v1/events`) sends, decided from the keys a watch changed
and the view's snapshot. Pure: the shell (`api.routes_events`) collects keys, calls this once
per flush for every client at once, and queues the encoded events per client.

An event names what changed and carries its body as the list endpoints show it, at the
snapshot's revision (its SSE id). A client applies them to what it read from the lists;
`resync` tells it to read the lists again.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from corral.api.views import node_out, vm_out
from corral.cluster import keys
from corral.cluster.records import vmid_of
from corral.cluster.snapshot import ClusterSnapshot
from corral.ha.models import HAInputs
from corral.ha.status import HAReport, ha_status

Kind = Literal["vm", "node", "task", "ha", "resync"]

# Why a client must read the lists again (the `reason` of a `resync` event).
CONNECTED = "connected"  # a new stream: read the lists, then apply events
MISSED = "missed"  # a reconnect from a revision older than this stream can vouch for
RELISTED = "relisted"  # the view listed the cluster anew: anything may have changed
BEHIND = "behind"  # this client read too slowly and its backlog was dropped

# VM fields that move a VM between hosts or change whether it runs (a host's counts).
_COUNTED_VM_FIELDS = ("placement", "runtime")
# Host fields the HA report reads (its liveness, its published fence time).
_HA_NODE_FIELDS = ("alive", "info")


@dataclass(frozen=True)
class Event:
    kind: Kind
    revision: int
    data: dict[str, Any]

    def encode(self) -> str:
        """The event in SSE wire form. The id is the revision: a reconnecting EventSource
        sends it back as Last-Event-ID."""
        body = json.dumps({"revision": self.revision, **self.data}, separators=(",", ":"))
        return f"id: {self.revision}\nevent: {self.kind}\ndata: {body}\n\n"


def resync(revision: int, reason: str) -> Event:
    return Event("resync", revision, {"reason": reason})


def resync_on_connect(last_event_id: str | None, revision: int) -> Event | None:
    """The event a new stream starts with. The view keeps no history, so a client that last
    saw an older revision may have missed anything: it reads again. One that saw this
    revision (or a later one, from another API process) missed nothing."""
    if last_event_id is None:
        return resync(revision, CONNECTED)
    try:
        seen = int(last_event_id.strip())
    except ValueError:
        return resync(revision, MISSED)
    return resync(revision, MISSED) if seen < revision else None


@dataclass
class Touched:
    """What one flush's changed keys touch."""

    vms: set[int] = field(default_factory=set)
    counted_vms: set[int] = field(default_factory=set)  # their host's counts may change
    nodes: set[str] = field(default_factory=set)
    nodes_alive: set[str] = field(default_factory=set)  # their VMs' status may change
    tasks: set[str] = field(default_factory=set)
    ha: bool = False


def touched_by(changed: Iterable[str]) -> Touched:
    """Group keys by what they belong to; a burst of usage samples of one host is one host.
    Keys of no event (names, storage, tokens, the manager key, membership) are left out."""
    t = Touched()
    for key in changed:
        if key.startswith(keys.VMS):
            vmid = vmid_of(key)
            if vmid is None:
                continue
            t.vms.add(vmid)
            t.ha = True
            if keys.split(key, keys.VMS)[1] in _COUNTED_VM_FIELDS:
                t.counted_vms.add(vmid)
        elif key.startswith(keys.NODES):
            name, fld = keys.split(key, keys.NODES)
            if not name or not fld or fld == "recent":
                continue  # the balancer's input: nothing a host event shows changed
            t.nodes.add(name)
            if fld == "alive":
                t.nodes_alive.add(name)
            if fld in _HA_NODE_FIELDS:
                t.ha = True
        elif key.startswith(keys.TASKS):
            t.tasks.add(key[len(keys.TASKS):])
        elif key.startswith((keys.HA, keys.HA_STATE, keys.HA_CONFIG)):
            t.ha = True
    return t


@dataclass
class Memory:
    """What the last flush sent that a snapshot alone cannot tell: the host each VM was on
    (a VM that moved or went away changes its old host's counts) and the last HA report
    (an HA event is sent only when the report changed)."""

    vm_nodes: dict[int, str]
    ha: HAReport

    @classmethod
    def of(cls, snap: ClusterSnapshot, ha_inputs: HAInputs) -> Memory:
        return cls({v.vmid: v.placement.node for v in snap.vms.values()},
                   ha_status(snap, ha_inputs))


def events_for(t: Touched, snap: ClusterSnapshot, ha_inputs: HAInputs,
               memory: Memory) -> list[Event]:
    """The events of one flush, in a fixed order (tasks, VMs, hosts, HA); memory is brought
    up to date with what they say."""
    rev = snap.revision
    online = {n.name for n in snap.nodes.values() if n.alive}
    vms = set(t.vms)
    for name in t.nodes_alive:  # a host that came or went changes its VMs' status
        vms.update(v.vmid for v in snap.vms_on(name))
    nodes = set(t.nodes)
    for vmid in t.counted_vms:
        if (before := memory.vm_nodes.get(vmid)) is not None:
            nodes.add(before)
        if (vm := snap.vms.get(vmid)) is not None:
            nodes.add(vm.placement.node)
    out: list[Event] = []
    if t.tasks:
        by_id = {task.id: task for task in snap.tasks}
        for task_id in sorted(t.tasks):
            task = by_id.get(task_id)
            out.append(Event("task", rev, {"id": task_id, "task": task.model_dump(mode="json")}
                             if task else {"id": task_id, "deleted": True}))
    for vmid in sorted(vms):
        vm = snap.vms.get(vmid)
        if vm is None:
            memory.vm_nodes.pop(vmid, None)
            gone: dict[str, Any] = {"vmid": vmid, "deleted": True}
            if vmid in snap.unreadable_vms:  # left out of the list, as GET /vms does
                gone["unreadable"] = True
            out.append(Event("vm", rev, gone))
        else:
            memory.vm_nodes[vmid] = vm.placement.node
            body = vm_out(vm, vm.placement.node in online).model_dump(mode="json")
            out.append(Event("vm", rev, {"vmid": vmid, "vm": body}))
    if nodes:
        for name in sorted(nodes):
            node = snap.nodes.get(name)
            out.append(Event("node", rev, {
                "name": name, "node": node_out(node, snap).model_dump(mode="json")
            } if node else {"name": name, "deleted": True}))
    if t.ha:
        report = ha_status(snap, ha_inputs)
        if (change := ha_change(memory.ha, report)) is not None:
            memory.ha = report
            out.append(Event("ha", rev, change))
    return out


def ha_change(old: HAReport, new: HAReport) -> dict[str, Any] | None:
    """What changed in the HA report, as `GET /ha/status` rows: VM and host rows that are new
    or differ, the ids of rows gone; `unprotected` and `skipped` whole when they differ
    (short lists). None when nothing did. A bulk action on HA VMs sends its VMs' rows, not
    the report of every HA VM each flush."""
    change: dict[str, Any] = {}
    for part, ident in (("vms", "vmid"), ("nodes", "node")):
        before = {getattr(r, ident): r for r in getattr(old, part)}
        after = {getattr(r, ident): r for r in getattr(new, part)}
        rows = [r.model_dump(mode="json") for k, r in after.items() if before.get(k) != r]
        gone = sorted(k for k in before if k not in after)
        if rows:
            change[part] = rows
        if gone:
            change[f"{part}_removed"] = gone
    for part in ("unprotected", "skipped"):
        if getattr(old, part) != getattr(new, part):
            change[part] = [r.model_dump(mode="json") for r in getattr(new, part)]
    return change or None


class Backlog:
    """One client's encoded events not yet written, bounded in count and size. A client
    that falls that far behind loses them all for one `resync`: it reads the lists again,
    which costs less than any backlog, and its memory here stays bounded."""

    def __init__(self, max_events: int, max_bytes: int) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._chunks: deque[str] = deque()
        self._bytes = 0
        self.dropped = 0  # how often the backlog was dropped

    def __len__(self) -> int:
        return len(self._chunks)

    @property
    def size(self) -> int:
        return self._bytes

    def push(self, chunks: list[str], revision: int) -> None:
        """Queue one flush's encoded events (all at revision), or drop everything for a
        resync. Encoded events are ASCII (JSON escapes the rest): characters are bytes."""
        size = sum(len(c) for c in chunks)
        if (len(self._chunks) + len(chunks) > self.max_events
                or self._bytes + size > self.max_bytes):
            self._chunks.clear()
            self.dropped += 1
            chunks = [resync(revision, BEHIND).encode()]
            size = len(chunks[0])
            self._bytes = 0
        self._chunks.extend(chunks)
        self._bytes += size

    def take(self) -> list[str]:
        """Everything queued, oldest first; the backlog is empty after."""
        chunks = list(self._chunks)
        self._chunks.clear()
        self._bytes = 0
        return chunks
