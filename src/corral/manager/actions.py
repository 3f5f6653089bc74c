"""What the manager's pure decisions ask the shell to do. Plain data: the shell applies each
action to etcd (tasks, placements), and the simulator applies the same actions to its model."""

from __future__ import annotations

from dataclasses import dataclass

from corral.cluster.models import Placement, Task
from corral.ha.models import HAState


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


@dataclass(frozen=True)
class SaveHAState:
    """Persist the HA state machine's state (so a new leader continues from etcd alone)."""

    state: HAState


HAAction = Action | SaveHAState
