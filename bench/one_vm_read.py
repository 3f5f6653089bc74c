"""What one VM's answer costs the API under a stream of writes: read from a snapshot of the
whole cluster (how GET /vms/{id} was answered) against read from the view's state. Each read
comes after a change, as at 200 requests/s with writes going on, where nearly every read
finds the revision moved. Pure (no etcd, no HTTP): the view's state fed as a watch feeds it.

    .venv/bin/python bench/one_vm_read.py [--vms 1000,5000] [--hosts 64] [--reads 2000]

Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

from corral.api.views import vm_detail, vm_in, vm_in_state
from corral.cluster import keys
from corral.cluster.models import (
    NodeInfo,
    Placement,
    RunState,
    Task,
    TaskState,
    VMConfig,
    VMRuntime,
    VMStatus,
)
from corral.cluster.records import Item, dump
from corral.cluster.view_state import Change, ViewState

TASKS = 500  # finished tasks the manager keeps


def listed(vms: int, hosts: int) -> ViewState:
    items: list[Item] = []
    for h in range(hosts):
        name = f"sim-host-{h:03d}"
        items += [(keys.node(name, "info"), dump(NodeInfo(name=name, cpus=64,
                                                          memory_mb=262_144)), 1),
                  (keys.node(name, "alive"), b"1", 1)]
    for vmid in range(100, 100 + vms):
        node = f"sim-host-{vmid % hosts:03d}"
        items += [(keys.vm(vmid, "config"), dump(VMConfig(vmid=vmid, name=f"vm{vmid}",
                                                          memory_mb=64, cores=1)), 1),
                  (keys.vm(vmid, "placement"), dump(Placement(node=node,
                                                              state=RunState.STOPPED)), 1)]
    for i in range(TASKS):
        items.append((keys.task(f"t{i}"), dump(Task(
            id=f"t{i}", kind="vm.create", node="sim-host-000", vmid=100 + i,
            state=TaskState.OK, created_at=float(i))), 1))
    state = ViewState()
    state.reset(sorted(items), 1)
    return state


def per_read(state: ViewState, vms: int, hosts: int, reads: int,
             read: Callable[[ViewState, int], object], seed: int) -> list[float]:
    """Seconds per read, each after one change: a VM's runtime, or a task's."""
    rng = random.Random(seed)
    revision = state.revision
    out = []
    for i in range(reads):
        revision += 1
        vmid = 100 + rng.randrange(vms)
        if i % 2:
            change = Change(keys.vm(vmid, "runtime"), dump(VMRuntime(
                node=f"sim-host-{vmid % hosts:03d}", status=VMStatus.STOPPED,
                updated_at=float(i))), revision)
        else:
            change = Change(keys.task(f"t{rng.randrange(TASKS)}"), dump(Task(
                id="t", kind="vm.create", node="sim-host-000", vmid=vmid,
                state=TaskState.OK, created_at=float(i))), revision)
        state.apply([change])
        state.advance(revision)
        start = time.perf_counter()
        read(state, 100 + rng.randrange(vms))
        out.append(time.perf_counter() - start)
    return out


def from_snapshot(state: ViewState, vmid: int) -> object:
    snap = state.snapshot(time.time())
    vm = vm_in(snap, vmid)
    node = snap.nodes.get(vm.placement.node)
    return vm_detail(vm, node is not None and node.alive)


def from_state(state: ViewState, vmid: int) -> object:
    vm = vm_in_state(state, vmid)
    node = state.node(vm.placement.node)
    return vm_detail(vm, node is not None and node.alive)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vms", default="1000,5000")
    parser.add_argument("--hosts", type=int, default=64)
    parser.add_argument("--reads", type=int, default=2000)
    args = parser.parse_args()
    print(f"one VM's answer after each change ({args.reads} reads, {args.hosts} hosts, "
          f"{TASKS} tasks)")
    print(f"  {'VMs':>6}  {'read from':<26} {'p50 us':>9} {'p99 us':>9} {'mean us':>9}")
    for vms in (int(v) for v in args.vms.split(",")):
        state = listed(vms, args.hosts)

        # Alternated, so that both see the machine alike; the snapshot first is the baseline.
        rows: dict[str, list[float]] = {"a snapshot (before)": [], "the state": []}
        for rnd in range(4):
            rows["a snapshot (before)"] += per_read(state, vms, args.hosts, args.reads // 4,
                                                    from_snapshot, rnd)
            rows["the state"] += per_read(state, vms, args.hosts, args.reads // 4,
                                          from_state, rnd)
        for label, times in rows.items():
            us = sorted(t * 1e6 for t in times)
            print(f"  {vms:>6}  {label:<26} {statistics.median(us):>9.1f} "
                  f"{us[int(len(us) * 0.99)]:>9.1f} {statistics.fmean(us):>9.1f}")


if __name__ == "__main__":
    main()
