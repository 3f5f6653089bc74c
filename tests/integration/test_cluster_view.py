"""The watch-fed view against real etcd: after any sequence of writes, through a compaction,
a restarted watch and a leader change, it equals a fresh read; a read after a write sees it."""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from corral.cluster import keys
from corral.cluster.models import Placement, RunState, Task, VMConfig, VMRuntime, VMStatus
from corral.cluster.records import UnreadableRecord
from corral.cluster.store import Store, read_snapshot
from corral.cluster.view import ClusterView
from corral.lab.etcd import EtcdMember, free_port, member_status, wait_healthy

pytestmark = pytest.mark.integration
NOW = 1000.0


async def random_writes(store: Store, rng: random.Random, count: int) -> None:
    """Puts, deletes and multi-key transactions, some of records that do not decode."""
    for _ in range(count):
        with contextlib.suppress(UnreadableRecord):  # the test's own bad records, read back
            await random_write(store, rng)


async def random_write(store: Store, rng: random.Random) -> None:
    t = store.client.transactions
    vmid = rng.randint(100, 120)
    roll = rng.random()
    if roll < 0.35:
        await store.create_vm(VMConfig(vmid=vmid, name=f"vm{vmid}", memory_mb=64, cores=1),
                              Placement(node=rng.choice(["n1", "n2"])))
    elif roll < 0.55:
        await store.put_runtime(vmid, VMRuntime(node="n1", status=VMStatus.RUNNING,
                                                pid=rng.randint(2, 999)))
    elif roll < 0.65:
        await store.client.put(keys.vm(vmid, "placement").encode(), b'{"node": 5')
    elif roll < 0.8:
        vm = await store.vm(vmid) if rng.random() < 0.5 else None
        if vm is not None:
            await store.delete_vm(vm)
        else:
            await store.client.delete_prefix(f"{keys.VMS}{vmid}/".encode())
    elif roll < 0.9:
        await store.put_task(Task(id=f"t{vmid}", kind="vm.start", node="n1", vmid=vmid))
    else:
        await store.client.transaction(compare=[], success=[
            t.put(keys.node(f"n{i}", "alive").encode(), b"1") for i in (1, 2, 3)
        ] + [t.delete(keys.task(f"t{vmid}").encode())], failure=[])


async def assert_equals_fresh_read(view: ClusterView, store: Store) -> None:
    seen = await view.current(NOW)
    fresh = await read_snapshot(store, NOW)
    if fresh.revision != seen.revision:  # nothing writes meanwhile in these tests
        seen = await view.current(NOW)
    assert seen == fresh


async def test_view_equals_a_fresh_read_after_any_writes(store: Store) -> None:
    async with ClusterView(store) as view:
        rng = random.Random(7)
        for _ in range(5):
            await random_writes(store, rng, 40)
            await assert_equals_fresh_read(view, store)
        assert view.listings == 1  # all of it came by the watch


async def test_a_read_after_a_write_sees_it(store: Store) -> None:
    async with ClusterView(store) as view:
        for vmid in range(200, 230):
            await store.create_vm(VMConfig(vmid=vmid, name=f"w{vmid}", memory_mb=64, cores=1),
                                  Placement(node="n1", state=RunState.STOPPED))
            # no sleep, no retry; each write read back one way only
            if vmid % 2:
                assert vmid in (await view.current(NOW)).vms
            else:  # a few records of the state, without a snapshot
                assert (await view.caught_up()).vm(vmid) is not None


async def test_listeners_hear_of_each_change(store: Store) -> None:
    heard: list[list[str] | None] = []
    async with ClusterView(store) as view:
        view.listen(heard.append)
        await store.put_task(Task(id="t1", kind="vm.start", node="n1"))
        await view.current(NOW)
    assert [keys.task("t1")] in heard


