"""The in-memory view's decoding: after any sequence of listings and changes, its snapshot is
exactly what a fresh decode of the same records gives (`snapshot_from`)."""

from __future__ import annotations

import asyncio
import random

import pytest

from corral.cluster import keys
from corral.cluster import view as view_module
from corral.cluster.models import (
    NodeInfo,
    NodeUsage,
    Placement,
    RecentUsage,
    RunState,
    StorageConfig,
    StorageType,
    Task,
    VMConfig,
    VMRuntime,
    VMStatus,
)
from corral.cluster.records import Item, dump, vmid_of
from corral.cluster.snapshot import ClusterSnapshot, snapshot_from
from corral.cluster.store import StoreError
from corral.cluster.view_state import Change, ViewState

NOW = 1000.0


def candidate_records(rng: random.Random) -> list[tuple[str, bytes]]:
    """Keys and values a cluster holds, good and bad, a few per kind so changes collide."""
    vmid = rng.choice([100, 101, 102, 103])
    node = rng.choice(["n1", "n2", "n3"])
    bad = b'{"broken'
    return [
        (keys.vm(vmid, "config"), dump(VMConfig(vmid=vmid, name=f"vm{vmid}",
                                                memory_mb=rng.choice([64, 128]), cores=1))),
        (keys.vm(vmid, "config"), dump(VMConfig(vmid=vmid + 1, name="other", memory_mb=64,
                                                cores=1))),  # under another VM's key
        (keys.vm(vmid, "placement"), dump(Placement(node=node, state=RunState.RUNNING,
                                                    origin=rng.choice([None, "n1", "n4"])))),
        (keys.vm(vmid, "runtime"), dump(VMRuntime(node=node, status=VMStatus.RUNNING,
                                                  pid=rng.randint(2, 9999), updated_at=1.0))),
        (keys.vm(vmid, rng.choice(["config", "placement", "runtime"])), bad),
        (f"{keys.VMS}x{vmid}/config", b"{}"),  # a key that does not parse
        (keys.node(node, "info"), dump(NodeInfo(name=node, cpus=2, memory_mb=2048))),
        (keys.node(node, "alive"), b"1"),
        (keys.node(node, "usage"), dump(NodeUsage(cpu=rng.random(), memory_used_mb=1,
                                                      memory_total_mb=2, sampled_at=1.0))),
        (keys.node(node, "recent"), dump(RecentUsage(
            step_seconds=60, last_at=1.0, cpu_avg=[rng.choice([0.1, 0.2])], cpu_max=[0.3],
            memory_used_mib=[1], other_cores=[None]))),
        (keys.node(node, rng.choice(["info", "usage", "request", "recent"])), bad),
        (f"{keys.NODES}{node}", b"1"),  # no field
        (keys.task(f"t{vmid}"), dump(Task(id=f"t{vmid}", kind="vm.start", node=node,
                                          vmid=vmid, created_at=rng.choice([1.0, 2.0])))),
        (keys.task(f"t{vmid}"), bad),
        (keys.storage("local"), dump(StorageConfig(id="local", type=StorageType.DIR,
                                                   path=f"/var/{vmid}"))),
        (keys.storage("other"), dump(StorageConfig(id="local", type=StorageType.DIR,
                                                   path="/srv"))),  # same id, other key
        (keys.HA_STATE, b"{}"),
    ]


def assert_reads_agree(state: ViewState, snap: ClusterSnapshot, where: str) -> None:
    """The state's reads of a few records (what the API answers one VM from) show what the
    snapshot shows."""
    assert sorted(state.vmids()) == list(snap.vms), where
    for vmid in range(99, 106):
        assert state.vm(vmid) == snap.vms.get(vmid), where
        assert state.vm_problems(vmid) == tuple(
            p for p in snap.problems if vmid_of(p.key) == vmid), where
    for node in ("n1", "n2", "n3", "n4"):
        assert state.node(node) == snap.nodes.get(node), where
        assert sorted(state.vmids_on(node)) == [vm.vmid for vm in snap.vms_on(node)], where
    assert state.online() == {n.name for n in snap.nodes.values() if n.alive}, where
    for prefix in (keys.VMS, keys.NODES, keys.TASKS, ""):
        assert state.problems_under(prefix) == tuple(
            p for p in snap.problems if p.key.startswith(prefix)), where


def fresh(held: dict[str, tuple[bytes, int]], revision: int) -> ClusterSnapshot:
    items: list[Item] = [(k, v, rev) for k, (v, rev) in sorted(held.items())]
    return snapshot_from(items, revision, NOW)


