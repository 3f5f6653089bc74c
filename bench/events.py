"""What one flush of the events stream costs the API, next to what one poll of the lists
costs, measured in the same run on the same cluster held in memory (no etcd, no HTTP).

    .venv/bin/python bench/events.py [--vms 5000] [--hosts 50] [--clients 200] [--runs 20]

  - poll: what a console polling instead would cost per tab and per poll: every VM and host
    as `GET /vms` and `GET /nodes` build them, encoded as JSON;
  - usage flush: one usage sample of every host (what arrives every few seconds) made into
    events, once for all clients;
  - bulk flush: 100 VMs' runtime changed (a bulk start) plus an HA-managed VM's: VM, host and
    HA events;
  - fan-out: one flush's encoded events queued for every client.
Prints medians; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

from corral.api import events_core as core
from corral.api.views import node_out, vm_out
from corral.cluster import keys
from corral.cluster.models import (
    NodeInfo,
    NodeUsage,
    Placement,
    RunState,
    VMConfig,
    VMRuntime,
    VMStatus,
)
from corral.cluster.records import Item, dump
from corral.cluster.view_state import Change, ViewState
from corral.ha.models import HASettings
from corral.ha.store import inputs_of

NOW = 1000.0


def cluster(vms: int, hosts: int) -> ViewState:
    items: list[Item] = []
    for h in range(hosts):
        name = f"h{h}"
        info = NodeInfo(name=name, cpus=8, memory_mb=1 << 16)
        items += [(keys.node(name, "info"), dump(info), 1), (keys.node(name, "alive"), b"1", 1)]
    for i in range(vms):
        vmid, node = 100 + i, f"h{i % hosts}"
        items += [
            (keys.vm(vmid, "config"), dump(VMConfig(vmid=vmid, name=f"vm{vmid}", memory_mb=256,
                                                    cores=1)), 1),
            (keys.vm(vmid, "placement"), dump(Placement(node=node, state=RunState.RUNNING)), 1),
            (keys.vm(vmid, "runtime"), dump(VMRuntime(node=node, status=VMStatus.RUNNING,
                                                      pid=1000 + i, updated_at=1.0)), 1),
        ]
        if i % 10 == 0:
            items.append((keys.ha(vmid), dump(HASettings(vmid=vmid)), 1))
    state = ViewState()
    state.reset(items, 1)
    return state


def median_ms(runs: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vms", type=int, default=5000)
    ap.add_argument("--hosts", type=int, default=50)
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--runs", type=int, default=20)
    a = ap.parse_args()
    state = cluster(a.vms, a.hosts)
    rev = 1

    def apply(changes: list[tuple[str, bytes]]) -> list[str]:
        nonlocal rev
        batch = []
        for key, value in changes:
            rev += 1
            batch.append(Change(key, value, rev))
        changed = state.apply(batch)
        state.advance(rev)
        return changed

    def poll() -> int:
        snap = state.snapshot(NOW)
        online = {n.name for n in snap.nodes.values() if n.alive}
        vms = [vm_out(v, v.placement.node in online).model_dump(mode="json")
               for v in snap.vms.values()]
        nodes = [node_out(n, snap).model_dump(mode="json")
                 for n in snap.nodes.values()]
        return len(json.dumps(vms)) + len(json.dumps(nodes))

    memory = core.Memory.of(state.snapshot(NOW), inputs_of(state))

    spent: list[float] = []  # the events' own cost: the view decodes the changes anyway

    def flush(changes: list[tuple[str, bytes]]) -> list[core.Event]:
        changed = apply(changes)
        t0 = time.perf_counter()
        events = core.events_for(core.touched_by(changed), state.snapshot(NOW),
                                 inputs_of(state), memory)
        spent.append(time.perf_counter() - t0)
        return events

    def flush_ms(make: Callable[[], list[core.Event]]) -> tuple[float, int]:
        spent.clear()
        n = [len(make()) for _ in range(a.runs)][-1]
        return statistics.median(spent) * 1000, n

    sample = 0.0

    def usage_flush() -> list[core.Event]:
        nonlocal sample
        sample = (sample + 0.01) % 1
        return flush([(keys.node(f"h{h}", "usage"), dump(NodeUsage(
            cpu=sample, memory_used_mb=1, memory_total_mb=2, sampled_at=NOW)))
            for h in range(a.hosts)])

    flip = [VMStatus.STOPPED]

    def bulk_flush() -> list[core.Event]:
        flip[0] = VMStatus.RUNNING if flip[0] is VMStatus.STOPPED else VMStatus.STOPPED
        return flush([(keys.vm(100 + i, "runtime"), dump(VMRuntime(
            node=f"h{i % a.hosts}", status=flip[0], updated_at=NOW))) for i in range(100)])

    poll_bytes = poll()
    print(f"{a.vms} VMs on {a.hosts} hosts, {a.clients} clients; medians of {a.runs} runs")
    print(f"  poll (GET /vms + /nodes, one tab): {median_ms(a.runs, poll):8.2f} ms, "
          f"{poll_bytes / 1024:.0f} KiB")
    ms, n = flush_ms(usage_flush)
    print(f"  usage flush (all clients):         {ms:8.2f} ms, {n} events")
    ms, n = flush_ms(bulk_flush)
    print(f"  bulk flush (all clients):          {ms:8.2f} ms, {n} events")
    events = bulk_flush()
    chunks = [e.encode() for e in events]
    clients = [core.Backlog(5000, 8 << 20) for _ in range(a.clients)]

    def fan_out() -> None:
        for c in clients:
            c.push(chunks, rev)
            c.take()

    print(f"  fan-out of the bulk flush:         {median_ms(a.runs, fan_out):8.2f} ms "
          f"({sum(map(len, chunks)) / 1024:.0f} KiB shared by all clients)")


if __name__ == "__main__":
    main()