async def test_after_a_compaction_the_view_lists_again(store: Store) -> None:
    async with ClusterView(store) as view:
        await random_writes(store, random.Random(1), 20)
        await assert_equals_fresh_read(view, store)
        # The watch is lost while the cluster moves on and etcd compacts its history: it
        # cannot resume where it was and must list everything again.
        await view._stop_following()
        await random_writes(store, random.Random(2), 30)
        await store.client.compact(await store.current_revision())
        view._follow_from_now()
        await assert_equals_fresh_read(view, store)
        assert view.listings == 2


async def test_a_broken_watch_resumes_where_it_was(store: Store) -> None:
    async with ClusterView(store) as view:
        await view._stop_following()  # as a stream cut by the network would end
        await random_writes(store, random.Random(3), 30)
        view._follow_from_now()
        await assert_equals_fresh_read(view, store)
        assert view.listings == 1  # resumed from its revision, nothing listed again


async def test_a_stuck_watch_is_replaced_by_a_listing(store: Store) -> None:
    async with ClusterView(store) as view:
        await view._stop_following()  # as a stream that stalls without an error
        view._follow_from_now = lambda: None  # type: ignore[method-assign]
        await random_writes(store, random.Random(4), 10)
        await assert_equals_fresh_read(view, store)
        assert view.listings == 2



async def test_closing_the_view_cancels_a_revision_request_still_out(store: Store) -> None:
    ended: list[str] = []

    async def etcd_that_does_not_answer() -> int:
        try:
            await asyncio.Event().wait()
        finally:
            ended.append("request")
        return 0

    view = ClusterView(store)
    await view.start()
    store.current_revision = etcd_that_does_not_answer  # type: ignore[method-assign]
    reader = asyncio.create_task(view.current(NOW))
    await asyncio.sleep(0.05)
    await view.close()
    assert ended == ["request"]
    with contextlib.suppress(asyncio.CancelledError):
        await reader

# --- a three-member etcd whose leader goes away ----------------------------------------------


@pytest.fixture
def etcd3() -> Iterator[tuple[list[EtcdMember], dict[str, subprocess.Popen[bytes]]]]:
    data = Path(tempfile.mkdtemp(prefix="corral-view-"))
    members = [EtcdMember(f"v{i}", data / f"v{i}", free_port(), free_port()) for i in (1, 2, 3)]
    procs = {m.name: subprocess.Popen(m.command(members), stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL) for m in members}
    try:
        wait_healthy([m.client_url for m in members])
        yield members, procs
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.terminate()
                p.wait(10)
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
async def store3(etcd3: tuple[list[EtcdMember], dict[str, subprocess.Popen[bytes]]]
                 ) -> AsyncIterator[Store]:
    async with Store([m.client_url for m in etcd3[0]]) as s:
        yield s


def leader_of(members: list[EtcdMember]) -> EtcdMember:
    ids = {m.name: member_status(m.client_url) for m in members}
    leader_id = next(s.leader for s in ids.values() if s is not None)
    return next(m for m in members if (s := ids[m.name]) is not None and s.member == leader_id)


async def test_the_view_survives_a_leader_change(
        etcd3: tuple[list[EtcdMember], dict[str, subprocess.Popen[bytes]]],
        store3: Store) -> None:
    members, procs = etcd3
    async with ClusterView(store3) as view:
        await random_writes(store3, random.Random(5), 20)
        await assert_equals_fresh_read(view, store3)
        leader = leader_of(members)
        procs[leader.name].kill()  # the leader dies; the others elect a new one
        procs[leader.name].wait(10)
        await random_writes(store3, random.Random(6), 20)
        await assert_equals_fresh_read(view, store3)
        # The old leader comes back and catches up; the view carries on.
        procs[leader.name] = await asyncio.to_thread(
            subprocess.Popen, leader.command(members), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        await asyncio.to_thread(wait_healthy, [leader.client_url])
        await random_writes(store3, random.Random(9), 10)
        await assert_equals_fresh_read(view, store3)
