"""Answers built once per change of what they are built from, not once per request: with
5,000 VMs a full VM list costs tens of milliseconds to build and to encode, and most requests
between two changes ask for the same one.

Every answer is built from the view's state at the moment it is looked up, in one step with
no await, so the key (the revisions of the areas it reads) and the content always agree. A
caller makes its read consistent first (`ClusterView.current`); the state only moves
forward, so what is found here is at least that fresh.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from corral.api.schemas import VMOut
from corral.api.views import vm_out
from corral.cluster.models import VM
from corral.cluster.snapshot import ClusterSnapshot
from corral.cluster.view import ClusterView

T = TypeVar("T")
VM_AREAS = ("vms", "nodes")  # a VM's answer shows whether its host is online


class Answers:
    def __init__(self, view: ClusterView) -> None:
        self.view = view
        self._kept: dict[str, tuple[tuple[int, ...], Any]] = {}
        self._entries: dict[int, VMEntry] = {}
        self._encoded: dict[int, bytes] = {}

    def _get(self, name: str, areas: tuple[str, ...],
             build: Callable[[ClusterSnapshot], T]) -> T:
        key = self.view.state.area_revisions(areas)
        kept = self._kept.get(name)
        if kept is not None and kept[0] == key:
            return kept[1]  # type: ignore[no-any-return]
        value = build(self.view.snapshot(time.time()))
        self._kept[name] = (key, value)
        return value

    def vm_outs(self) -> list[VMOut]:
        """Every VM as GET /vms shows it, by vmid."""
        return [e.out for e in self._vm_entries()]

    def vm_json(self, outs: list[VMOut]) -> bytes:
        """outs (as vm_outs gave them, or a part) encoded as a JSON list."""
        encoded = self._encoded
        return b"[" + b",".join(encoded[o.vmid] for o in outs) + b"]"

    def vm_list_json(self) -> bytes:
        """The whole list, encoded."""
        return self._get("vm_list_json", VM_AREAS,
                         lambda _snap: self.vm_json(self.vm_outs()))

    def _vm_entries(self) -> list[VMEntry]:
        return self._get("vm_entries", VM_AREAS, self._build_vm_entries)

    def _build_vm_entries(self, snap: ClusterSnapshot) -> list[VMEntry]:
        """A VM's answer is built again only when its records changed (the view keeps a VM's
        decoded record until then) or its host came or went: a change of one VM among
        5,000 costs one answer, not 5,000."""
        online = {n.name for n in snap.nodes.values() if n.alive}
        kept, entries = self._entries, []
        for vmid, vm in snap.vms.items():
            up = vm.placement.node in online
            entry = kept.get(vmid)
            if entry is None or entry.vm is not vm or entry.online != up:
                out = vm_out(vm, up)
                entry = VMEntry(vm, up, out, out.model_dump_json().encode())
            entries.append(entry)
        self._entries = {e.out.vmid: e for e in entries}
        self._encoded = {vmid: e.json for vmid, e in self._entries.items()}
        return entries


@dataclass(frozen=True)
class VMEntry:
    vm: VM  # the decoded record it was built from
    online: bool
    out: VMOut
    json: bytes
