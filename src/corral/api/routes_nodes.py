"""Hosts, storages and tasks: read-only views."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from corral.api import paging
from corral.api.deps import CursorQuery, LimitQuery, SnapDep, StoreDep
from corral.api.errors import not_found
from corral.api.schemas import NodeOut
from corral.api.views import node_out, skipped_header
from corral.cluster import keys
from corral.cluster.models import StorageConfig, Task, TaskState

router = APIRouter()
MAX_TASKS = 10_000


@router.get("/nodes", response_model=list[NodeOut], tags=["nodes"])
async def list_nodes(snap: SnapDep, response: Response, limit: LimitQuery = None,
                     cursor: CursorQuery = None) -> list[NodeOut]:
    """Hosts by name; paged with `limit` and `cursor` like `GET /vms`."""
    wanted = paging.page_request(limit, cursor, paging.NODES)
    response.headers.update(skipped_header(
        p for p in snap.problems if p.key.startswith((keys.NODES, keys.VMS))))
    # Hosts are kept by name: the page is found first, and only its answers are built.
    page = paging.cut_sorted(list(snap.nodes.values()), paging.NODE_RECORDS, wanted)
    response.headers.update(page.headers())
    return [node_out(n, snap) for n in page.items]


@router.get("/nodes/{node}", response_model=NodeOut, tags=["nodes"])
async def get_node(node: str, snap: SnapDep) -> NodeOut:
    found = snap.nodes.get(node)
    if found is None:
        raise not_found("node", node)
    return node_out(found, snap)


@router.get("/storage", response_model=list[StorageConfig], tags=["storage"])
async def list_storage(snap: SnapDep, response: Response) -> list[StorageConfig]:
    response.headers.update(skipped_header(
        p for p in snap.problems if p.key.startswith(keys.STORAGE)))
    return sorted(snap.storages.values(), key=lambda s: s.id)


@router.get("/tasks", response_model=list[Task], tags=["tasks"])
async def list_tasks(
    snap: SnapDep,
    response: Response,
    vmid: int | None = None,
    node: str | None = None,
    state: TaskState | None = None,
    kind: str | None = None,
    parent: Annotated[str | None, Query(description="A bulk job's id: its VMs' tasks.")] = None,
    # Unlike the other lists, tasks were always cut (they pile up): the default stays.
    limit: Annotated[int, Query(description="At most this many (1..10000).")] = 200,
    cursor: CursorQuery = None,
) -> list[Task]:
    """Tasks newest first; paged with `limit` and `cursor` like `GET /vms`."""
    wanted = paging.page_request(limit, cursor, paging.TASKS, max_limit=MAX_TASKS)
    response.headers.update(skipped_header(
        p for p in snap.problems if p.key.startswith(keys.TASKS)))
    page = paging.cut(paging.tasks_matching(snap.tasks, vmid, node, state, kind=kind,
                                              parent=parent), paging.TASKS,
                      wanted)
    response.headers.update(page.headers())
    return page.items


@router.get("/tasks/{task_id}", response_model=Task, tags=["tasks"])
async def get_task(task_id: str, store: StoreDep) -> Task:
    # Ids are letters, digits and '-' (the manager's derived ids); anything else cannot name
    # a task (and must not reach into other keys).
    ok = task_id.replace("-", "").isalnum() and not task_id.startswith("-")
    task = await store.task(task_id) if ok else None
    if task is None:
        raise not_found("task", task_id)
    return task
