"""Creating a VM: every check that can refuse it runs before anything is written."""

from __future__ import annotations

import time

from corral.api import queue
from corral.api.errors import ApiError, conflict, invalid
from corral.api.schemas import VMCreate
from corral.balancer.placement import place_new
from corral.balancer.store import config_in
from corral.cluster import keys, records
from corral.cluster.models import NAME_RE, Disk, Placement, RunState, Task, VMConfig
from corral.cluster.snapshot import ClusterSnapshot
from corral.cluster.store import Store
from corral.cluster.view import ClusterView
from corral.ha.models import HAInputs
from corral.ha.store import read_all_from
from corral.storage.spec import parse_disk_spec, volume_name

CREATE_ATTEMPTS = 5


def _check(view: ClusterView, snap: ClusterSnapshot, body: VMCreate, node_name: str
           ) -> list[tuple[str, int]]:
    """Refusals naming the field, checked against the view made current for this request;
    returns the parsed disks."""
    claim = view.state.raw_record(keys.name(body.name))
    owner = records.name_owner(body.name, claim[0] if claim else None)
    if owner is not None:
        raise conflict(f"name {body.name!r} is already used by VM {owner}", "name")
    # Any record under the id counts, so a half-deleted VM's id is not handed out again.
    if body.vmid is not None and body.vmid in view.state.vm_records():
        raise conflict(f"VM {body.vmid} already exists", "vmid")
    node = snap.nodes.get(node_name) if NAME_RE.match(node_name) else None
    if node is None or node.info is None:
        raise invalid(f"node: unknown node {node_name!r}", "node")
    if not node.alive:
        raise conflict(f"node {node_name} is offline", "node")
    disks = []
    for i, spec in enumerate(body.disks):
        storage, size_mb = parse_disk_spec(spec)
        if storage not in snap.storages:
            raise invalid(f"disks[{i}]: storage {storage!r} does not exist", f"disks[{i}]")
        disks.append((storage, size_mb))
    return disks


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


def chosen_node(view: ClusterView, snap: ClusterSnapshot, ha: HAInputs, body: VMCreate
                ) -> str:
    """The host named, or the one the balancer's scoring picks."""
    if body.node is not None:
        return body.node
    config, _ = config_in(view.state)
    node, why = place_new(snap, ha.rules, config, body.memory_mb, body.cores)
    if node is None:
        raise conflict(f"no host can take the VM: {why}", "node")
    return node


async def create_vm(store: Store, view: ClusterView, body: VMCreate
                    ) -> tuple[int, Task, str]:
    # Checked against the view, not etcd: with thousands of VMs a listing of every VM key
    # (for a free id) cost more than the rest of the request. The transaction below still
    # refuses an id or a name taken since.
    snap, ha = await read_all_from(view, time.time())
    node = chosen_node(view, snap, ha, body)
    disks = _check(view, snap, body, node)
    placement = Placement(node=node, state=RunState.STOPPED)
    for _ in range(CREATE_ATTEMPTS):
        vmid = (body.vmid if body.vmid is not None
                else records.first_free_vmid(view.state.vm_records()))
        task = Task(id=queue.new_task_id(), kind="vm.create", node=node, vmid=vmid)
        if await store.create_vm(_config(body, vmid, disks), placement, task):
            return vmid, task, node
        # Lost a race: report what was taken, or try the next free id if none was asked for.
        owner = await store.name_taken(body.name)
        if owner is not None:
            raise conflict(f"name {body.name!r} is already used by VM {owner}", "name")
        if body.vmid is not None:
            raise conflict(f"VM {body.vmid} already exists", "vmid")
        await view.current(time.time())  # the view then holds the VM that took the id
    raise ApiError(503, "busy", "could not find a free VM id; try again")
