"""Creating a VM: every check that can refuse it runs before anything is written."""

from __future__ import annotations

from corral.api import queue
from corral.api.errors import ApiError, conflict, invalid
from corral.api.schemas import VMCreate
from corral.cluster import keys
from corral.cluster.models import NAME_RE, Disk, Placement, RunState, Task, VMConfig
from corral.cluster.store import Store
from corral.storage.spec import parse_disk_spec, volume_name

CREATE_ATTEMPTS = 5


async def _check(store: Store, body: VMCreate) -> list[tuple[str, int]]:
    """Refusals naming the field; returns the parsed disks."""
    owner = await store.name_taken(body.name)
    if owner is not None:
        raise conflict(f"name {body.name!r} is already used by VM {owner}", "name")
    if body.vmid is not None and await _vmid_used(store, body.vmid):
        raise conflict(f"VM {body.vmid} already exists", "vmid")
    node = await store.node(body.node) if NAME_RE.match(body.node) else None
    if node is None or node.info is None:
        raise invalid(f"node: unknown node {body.node!r}", "node")
    if not node.alive:
        raise conflict(f"node {body.node} is offline", "node")
    storages = await store.storages()
    disks = []
    for i, spec in enumerate(body.disks):
        storage, size_mb = parse_disk_spec(spec)
        if storage not in storages:
            raise invalid(f"disks[{i}]: storage {storage!r} does not exist", f"disks[{i}]")
        disks.append((storage, size_mb))
    return disks


async def _vmid_used(store: Store, vmid: int) -> bool:
    # Any key under the id counts, so a half-deleted VM's id is not handed out again.
    return bool(await store.raw_prefix(f"{keys.VMS}{vmid}/"))


def _config(body: VMCreate, vmid: int, disks: list[tuple[str, int]]) -> VMConfig:
    return VMConfig(
        vmid=vmid,
        name=body.name,
        memory_mb=body.memory_mb,
        cores=body.cores,
        disks=[
            Disk(volume=f"{storage}:{volume_name(vmid, i)}", size_mb=size)
            for i, (storage, size) in enumerate(disks)
        ],
        image=body.image,
        append=body.append,
        startup=body.startup,
        maintenance=body.maintenance,
        description=body.description,
        balance=body.balance,
    )


async def create_vm(store: Store, body: VMCreate) -> tuple[int, Task]:
    disks = await _check(store, body)
    placement = Placement(node=body.node, state=RunState.STOPPED)
    for _ in range(CREATE_ATTEMPTS):
        vmid = body.vmid if body.vmid is not None else await store.next_vmid()
        if await store.create_vm(_config(body, vmid, disks), placement):
            task = await queue.queue(store, "vm.create", body.node, vmid)
            return vmid, task
        # Lost a race: report what was taken, or try the next free id if none was asked for.
        owner = await store.name_taken(body.name)
        if owner is not None:
            raise conflict(f"name {body.name!r} is already used by VM {owner}", "name")
        if body.vmid is not None:
            raise conflict(f"VM {body.vmid} already exists", "vmid")
    raise ApiError(503, "busy", "could not find a free VM id; try again")
