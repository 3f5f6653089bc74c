"""One /api/v1/metrics scrape of a large cluster, without etcd: the time to turn a snapshot
into metrics and render them, next to the time to decode that snapshot from etcd's items
(the baseline every scrape pays today), and the size of the output.

    .venv/bin/python bench/metrics.py [--vms 2000] [--tasks 500] [--hosts 16] [--rounds 10]

Pure CPU: the items are built in memory as etcd would return them; CPU time of this process
is measured, so a loaded machine skews it less than wall time.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from corral.cluster import keys
from corral.cluster.models import (
    NodeInfo,
    NodeUsage,
    Placement,
    RunState,
    Task,
    TaskState,
    VMConfig,
    VMRuntime,
    VMStatus,
)
from corral.cluster.records import dump
from corral.cluster.snapshot import snapshot_from
from corral.ha.models import HASettings
from corral.ha.store import ha_inputs_from
from corral.metrics.exposition import render

Item = tuple[str, bytes, int]


def items(hosts: int, vms: int, tasks: int) -> list[Item]:
    out: list[Item] = []
    for i in range(hosts):
        name = f"n{i}"
        out += [(keys.node(name, "info"), dump(NodeInfo(name=name, cpus=32, memory_mb=262144)),
                 1),
                (keys.node(name, "alive"), b"1", 1),
                (keys.node(name, "usage"), dump(NodeUsage(cpu=0.3, memory_used_mb=100000,
                                                          memory_total_mb=262144)), 1)]
    for k in range(vms):
        vmid, node = 100 + k, f"n{k % hosts}"
        out += [(keys.vm(vmid, "config"),
                 dump(VMConfig(vmid=vmid, name=f"vm{vmid}", memory_mb=1024, cores=2)), 1),
                (keys.vm(vmid, "placement"),
                 dump(Placement(node=node, state=RunState.RUNNING)), 1),
                (keys.vm(vmid, "runtime"),
                 dump(VMRuntime(node=node, status=VMStatus.RUNNING, pid=1000 + k)), 1)]
        if k % 2 == 0:  # half of them under HA
            out.append((keys.ha(vmid), dump(HASettings(vmid=vmid)), 1))
    for t in range(tasks):
        kind = "vm.migrate" if t % 5 == 0 else "vm.start"
        task = Task(id=f"t{t}", kind=kind, node="n0", vmid=100 + t % max(vms, 1),
                    state=TaskState.OK, started_at=float(t), ended_at=t + 3.0,
                    result={"mode": "live", "bytes": 2**30, "downtime_ms": 30,
                            "pause_ms": 45} if kind == "vm.migrate" else {})
        out.append((keys.task(task.id), dump(task), 1))
    return out


def median_ms(rounds: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.process_time()
        run()
        times.append(time.process_time() - t0)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=16)
    parser.add_argument("--vms", type=int, default=2000)
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    data = items(args.hosts, args.vms, args.tasks)
    view = (snapshot_from(data, 1, 1e9), ha_inputs_from(data))
    empty = CollectorRegistry()  # the cluster's metrics alone, no process metrics
    decode = median_ms(args.rounds, lambda: (snapshot_from(data, 1, 1e9), ha_inputs_from(data)))
    scrape = median_ms(args.rounds, lambda: render(view, empty))
    text = render(view, empty)
    lines = sum(1 for line in text.splitlines() if not line.startswith(b"#"))
    print(f"{args.hosts} hosts, {args.vms} VMs (half HA), {args.tasks} tasks: "
          f"decode (baseline) {decode:.1f} ms, metrics + render {scrape:.1f} ms "
          f"({scrape / decode:.2f}x), {lines} series, {len(text) / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
