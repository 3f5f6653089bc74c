"""What the pure decisions (HA, maintenance, bulk, housekeeping) ask a shell to change in
the cluster. Plain data: the manager applies each action to etcd, the simulator to its model.
It lives beside the models so that `ha` and `manager` both import it without a cycle."""

from __future__ import annotations

from dataclasses import dataclass

from corral.cluster.models import Placement, Task


@dataclass(frozen=True)
class QueueTask:
    """Create a task (ids are derived from what they act on, so queuing twice is harmless)."""

    task: Task


@dataclass(frozen=True)
class UpdateTask:
    """Write a manager-owned task (bulk parents): progress, summary, end."""

    task: Task


@dataclass(frozen=True)
class SetPlacement:
    """Change a VM's placement, only if nobody changed it since expect_rev."""

    vmid: int
    placement: Placement
    expect_rev: int
    reason: str = ""


@dataclass(frozen=True)
class DeleteTask:
    """Forget a finished task record (housekeeping keeps etcd and every snapshot small)."""

    task_id: str


Action = QueueTask | UpdateTask | SetPlacement | DeleteTask
