"""Usage history of hosts and VMs: kept by each host's agent (agent.history), relayed from
the host the node names or the VM is placed on (docs/usage-history.md)."""

from __future__ import annotations

from typing import Annotated, Literal

import httpx
from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field, ValidationError

from corral.api.deps import HttpDep, SnapDep, StoreDep, TokenDep
from corral.api.errors import ApiError, not_found
from corral.cluster import keys
from corral.cluster.models import Node, Placement

router = APIRouter(tags=["usage"])

Range = Literal["hour", "day", "week", "month", "year"]
RangeQuery = Annotated[Range, Query(
    alias="range",
    description="hour (360 slots of 10 s), day (1440 of 1 min), week (336 of 30 min), "
                "month (360 of 2 h) or year (365 of 1 day).")]


class MetricSeries(BaseModel):
    avg: list[float | None] = Field(description="Average of each slot, oldest first; null: "
                                                "no sample in it.")
    max: list[float | None] = Field(description="Maximum of each slot.")


class UsageOut(BaseModel):
    range: Range
    step_seconds: int
    start: int = Field(description="Unix seconds at which the first slot begins.")
    node: str = Field(description="The host that kept these figures.")
    vmid: int | None
    metrics: dict[str, MetricSeries] = Field(description=(
        "cpu (fraction 0..1 of the host's CPUs; of a VM's vCPUs), memory_used_bytes, "
        "memory_total_bytes, disk_read_bytes_per_s, disk_write_bytes_per_s, "
        "net_rx_bytes_per_s, net_tx_bytes_per_s; a host also psi_cpu, psi_memory, psi_io "
        "(share of the time some task stalled, 0..1)."))


def unreachable(node: str, why: str) -> ApiError:
    return ApiError(503, "agent_unreachable", f"the agent of node {node} {why}")


async def relay(http: httpx.AsyncClient, token: str, node: Node, path: str, range_: Range,
                vmid: int | None) -> Response:
    url = node.info.agent_url if node.info else ""
    if not url:
        raise unreachable(node.name, "publishes no address")
    try:
        reply = await http.get(f"{url.rstrip('/')}{path}", params={"range": range_},
                               headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as e:
        raise unreachable(node.name, f"cannot be reached: {str(e) or type(e).__name__}"
                          ) from e
    if reply.status_code == 200:
        try:
            body = UsageOut.model_validate_json(reply.content)
        except ValidationError:
            body = None
        if body is None or body.node != node.name or body.vmid != vmid or body.range != range_:
            raise ApiError(502, "agent_error",
                           f"the agent of node {node.name} sent a malformed reply")
        return Response(reply.content, 200, media_type="application/json")
    try:
        refusal = reply.json()
    except ValueError:
        refusal = None
    if isinstance(refusal, dict) and isinstance(refusal.get("error"), dict):
        return Response(reply.content, reply.status_code, media_type="application/json")
    raise ApiError(502, "agent_error",
                   f"the agent of node {node.name} answered {reply.status_code}")


@router.get("/nodes/{node}/usage", response_model=UsageOut)
async def node_usage(node: str, snap: SnapDep, http: HttpDep, token: TokenDep,
                     range_: RangeQuery = "hour") -> Response:
    """The host's usage history over one range, as its agent keeps it."""
    found = snap.nodes.get(node)
    if found is None:
        raise not_found("node", node)
    return await relay(http, token, found, "/usage", range_, None)


@router.get("/vms/{vmid}/usage", response_model=UsageOut)
async def vm_usage(vmid: int, store: StoreDep, snap: SnapDep, http: HttpDep, token: TokenDep,
                   range_: RangeQuery = "hour") -> Response:
    """The VM's usage history over one range, as the host it is placed on keeps it: it
    starts anew on each host the VM moves to."""
    vm = snap.vms.get(vmid)
    placement: Placement | None = vm.placement if vm else None
    if placement is None and vmid in snap.unreadable_vms:
        # Its config may not decode; its placement is all this needs.
        placement, _ = await store.get(keys.vm(vmid, "placement"), Placement)
    if placement is None:
        raise not_found("VM", vmid)
    node = snap.nodes.get(placement.node)
    if node is None:
        raise unreachable(placement.node, "is not known to the cluster")
    return await relay(http, token, node, f"/vms/{vmid}/usage", range_, vmid)
