"""One consistent read of the cluster, the input of every pure decision. Pure: the store
reads the items (`store.read_snapshot`), this builds the snapshot from them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import cached_property

from corral.cluster import records
from corral.cluster.models import (
    VM,
    Node,
    StorageConfig,
    StorageType,
    Task,
    TaskState,
    VMStatus,
)
from corral.cluster.records import Problem


@dataclass(frozen=True)
class ClusterSnapshot:
    now: float
    nodes: dict[str, Node]
    vms: dict[int, VM]
    tasks: list[Task] = field(default_factory=list)
    storages: dict[str, StorageConfig] = field(default_factory=dict)
    revision: int = 0
    # Records left out because they do not decode (reported, never taken for deleted).
    problems: tuple[Problem, ...] = ()

    @property
    def unreadable_vms(self) -> frozenset[int]:
        """VMs that exist but are not in `vms`: their config or placement does not decode."""
        return records.unreadable_vms(self.problems)

    @property
    def unreadable_requests(self) -> frozenset[str]:
        """Hosts whose maintenance request does not decode."""
        return records.unreadable_requests(self.problems)

    def vms_on(self, node: str) -> list[VM]:
        return self._vms_by_node.get(node, [])

    def running_on(self, node: str) -> int:
        """How many VMs placed on node its host last reported running."""
        return self._running_by_node.get(node, 0)

    def origins(self) -> frozenset[str]:
        """The hosts some VM is to return to (its placement's origin, after maintenance)."""
        return self._origins

    def unfinished(self) -> list[Task]:
        return self._unfinished

    def unfinished_on(self, vmid: int) -> list[Task]:
        """The unfinished tasks on vmid, oldest first."""
        return self._unfinished_by_vm.get(vmid, [])

    def active_task(self, vmid: int) -> Task | None:
        """The unfinished VM-level task on vmid, if any (bulk parents don't count)."""
        return next(iter(self.unfinished_on(vmid)), None)

    # Decisions and lists ask these once per VM or host: built once per snapshot.
    @cached_property
    def _vms_by_node(self) -> dict[str, list[VM]]:
        by_node: dict[str, list[VM]] = {}
        for vm in self.vms.values():
            by_node.setdefault(vm.placement.node, []).append(vm)
        return by_node

    @cached_property
    def _running_by_node(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for vm in self.vms.values():
            if vm.runtime is not None and vm.runtime.status is VMStatus.RUNNING:
                counts[vm.placement.node] = counts.get(vm.placement.node, 0) + 1
        return counts

    @cached_property
    def _origins(self) -> frozenset[str]:
        return frozenset(vm.placement.origin for vm in self.vms.values()
                         if vm.placement.origin)

    @cached_property
    def _unfinished(self) -> list[Task]:
        return [t for t in self.tasks if not t.state.finished]

    @cached_property
    def _unfinished_by_vm(self) -> dict[int, list[Task]]:
        by_vm: dict[int, list[Task]] = {}
        for t in self._unfinished:
            if t.vmid is not None:
                by_vm.setdefault(t.vmid, []).append(t)
        return by_vm

    def task(self, task_id: str) -> Task | None:
        return next((t for t in self.tasks if t.id == task_id), None)

    def local_disks(self, vm: VM) -> list[str]:
        """Volumes of vm that live on one host only (a `dir` storage)."""
        return [
            d.volume for d in vm.config.disks
            if (s := self.storages.get(d.storage)) is None or s.type is StorageType.DIR
        ]

    def indexed(self) -> ClusterSnapshot:
        """This snapshot with its indexes built, for one kept and read many times (`at`)."""
        _ = self._vms_by_node, self._running_by_node, self._origins, self._unfinished_by_vm
        return self

    def task_indexes(self) -> dict[str, object]:
        """The indexes built so far over this snapshot's tasks, for a snapshot that holds the
        very same tasks."""
        return {k: v for k, v in self.__dict__.items()
                if k in ("_unfinished", "_unfinished_by_vm")}

    def at(self, now: float) -> ClusterSnapshot:
        """The same records seen at another time, with the indexes built so far (they do
        not depend on the time)."""
        moved = replace(self, now=now)
        moved.__dict__.update({k: v for k, v in self.__dict__.items() if k.startswith("_")})
        return moved

    def with_tasks(self, tasks: list[Task]) -> ClusterSnapshot:
        """This snapshot as if tasks were queued: later choices in the same decision see
        them (their memory on a target, where a migrating VM goes, a VM being busy)."""
        return replace(self, tasks=[*self.tasks, *tasks]) if tasks else self

    def in_maintenance(self, node: str) -> bool:
        n = self.nodes.get(node)
        return bool(n and n.request and n.request.maintenance)


def sorted_problems(problems: Iterable[Problem]) -> tuple[Problem, ...]:
    """In one order whoever decoded them: a snapshot kept by watches equals a fresh read."""
    return tuple(sorted(problems, key=lambda p: (p.key, p.what)))


def snapshot_from(items: list[tuple[str, bytes, int]], revision: int, now: float
                  ) -> ClusterSnapshot:
    nodes, node_problems = records.nodes_from(items)
    vms, vm_problems = records.vms_from(items)
    tasks, task_problems = records.tasks_from(items)
    storages, storage_problems = records.storages_from(items)
    return ClusterSnapshot(
        now=now,
        nodes={n.name: n for n in nodes},
        vms={vm.vmid: vm for vm in vms},
        tasks=tasks,
        storages=storages,
        revision=revision,
        problems=sorted_problems([*node_problems, *vm_problems, *task_problems,
                                  *storage_problems]),
    )


__all__ = ["ClusterSnapshot", "Problem", "snapshot_from", "TaskState"]
