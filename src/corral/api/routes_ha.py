"""HA: per-VM settings (resources), placement rules, and the manager's HA status."""

from __future__ import annotations

import time

from fastapi import APIRouter, Response
from pydantic import ConfigDict, Field

from corral.api.deps import StoreDep, ViewDep
from corral.api.errors import conflict, invalid, not_found
from corral.api.views import skipped_header
from corral.cluster import keys
from corral.cluster.models import Request, ShutdownPolicy
from corral.cluster.records import vmid_of
from corral.cluster.store import Store
from corral.ha import store as ha_store
from corral.ha.models import FenceConfirmation, HAConfig, HARequest, HARule, HASettings
from corral.ha.status import HAReport, ha_status

router = APIRouter(prefix="/ha", tags=["ha"])


class HASettingsIn(HASettings):
    """The body of `POST /ha/resources`: the record's fields and nothing else (a stored
    record accepts a newer version's fields; an operator's typo is refused)."""

    model_config = ConfigDict(extra="forbid")


class HARuleIn(HARule):
    """The body of `POST /ha/rules`, strict likewise."""

    model_config = ConfigDict(extra="forbid")


class HAUpdate(Request):
    state: HARequest | None = None
    max_restart: int | None = Field(default=None, ge=0, le=10)
    max_relocate: int | None = Field(default=None, ge=0, le=10)


class HAConfigUpdate(Request):
    shutdown_policy: ShutdownPolicy | None = None


@router.get("/config", response_model=HAConfig)
async def get_config(store: StoreDep) -> HAConfig:
    return await ha_store.get_config(store)


@router.put("/config", response_model=HAConfig)
async def set_config(body: HAConfigUpdate, store: StoreDep) -> HAConfig:
    config = await ha_store.get_config(store)
    config = config.model_copy(update=body.model_dump(exclude_none=True))
    await ha_store.put_config(store, config)
    return config


async def _settings(store: Store, vmid: int) -> HASettings:
    s = await ha_store.get_settings(store, vmid)
    if s is None:
        raise not_found("HA resource", vmid)
    return s


@router.get("/status", response_model=HAReport)
async def status(view: ViewDep) -> HAReport:
    snap, inputs = await ha_store.read_all_from(view, time.time())
    return ha_status(snap, inputs)


@router.get("/resources", response_model=list[HASettings])
async def list_resources(store: StoreDep, response: Response) -> list[HASettings]:
    inputs = await ha_store.read_inputs(store)
    response.headers.update(skipped_header(p for p in inputs.problems if vmid_of(p.key)))
    return [inputs.settings[v] for v in sorted(inputs.settings)]


@router.get("/resources/{vmid}", response_model=HASettings)
async def get_resource(vmid: int, store: StoreDep) -> HASettings:
    return await _settings(store, vmid)


@router.post("/resources", response_model=HASettings, status_code=201)
async def add_resource(body: HASettingsIn, store: StoreDep) -> HASettings:
    settings = HASettings.model_validate(body.model_dump())
    if await store.vm(settings.vmid) is None:
        raise invalid(f"VM {settings.vmid} does not exist", "vmid")
    if await ha_store.get_settings(store, settings.vmid) is not None:
        raise conflict(f"VM {settings.vmid} is already managed by HA", "vmid")
    await ha_store.put_settings(store, settings)
    return settings


@router.put("/resources/{vmid}", response_model=HASettings)
async def set_resource(vmid: int, body: HAUpdate, store: StoreDep) -> HASettings:
    current = await _settings(store, vmid)
    changes = body.model_dump(exclude_none=True)
    updated = HASettings.model_validate({**current.model_dump(), **changes})
    await ha_store.put_settings(store, updated)
    return updated


@router.delete("/resources/{vmid}", status_code=204)
async def remove_resource(vmid: int, store: StoreDep) -> Response:
    # By its key, not its decoded value: removing settings that do not decode is a repair.
    if await store.client.get(keys.ha(vmid).encode()) is None:
        raise not_found("HA resource", vmid)
    await ha_store.delete_settings(store, vmid)
    return Response(status_code=204)


@router.get("/rules", response_model=list[HARule])
async def list_rules(store: StoreDep, response: Response) -> list[HARule]:
    inputs = await ha_store.read_inputs(store)
    response.headers.update(skipped_header(inputs.rule_problems))
    return inputs.rules


@router.post("/rules", response_model=HARule, status_code=201)
async def add_rule(body: HARuleIn, store: StoreDep, view: ViewDep) -> HARule:
    rule = HARule.model_validate(body.model_dump())
    if await ha_store.get_rule(store, rule.name) is not None:
        raise conflict(f"HA rule {body.name} exists", "name")
    snap = await view.current(time.time())
    vms = set(snap.vms)
    missing = [v for v in body.vms if v not in vms]
    if missing:
        raise invalid(f"VM {missing[0]} does not exist", "vms")
    nodes = set(snap.nodes)
    unknown = [n for n in body.nodes if n not in nodes]
    if unknown:
        raise invalid(f"node {unknown[0]} does not exist", "nodes")
    await ha_store.put_rule(store, rule)
    return rule


@router.delete("/rules/{name}", status_code=204)
async def remove_rule(name: str, store: StoreDep) -> Response:
    # By its key, not its decoded value: removing a rule that does not decode is a repair.
    if await store.client.get(keys.ha_rule(name).encode()) is None:
        raise not_found("HA rule", name)
    await ha_store.delete_rule(store, name)
    return Response(status_code=204)


@router.post("/fenced/{node}", response_model=FenceConfirmation, status_code=201)
async def confirm_fenced(node: str, store: StoreDep) -> FenceConfirmation:
    """An operator (or a fence agent) confirms the host is powered off: its HA VMs may be
    recovered at once. Only for a host that really is off: otherwise its VMs run twice."""
    found = await store.node(node)
    if found is None or found.info is None:
        raise not_found("node", node)
    conf = FenceConfirmation(node=node, at=time.time(), by="operator")
    # The lease is checked in the transaction that writes: not a read and then a write.
    if not await ha_store.confirm_fenced(store, conf):
        raise conflict(f"node {node} holds its lease: it is not off", field="node")
    return conf
