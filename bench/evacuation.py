"""Evacuation of a host with 6 running tiny VMs: time until the host is empty and how many VMs
migrate at once, for parallel 1 (the sequential baseline, measured in the same run), the
default 2, and 6 — then the return when maintenance ends.

    .venv/bin/python bench/evacuation.py [--vms 6] [--parallel 1,2,6]

Starts its own lab cluster (3 hosts, TCG) in a temporary directory and tears it down after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from labdriver import LabDriver  # bench/, beside this script

from corral.lab.layout import spare_base_port

POLL = 0.1
MEMORY_MB = 96  # the tiny guest needs at least this much to boot


class Cluster(LabDriver):
    def wait_task(self, task_id: str) -> None:
        while (t := self.api("GET", f"/tasks/{task_id}"))["state"] not in ("ok", "error"):
            time.sleep(POLL)
        if t["state"] == "error":
            raise SystemExit(f"task {task_id} failed: {t['error']}")


def concurrency(tasks: list[dict[str, Any]]) -> int:
    """Most migrations running at the same instant, from the tasks' start and end times."""
    edges = sorted([(t["started_at"], 1) for t in tasks] + [(t["ended_at"], -1) for t in tasks])
    best = now = 0
    for _, delta in edges:
        now += delta
        best = max(best, now)
    return best


def migrations(c: Cluster, prefix: str, since: float) -> list[dict[str, Any]]:
    return [t for t in c.api("GET", "/tasks?limit=10000")
            if t["id"].startswith(prefix) and t["created_at"] >= since and t["started_at"]
            and t["ended_at"]]


def until(c: Cluster, node: str, done: str) -> float:
    t0 = time.monotonic()
    while True:
        s = c.api("GET", f"/nodes/{node}/maintenance")
        if s["state"] == done and not s["to_move"] and not s["moving"]:
            if s["stuck"]:
                raise SystemExit(f"stuck VMs: {s['stuck']}")
            return time.monotonic() - t0
        time.sleep(POLL)


def round_trip(c: Cluster, parallel: int) -> dict[str, float]:
    since = time.time()
    c.api("POST", "/nodes/n1/maintenance", {"enable": True, "parallel": parallel})
    empty = until(c, "n1", "in-maintenance")
    out = migrations(c, "maint-n1-", since)
    back_since = time.time()
    c.api("POST", "/nodes/n1/maintenance", {"enable": False})
    back = until(c, "n1", "off")
    ret = migrations(c, "return-", back_since)
    return {
        "parallel": parallel, "empty_s": empty, "at_once": concurrency(out),
        "per_vm_s": statistics.median(t["ended_at"] - t["started_at"] for t in out),
        "back_s": back, "back_at_once": concurrency(ret),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vms", type=int, default=6)
    ap.add_argument("--parallel", default="1,2,6")
    ap.add_argument("--images", default=os.environ.get("CORRAL_IMAGES_DIR",
                                                       "/var/lib/corral/images"))
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-evac-", dir="/tmp"))
    c = Cluster(root, args.images)
    base = spare_base_port()
    try:
        c.corral("lab", "up", "--nodes", "3", "--vms", "0", "--accel", "tcg", "--base-port",
                 str(base), "--api-port", str(base + 390))
        c.connect(timeout=30)
        for k in range(args.vms):
            r = c.api("POST", "/vms", {"name": f"evac{k}", "memory_mb": MEMORY_MB, "cores": 1,
                                      "node": "n1"})
            c.wait_task(r["task"])
            c.wait_task(c.api("POST", f"/vms/{r['vmid']}/status/start")["task"])
        print(f"host n1 with {args.vms} running tiny VMs ({MEMORY_MB} MiB, TCG), 2 target hosts")
        print(f"{'parallel':>8} {'to empty':>9} {'at once':>8} {'per VM':>8} "
              f"{'return':>8} {'at once':>8}")
        for p in (int(x) for x in args.parallel.split(",")):
            r = round_trip(c, p)
            print(f"{r['parallel']:>8} {r['empty_s']:>8.1f}s {r['at_once']:>8} "
                  f"{r['per_vm_s']:>7.2f}s {r['back_s']:>7.1f}s {r['back_at_once']:>8}")
    finally:
        c.destroy()  # a lab half up too, and its folder


if __name__ == "__main__":
    main()
