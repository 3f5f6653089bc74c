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
from typing import Any, TypeVar

from pydantic import TypeAdapter

from corral.api.schemas import VMOut
from corral.api.views import vm_out
from corral.cluster.snapshot import ClusterSnapshot
from corral.cluster.view import ClusterView

T = TypeVar("T")
VM_LIST = TypeAdapter(list[VMOut])
VM_AREAS = ("vms", "nodes")  # a VM's answer shows whether its host is online


class Answers:
    def __init__(self, view: ClusterView) -> None:
        self.view = view
        self._kept: dict[str, tuple[tuple[int, ...], Any]] = {}

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
        def build(snap: ClusterSnapshot) -> list[VMOut]:
            online = {n.name for n in snap.nodes.values() if n.alive}
            return [vm_out(vm, vm.placement.node in online) for vm in snap.vms.values()]
        return self._get("vm_outs", VM_AREAS, build)

    def vm_list_json(self) -> bytes:
        """The whole list, encoded."""
        return self._get("vm_list_json", VM_AREAS,
                         lambda _snap: VM_LIST.dump_json(self.vm_outs()))
