"""One consistent read of the cluster, the input of every pure decision. Pure: the store
reads the items (`store.read_snapshot`), this builds the snapshot from them."""

from __future__ import annotations

from dataclasses import dataclass, field

from corral.cluster import records
from corral.cluster.models import VM, Node, StorageConfig, StorageType, Task, TaskState


@dataclass(frozen=True)
class ClusterSnapshot:
    now: float
    nodes: dict[str, Node]
    vms: dict[int, VM]
    tasks: list[Task] = field(default_factory=list)
    storages: dict[str, StorageConfig] = field(default_factory=dict)
    revision: int = 0

    def vms_on(self, node: str) -> list[VM]:
        return [vm for vm in self.vms.values() if vm.placement.node == node]

    def unfinished(self) -> list[Task]:
        return [t for t in self.tasks if not t.state.finished]

    def active_task(self, vmid: int) -> Task | None:
        """The unfinished VM-level task on vmid, if any (bulk parents don't count)."""
        return next((t for t in self.unfinished() if t.vmid == vmid), None)

    def task(self, task_id: str) -> Task | None:
        return next((t for t in self.tasks if t.id == task_id), None)

    def local_disks(self, vm: VM) -> list[str]:
        """Volumes of vm that live on one host only (a `dir` storage)."""
        return [
            d.volume for d in vm.config.disks
            if (s := self.storages.get(d.storage)) is None or s.type is StorageType.DIR
        ]

    def in_maintenance(self, node: str) -> bool:
        n = self.nodes.get(node)
        return bool(n and n.request and n.request.maintenance)


def snapshot_from(items: list[tuple[str, bytes, int]], revision: int, now: float
                  ) -> ClusterSnapshot:
    return ClusterSnapshot(
        now=now,
        nodes={n.name: n for n in records.nodes_from(items)},
        vms={vm.vmid: vm for vm in records.vms_from(items)},
        tasks=records.tasks_from(items),
        storages=records.storages_from(items),
        revision=revision,
    )


__all__ = ["ClusterSnapshot", "snapshot_from", "TaskState"]
