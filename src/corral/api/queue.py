"""Queueing tasks for agents, and the checks that keep two actions off one VM."""

from __future__ import annotations

import uuid
from typing import Any

from corral.api.errors import conflict
from corral.cluster.models import Task
from corral.cluster.snapshot import ClusterSnapshot
from corral.cluster.store import Store


def new_task_id() -> str:
    return uuid.uuid4().hex[:16]


def ensure_idle(snap: ClusterSnapshot, vmid: int) -> None:
    task = snap.active_task(vmid)
    if task is not None:
        raise conflict(f"VM {vmid} has a task in progress: {task.id} {task.kind}")


def ensure_online(snap: ClusterSnapshot, node_name: str) -> None:
    """From the request's snapshot, made current when it came: as fresh as a read of etcd
    would be, without the round trip."""
    node = snap.nodes.get(node_name)
    if node is None or not node.alive:
        raise conflict(f"node {node_name} is offline")


async def queue(
    store: Store, kind: str, node: str, vmid: int, params: dict[str, Any] | None = None
) -> Task:
    task = Task(id=new_task_id(), kind=kind, node=node, vmid=vmid, params=params or {})
    await store.put_task(task)
    return task
