"""VMs: create, read, run-state actions, delete, serial console."""

from __future__ import annotations

from typing import Annotated, Literal

import httpx
from fastapi import APIRouter, Body, Query, Response
from pydantic import ValidationError

from corral.api import paging, queue
from corral.api.create import create_vm
from corral.api.deps import (
    AnswersDep,
    CursorQuery,
    HttpDep,
    LimitQuery,
    SnapDep,
    StateDep,
    StoreDep,
    TokenDep,
    ViewDep,
)
from corral.api.errors import ApiError, conflict, invalid, not_found
from corral.api.schemas import (
    ConsoleChunk,
    ShutdownParams,
    TaskAccepted,
    VMConfigChange,
    VMCreate,
    VMCreated,
    VMDetail,
    VMOut,
)
from corral.api.views import skipped_header, vm_detail, vm_in, vm_in_state
from corral.cluster import keys
from corral.cluster.models import VM, Placement, RunState, VMConfig, VMStatus
from corral.cluster.store import Store
from corral.cluster.vm_status import reported_status
from corral.ha.store import follow_vm_action

router = APIRouter(tags=["vms"])

Action = Literal["start", "stop", "shutdown", "suspend", "resume", "reset"]
CONFIG_ATTEMPTS = 5  # config writes that lost a race to another writer, retried
ACTIVE = (VMStatus.RUNNING, VMStatus.PAUSED, VMStatus.STARTING, VMStatus.SHUTTING_DOWN)


async def _vm(store: Store, vmid: int) -> VM:
    vm = await store.vm(vmid)
    if vm is None:
        raise not_found("VM", vmid)
    return vm


@router.get("/vms", response_model=list[VMOut])
async def list_vms(state: StateDep, answers: AnswersDep, node: str | None = None,
                   status: VMStatus | None = None, limit: LimitQuery = None,
                   cursor: CursorQuery = None) -> Response:
    """VMs by vmid, on `node` and in `status` if given. Without `limit`, all of them; with
    it, a page, and the `Corral-Next-Cursor` header to pass as `cursor` for the next one
    (docs/api.md)."""
    wanted = paging.page_request(limit, cursor, paging.VMS)
    skipped = skipped_header(state.problems_under(keys.VMS))
    # Answered encoded (the route's response model documents the body): each VM's answer is
    # built and encoded once per change of it, not once per request.
    if node is None and status is None and limit is None and cursor is None:
        return Response(answers.vm_list_json(), media_type="application/json",
                        headers=skipped)
    outs = answers.vm_outs()  # by vmid, the list's order
    if node is not None or status is not None:
        outs = paging.vms_matching(outs, node, status)
    page = paging.cut_sorted(outs, paging.VMS, wanted)
    return Response(answers.vm_json(page.items), media_type="application/json",
                    headers=skipped | page.headers())


@router.get("/vms/{vmid}", response_model=VMDetail)
async def get_vm(vmid: int, state: StateDep) -> VMDetail:
    vm = vm_in_state(state, vmid)
    node = state.node(vm.placement.node)
    return vm_detail(vm, node is not None and node.alive)


@router.post("/vms", response_model=VMCreated, status_code=202)
async def post_vm(body: VMCreate, store: StoreDep, view: ViewDep) -> VMCreated:
    vmid, task, node = await create_vm(store, view, body)
    return VMCreated(vmid=vmid, task=task.id, node=node)


@router.patch("/vms/{vmid}/config", response_model=VMDetail)
async def patch_vm_config(vmid: int, body: VMConfigChange, store: StoreDep) -> VMDetail:
    """Change settings of an existing VM that need no restart (`balance`); those left out
    stay as they are."""
    change = body.model_dump(exclude_none=True)
    if not change:
        raise invalid("nothing to change: give one of " + ", ".join(VMConfigChange.model_fields))
    for _ in range(CONFIG_ATTEMPTS):
        config, rev = await store.get(keys.vm(vmid, "config"), VMConfig)
        if config is None:
            raise not_found("VM", vmid)
        wanted = config.model_copy(update=change)
        if wanted == config or await store.set_config(wanted, rev):
            vm = await _vm(store, vmid)
            host = await store.node(vm.placement.node)
            return vm_detail(vm, host is not None and host.alive)
    raise ApiError(503, "busy", f"VM {vmid}'s config kept changing meanwhile; try again")


