"""Hosts, storages and tasks: read-only views."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from corral.api import paging
from corral.api.deps import CursorQuery, LimitQuery, StoreDep
from corral.api.errors import not_found
from corral.api.schemas import NodeOut
from corral.api.views import node_out, skipped_header
from corral.cluster import keys, records
from corral.cluster.models import StorageConfig, Task, TaskState

router = APIRouter()
MAX_TASKS = 10_000


@router.get("/nodes", response_model=list[NodeOut], tags=["nodes"])
async def list_nodes(store: StoreDep, response: Response, limit: LimitQuery = None,
                     cursor: CursorQuery = None) -> list[NodeOut]:
    """Hosts by name; paged with `limit` and `cursor` like `GET /vms`."""
    wanted = paging.page_request(limit, cursor, paging.NODES)
    vms, vm_problems = records.vms_from(await store.raw_prefix(keys.VMS))
    nodes, node_problems = records.nodes_from(await store.raw_prefix(keys.NODES))
    response.headers.update(skipped_header([*node_problems, *vm_problems]))
    page = paging.cut([node_out(n, vms) for n in nodes], paging.NODES, wanted)
    response.headers.update(page.headers())
    return page.items


@router.get("/nodes/{node}", response_model=NodeOut, tags=["nodes"])
async def get_node(node: str, store: StoreDep) -> NodeOut:
    found = await store.node(node)
    if found is None:
        raise not_found("node", node)
    return node_out(found, await store.vms())


@router.get("/storage", response_model=list[StorageConfig], tags=["storage"])
async def list_storage(store: StoreDep, response: Response) -> list[StorageConfig]:
    storages, problems = records.storages_from(await store.raw_prefix(keys.STORAGE))
    response.headers.update(skipped_header(problems))
    return sorted(storages.values(), key=lambda s: s.id)


@router.get("/tasks", response_model=list[Task], tags=["tasks"])
async def list_tasks(
    store: StoreDep,
    response: Response,
    vmid: int | None = None,
    node: str | None = None,
    state: TaskState | None = None,
    # Unlike the other lists, tasks were always cut (they pile up): the default stays.
    limit: Annotated[int, Query(description="At most this many (1..10000).")] = 200,
    cursor: CursorQuery = None,
) -> list[Task]:
    """Tasks newest first; paged with `limit` and `cursor` like `GET /vms`."""
    wanted = paging.page_request(limit, cursor, paging.TASKS, max_limit=MAX_TASKS)
    found, problems = records.tasks_from(await store.raw_prefix(keys.TASKS))
    response.headers.update(skipped_header(problems))
    page = paging.cut(paging.tasks_matching(found, vmid, node, state), paging.TASKS, wanted)
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
