"""The ownership proof against a real etcd: one transaction sees the VM's record and whether
this host's alive key is bound to the lease the agent holds."""

from __future__ import annotations

import pytest

from corral.cluster import keys
from corral.cluster.models import Placement, RunState, VMConfig
from corral.cluster.store import Store

pytestmark = pytest.mark.integration


async def alive_under_new_lease(store: Store, node: str) -> int:
    lease = await store.grant_lease(30)
    await store.client.put(keys.node(node, "alive").encode(), b"1", lease=lease)
    return int(lease.id)


async def test_proof_needs_the_current_lease_of_this_host(store: Store) -> None:
    cfg = VMConfig(vmid=100, name="p100", memory_mb=64, cores=1)
    assert await store.create_vm(cfg, Placement(node="n1", state=RunState.RUNNING))
    first = await alive_under_new_lease(store, "n1")

    seen = await store.read_ownership(100, "n1", first)
    assert seen.lease_alive and seen.vm is not None and seen.vm.placement.node == "n1"
    assert seen.revision >= seen.vm.placement_rev > 0 and seen.migration is None

    # A host that registered again (its lease lapsed during a freeze) holds a new lease: the
    # old one proves nothing any more, even while the alive key exists.
    second = await alive_under_new_lease(store, "n1")
    assert not (await store.read_ownership(100, "n1", first)).lease_alive
    assert (await store.read_ownership(100, "n1", second)).lease_alive
    # Another host's lease never proves this host alive.
    other = await alive_under_new_lease(store, "n2")
    assert not (await store.read_ownership(100, "n1", other)).lease_alive

    await store.client.revoke_lease(second)
    gone = await store.read_ownership(100, "n1", second)
    assert not gone.lease_alive and gone.vm is not None


async def test_proof_reads_placement_and_migration_at_its_revision(store: Store) -> None:
    cfg = VMConfig(vmid=101, name="p101", memory_mb=64, cores=1)
    assert await store.create_vm(cfg, Placement(node="n1"))
    lease = await alive_under_new_lease(store, "n2")
    await store.client.put(keys.vm(101, "migration").encode(), b'{"target": "n2"}')
    vm = await store.vm(101)
    assert vm is not None
    assert await store.set_placement(101, vm.placement.model_copy(update={"node": "n2"}),
                                     vm.placement_rev)
    seen = await store.read_ownership(101, "n2", lease)
    assert seen.lease_alive and seen.vm is not None and seen.vm.placement.node == "n2"
    assert seen.migration == b'{"target": "n2"}'
    assert (await store.read_ownership(999, "n2", lease)).vm is None
