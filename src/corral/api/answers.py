"""Answers built once per change of what they are built from, not once per request: with
5,000 VMs a full VM list costs tens of milliseconds to build and to encode, and most requests
between two changes ask for the same one.

Every answer is built from the view's state at the moment it is looked up, in one step with
no await, so the key (the revisions of the areas it reads) and the content always agree. A
caller makes its read consistent first (`ClusterView.caught_up`); the state only moves
forward, so what is found here is at least that fresh.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from corral.api.schemas import VMOut
from corral.api.views import vm_out
from corral.cluster.view import ClusterView
from corral.cluster.view_state import ViewState

T = TypeVar("T")
VM_AREAS = ("vms", "nodes")  # a VM's answer shows whether its host is online


class Answers:
    def __init__(self, view: ClusterView) -> None:
        self.view = view
        self._kept: dict[str, tuple[tuple[int, ...], Any]] = {}
        # Each VM's answer, by vmid, the vmids in order, and what they were built from.
        self._entries: dict[int, VMEntry] = {}
        self._order: list[int] = []
        self._online: frozenset[str] = frozenset()
        self._built_at = 0  # the revision of the state they were last brought up to

    def _get(self, name: str, areas: tuple[str, ...],
             build: Callable[[ViewState], T]) -> T:
        key = self.view.state.area_revisions(areas)
        kept = self._kept.get(name)
        if kept is not None and kept[0] == key:
            return kept[1]  # type: ignore[no-any-return]
        value = build(self.view.state)
        self._kept[name] = (key, value)
        return value

    def vm_outs(self) -> list[VMOut]:
        """Every VM as GET /vms shows it, by vmid (kept: a page of it costs the page)."""
        return self._get("vm_outs", VM_AREAS, lambda _state: [e.out for e in self._vm_entries()])

    def vm_json(self, outs: list[VMOut]) -> bytes:
        """outs (as vm_outs gave them, or a part) encoded as a JSON list."""
        return json_list(self._entries[o.vmid].json for o in outs)

    def vm_list_json(self) -> bytes:
        """The whole list, encoded."""
        return self._get("vm_list_json", VM_AREAS,
                         lambda _state: json_list(e.json for e in self._vm_entries()))

    def _vm_entries(self) -> list[VMEntry]:
        return self._get("vm_entries", VM_AREAS, self._build_vm_entries)

    def _build_vm_entries(self, state: ViewState) -> list[VMEntry]:
        """A VM's answer is built again only when its records changed or its host came or
        went: a change of one VM among 5,000 costs one answer, not 5,000. When the view
        cannot say what changed (it listed anew, or too much changed), all are rebuilt."""
        online = state.online()
        changed = state.vms_changed_since(self._built_at) if self._built_at else None
        if changed is None:
            self._entries, self._order = {}, []
            changed = set(state.vmids())
        for host in online ^ self._online:  # came or went: its VMs read differently
            changed.update(state.vmids_on(host))
        for vmid in changed:
            vm = state.vm(vmid)
            if vm is None:
                if self._entries.pop(vmid, None) is not None:
                    del self._order[bisect.bisect_left(self._order, vmid)]
                continue
            if vmid not in self._entries:
                bisect.insort(self._order, vmid)
            out = vm_out(vm, vm.placement.node in online)
            self._entries[vmid] = VMEntry(out, out.model_dump_json().encode())
        self._online, self._built_at = online, state.revision
        return [self._entries[v] for v in self._order]


@dataclass(frozen=True)
class VMEntry:
    out: VMOut
    json: bytes


def json_list(items: Iterable[bytes]) -> bytes:
    """Encoded JSON values joined into one encoded list."""
    return b"[" + b",".join(items) + b"]"

