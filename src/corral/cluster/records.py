"""Records as etcd stores them (JSON of the models) and back. Pure: the store and the
snapshot both decode through here, so every reader sees a record the same way."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel

from corral.cluster import keys
from corral.cluster.models import (
    VM,
    Node,
    NodeInfo,
    NodeRequest,
    NodeUsage,
    Placement,
    StorageConfig,
    Task,
    VMConfig,
    VMRuntime,
)

M = TypeVar("M", bound=BaseModel)
Item = tuple[str, bytes, int]  # key, value, mod revision


def dump(model: BaseModel) -> bytes:
    return model.model_dump_json().encode()


def load(cls: type[M], raw: bytes) -> M:
    return cls.model_validate_json(raw)


def nodes_from(items: list[Item]) -> list[Node]:
    fields: dict[str, dict[str, bytes]] = {}
    for key, value, _ in items:
        if key.startswith(keys.NODES):
            name, field = keys.split(key, keys.NODES)
            fields.setdefault(name, {})[field] = value
    return [node_from(name, f) for name, f in sorted(fields.items())]


def node_from(name: str, f: dict[str, bytes]) -> Node:
    return Node(
        name=name,
        info=load(NodeInfo, f["info"]) if "info" in f else None,
        alive="alive" in f,
        usage=load(NodeUsage, f["usage"]) if "usage" in f else None,
        request=load(NodeRequest, f["request"]) if "request" in f else None,
    )


def storages_from(items: list[Item]) -> dict[str, StorageConfig]:
    found = (load(StorageConfig, v) for k, v, _ in items if k.startswith(keys.STORAGE))
    return {s.id: s for s in found}


def vms_from(items: list[Item]) -> list[VM]:
    fields: dict[int, dict[str, tuple[bytes, int]]] = {}
    for key, value, rev in items:
        if key.startswith(keys.VMS):
            vmid, field = keys.split(key, keys.VMS)
            fields.setdefault(int(vmid), {})[field] = (value, rev)
    out = [vm_from(f) for _, f in sorted(fields.items())]
    return [vm for vm in out if vm is not None]


def vm_from(f: dict[str, tuple[bytes, int]]) -> VM | None:
    if "config" not in f or "placement" not in f:
        return None  # half-deleted or half-written: not a VM
    return VM(
        config=load(VMConfig, f["config"][0]),
        placement=load(Placement, f["placement"][0]),
        placement_rev=f["placement"][1],
        runtime=load(VMRuntime, f["runtime"][0]) if "runtime" in f else None,
    )


def tasks_from(items: list[Item]) -> list[Task]:
    out = [load(Task, v) for k, v, _ in items if k.startswith(keys.TASKS)]
    return sorted(out, key=lambda t: t.created_at)
