"""Decoding one snapshot of a large cluster (what the manager does every tick): the time per
snapshot with every record good, and with a share of them malformed or from a newer version.

    .venv/bin/python bench/decode.py [--vms 2000] [--tasks 500] [--bad 0.01] [--rounds 20]

Pure CPU, no etcd: the items are built in memory as etcd would return them; CPU time of
this process is measured, so a loaded machine skews it less than wall time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from corral.cluster import keys
from corral.cluster.models import (
    NodeInfo,
    Placement,
    RunState,
    Task,
    VMConfig,
    VMRuntime,
    VMStatus,
)
from corral.cluster.records import dump
from corral.cluster.snapshot import snapshot_from

Item = tuple[str, bytes, int]


def items(vms: int, tasks: int, bad: float, newer: float) -> list[Item]:
    out: list[Item] = []
    for i in range(8):
        out.append((keys.node(f"n{i}", "info"),
                    dump(NodeInfo(name=f"n{i}", cpus=32, memory_mb=262144)), 1))
        out.append((keys.node(f"n{i}", "alive"), b"1", 1))
    every_bad = int(1 / bad) if bad else 0
    every_newer = int(1 / newer) if newer else 0
    for k in range(vms):
        vmid = 100 + k
        cfg = VMConfig(vmid=vmid, name=f"vm{vmid}", memory_mb=1024, cores=2)
        raw = dump(cfg)
        if every_newer and k % every_newer == 1:
            raw = json.dumps({**json.loads(raw), "numa": {"nodes": 2}}).encode()
        if every_bad and k % every_bad == 0:
            raw = raw[: len(raw) // 2]  # cut short mid-write
        node = f"n{k % 8}"
        out += [(keys.vm(vmid, "config"), raw, k + 1),
                (keys.vm(vmid, "placement"), dump(Placement(node=node, state=RunState.RUNNING)),
                 k + 1),
                (keys.vm(vmid, "runtime"), dump(VMRuntime(node=node, status=VMStatus.RUNNING,
                                                          pid=1000 + k)), k + 1)]
    for t in range(tasks):
        task = Task(id=f"t{t}", kind="vm.start", node="n0", vmid=100 + t % max(vms, 1))
        out.append((keys.task(task.id), dump(task), t + 1))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=2000)
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--bad", type=float, default=0.01, help="share of configs cut short")
    parser.add_argument("--newer", type=float, default=0.1,
                        help="share of configs with a newer version's field")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    for label, bad, newer in (("all good", 0.0, 0.0), (f"{args.bad:.0%} cut short, "
                                                        f"{args.newer:.0%} newer", args.bad,
                                                        args.newer)):
        data = items(args.vms, args.tasks, bad, newer)
        times = []
        snap = None
        for _ in range(args.rounds):
            t0 = time.process_time()
            try:
                snap = snapshot_from(data, 1, 0.0)
            except ValueError as e:
                print(f"{label}: the snapshot fails: {str(e).splitlines()[0]}")
                break
            times.append(time.process_time() - t0)
        if times and snap is not None:
            skipped = len(getattr(snap, "problems", ()))
            print(f"{label}: {args.vms} VMs, {args.tasks} tasks: median "
                  f"{statistics.median(times) * 1000:.1f} ms per snapshot "
                  f"(min {min(times) * 1000:.1f}), {len(snap.vms)} VMs decoded, "
                  f"{skipped} records skipped")


if __name__ == "__main__":
    main()