def _refusal(vm: VM, action: Action) -> str | None:
    """Why action makes no sense in the VM's observed state, or None."""
    status = reported_status(vm)
    vmid = vm.vmid
    if action == "start" and status in ACTIVE:
        return f"VM {vmid} is already {status.value}"
    if action == "suspend" and status != VMStatus.RUNNING:
        return f"VM {vmid} is not running (status: {status.value})"
    if action == "resume" and status != VMStatus.PAUSED:
        return f"VM {vmid} is not paused (status: {status.value})"
    # Without a report yet, trust the requested state: a new VM is stopped.
    stopped = status == VMStatus.STOPPED or (
        vm.runtime is None and vm.placement.state == RunState.STOPPED
    )
    if action in ("stop", "shutdown", "reset") and stopped:
        return f"VM {vmid} is not running (status: stopped)"
    return None


@router.post("/vms/{vmid}/status/{action}", response_model=TaskAccepted, status_code=202)
async def vm_action(
    vmid: int,
    action: Action,
    store: StoreDep,
    snap: SnapDep,
    params: Annotated[ShutdownParams | None, Body()] = None,
) -> TaskAccepted:
    vm = vm_in(snap, vmid)
    reason = _refusal(vm, action)
    if reason:
        raise conflict(reason)
    queue.ensure_idle(snap, vmid)
    queue.ensure_online(snap, vm.placement.node)
    task_params = {"timeout": (params or ShutdownParams()).timeout} if action == "shutdown" else {}
    task = await queue.queue(store, f"vm.{action}", vm.placement.node, vmid, task_params)
    await follow_vm_action(store, vmid, action)  # an HA VM's requested state follows
    return TaskAccepted(task=task.id)


@router.delete("/vms/{vmid}", response_model=TaskAccepted, status_code=202)
async def delete_vm(vmid: int, store: StoreDep, snap: SnapDep,
                    force: bool = False) -> TaskAccepted:
    vm = vm_in(snap, vmid)
    status = reported_status(vm)
    if status in ACTIVE and not force:
        raise conflict(f"VM {vmid} is {status.value}: stop it first or delete with force")
    queue.ensure_idle(snap, vmid)
    queue.ensure_online(snap, vm.placement.node)
    task = await queue.queue(store, "vm.delete", vm.placement.node, vmid, {"force": force})
    return TaskAccepted(task=task.id)


@router.get("/vms/{vmid}/console", response_model=ConsoleChunk)
async def console(
    vmid: int,
    store: StoreDep,
    http: HttpDep,
    token: TokenDep,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    # The placement is all this needs: a VM whose config does not decode still has a console.
    placement, _ = await store.get(keys.vm(vmid, "placement"), Placement)
    if placement is None:
        raise not_found("VM", vmid)
    node_name = placement.node
    node = await store.node(node_name)
    url = node.info.agent_url if node and node.info else ""
    if not url:
        raise ApiError(502, "agent_unreachable", f"node {node_name} publishes no agent URL")
    try:
        reply = await http.get(
            f"{url.rstrip('/')}/vms/{vmid}/console",
            params={"offset": offset},
            headers={"Authorization": f"Bearer {token}"},
        )
    except httpx.HTTPError as e:
        raise ApiError(
            502, "agent_unreachable", f"cannot reach the agent of node {node_name}: {e}"
        ) from e
    if reply.status_code == 200:
        try:
            chunk = ConsoleChunk.model_validate_json(reply.content)
        except ValidationError:
            raise ApiError(
                502, "agent_error", f"the agent of node {node_name} sent a malformed reply"
            ) from None
        return Response(chunk.model_dump_json(), 200, media_type="application/json")
    if _is_error_shape(reply):  # the agent's own refusal (no such VM there, ...): pass it on
        return Response(reply.content, reply.status_code, media_type="application/json")
    raise ApiError(
        502, "agent_error", f"the agent of node {node_name} answered {reply.status_code}"
    )


def _is_error_shape(reply: httpx.Response) -> bool:
    try:
        body = reply.json()
    except ValueError:
        return False
    return isinstance(body, dict) and isinstance(body.get("error"), dict)