@pytest.mark.parametrize("seed", range(40))
def test_any_sequence_of_changes_equals_a_fresh_decode(seed: int) -> None:
    rng = random.Random(seed)
    held: dict[str, tuple[bytes, int]] = {}
    state = ViewState()
    revision = 1
    for step in range(120):
        revision += 1
        batch: list[Change] = []
        for _ in range(rng.randint(1, 3)):  # a transaction writes a few keys at once
            key, value = rng.choice(candidate_records(rng))
            if key in held and rng.random() < 0.3:
                held.pop(key)
                batch.append(Change(key, None, revision))
            else:
                held[key] = (value, revision)
                batch.append(Change(key, value, revision))
        state.apply(batch)
        state.advance(revision)
        if step % 40 == 39:  # now and then the watch is lost and the view lists again
            state.reset([(k, v, rev) for k, (v, rev) in sorted(held.items())], revision)
        got, want = state.snapshot(NOW), fresh(held, revision)
        assert got == want, f"step {step}"
        # The indexes the view keeps as VMs change, and the order of its VMs.
        assert list(got.vms) == list(want.vms), f"step {step}"
        for node in ("n1", "n2", "n3", "n4"):
            assert got.vms_on(node) == want.vms_on(node), f"step {step}, {node}"
            assert got.running_on(node) == want.running_on(node), f"step {step}, {node}"
        assert got.origins() == want.origins(), f"step {step}"
        for vmid in range(100, 105):
            assert got.unfinished_on(vmid) == want.unfinished_on(vmid), f"step {step}"
        assert_reads_agree(state, want, f"step {step}")
    assert state.items() == [(k, v, rev) for k, (v, rev) in sorted(held.items())]


def test_changes_already_seen_are_skipped() -> None:
    state = ViewState()
    key = keys.node("n1", "alive")
    state.reset([(key, b"1", 5)], 7)
    # A watch resumed from an older revision replays a delete the listing already shows
    # undone: it must not take the key away again.
    assert state.apply([Change(key, None, 6)]) == []
    assert state.snapshot(NOW).nodes["n1"].alive


def test_ha_revision_moves_only_with_ha_records() -> None:
    state = ViewState()
    state.reset([], 3)
    state.apply([Change(keys.node("n1", "alive"), b"1", 4)])
    assert state.ha_revision == 3
    state.apply([Change(keys.HA_STATE, b"{}", 5)])
    assert state.ha_revision == 5


def test_snapshot_is_kept_until_the_revision_moves() -> None:
    state = ViewState()
    state.reset([(keys.node("n1", "alive"), b"1", 2)], 2)
    first = state.snapshot(NOW)
    assert state.snapshot(NOW + 1).nodes is first.nodes  # no decode, no copy
    state.apply([Change(keys.node("n2", "alive"), b"1", 3)])
    state.advance(3)
    assert set(state.snapshot(NOW).nodes) == {"n1", "n2"}


async def test_a_read_with_etcd_out_of_reach_fails_soon(monkeypatch: pytest.MonkeyPatch) -> None:
    """No answer rather than a stale one, and soon enough for the client to try another
    host: a store whose revision never comes (no quorum in reach) fails the read."""
    class Unreachable:
        async def current_revision(self) -> int:
            await asyncio.sleep(3600)
            return 0

    monkeypatch.setattr(view_module, "READ_SECONDS", 0.05)
    view = view_module.ClusterView(Unreachable())  # type: ignore[arg-type]
    with pytest.raises(StoreError):
        await view.current(NOW)


async def test_once_etcd_is_out_of_reach_reads_fail_at_once_until_it_answers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A host cut off from etcd: the first read waits READ_SECONDS, the next ones only
    OUT_OF_REACH_READ_SECONDS (clients go on to another host's API sooner); once etcd
    answers again, reads wait the whole time again."""
    class Etcd:
        def __init__(self) -> None:
            self.up = asyncio.Event()

        async def current_revision(self) -> int:
            await self.up.wait()
            return 1

    monkeypatch.setattr(view_module, "READ_SECONDS", 0.4)
    monkeypatch.setattr(view_module, "OUT_OF_REACH_READ_SECONDS", 0.05)
    etcd = Etcd()
    view = view_module.ClusterView(etcd)  # type: ignore[arg-type]
    view.state.advance(99)  # the watch is ahead: a read waits only for the revision
    loop = asyncio.get_running_loop()
    took = []
    for _ in range(3):
        start = loop.time()
        with pytest.raises(StoreError):
            await view.current(NOW)
        took.append(loop.time() - start)
    assert took[0] >= 0.4 and max(took[1:]) < 0.3, took
    etcd.up.set()
    assert (await view.current(NOW)).revision == 99  # answered
    assert not view._out_of_reach
    etcd.up.clear()
    start = loop.time()
    with pytest.raises(StoreError):
        await view.current(NOW)
    assert loop.time() - start >= 0.4  # in reach again: the whole wait
    await view.close()


async def test_readers_share_revision_requests_but_never_one_sent_before_they_came() -> None:
    class Etcd:
        def __init__(self) -> None:
            self.revision = 1
            self.asked: list[int] = []  # the revision each request saw when it was sent
            self.answer = asyncio.Event()

        async def current_revision(self) -> int:
            seen = self.revision
            self.asked.append(seen)
            await self.answer.wait()
            return seen

    etcd = Etcd()
    view = view_module.ClusterView(etcd)  # type: ignore[arg-type]
    view.state.advance(99)  # the watch is ahead: each read waits only for its request
    first = asyncio.create_task(view.current(NOW))
    for _ in range(10):  # until the first request is on its way
        await asyncio.sleep(0)
    assert etcd.asked == [1]
    etcd.revision = 2  # a write finishes while the first request is on its way
    later = [asyncio.create_task(view.current(NOW)) for _ in range(20)]
    for _ in range(10):
        await asyncio.sleep(0)
    assert etcd.asked == [1]  # the later readers wait: that request was sent before them
    etcd.answer.set()
    await asyncio.gather(first, *later)
    assert etcd.asked == [1, 2]  # twenty readers, one request after the write
