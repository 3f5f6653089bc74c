"""HA failover time: kill the host of an HA VM (power loss) N times and measure, each time,
from the kill to the VM's first heartbeat on its new host.

    .venv/bin/python bench/failover.py [--runs 5] [--lease-ttl 6 --watchdog-timeout 4]

Starts its own lab cluster (3 hosts in network namespaces, TCG, so as root) in a temporary
directory and tears it down after, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from labdriver import LabDriver  # bench/, beside this script

from corral.fencing.labdog import host_qemu_pids
from corral.ha.models import HATiming
from corral.lab.defaults import DEFAULT_LEASE_TTL, DEFAULT_WATCHDOG_TIMEOUT
from corral.lab.faults import etcd_leader
from corral.lab.layout import LabLayout, spare_base_port

POLL = 0.1
HEARTBEAT = "corral-heartbeat 1"
VMID = 100  # the lab's tiny1
SETTLE_TIMEOUT = 90.0  # the killed host's return, until every host is online again


class Bench(LabDriver):
    def __init__(self, root: Path, images: str) -> None:
        super().__init__(root, images)
        self.layout: LabLayout | None = None

    def connect(self, timeout: float = 10) -> httpx.Client:
        http = super().connect(timeout)
        self.layout = LabLayout.load(self.root / "lab")
        assert self.layout is not None
        return http

    def get(self, path: str) -> Any:
        return self.api("GET", path)

    def qemu_on(self, node: str) -> int | None:
        assert self.layout is not None
        return host_qemu_pids(self.layout.run_dir(self.layout.node_index(node))).get(VMID)

    def serial_log(self, node: str) -> Path:
        assert self.layout is not None
        return self.layout.run_dir(self.layout.node_index(node)) / f"{VMID}.serial.log"

    def settled(self) -> bool:
        """Every host online, and the HA VM started where it is placed."""
        if not all(n["online"] for n in self.get("/nodes")):
            return False
        row = next(r for r in self.get("/ha/status")["vms"] if r["vmid"] == VMID)
        return row["status"] == "started" and self.qemu_on(row["node"]) is not None

    def wait(self, what: str, timeout: float, check: Any) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if found := check():
                    return found
            except (httpx.HTTPError, OSError, StopIteration, KeyError):
                pass  # the API or a host briefly away while the cluster shifts: ask again
            time.sleep(POLL)
        raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")


# Where the time goes, each from the kill: the manager sees the lease gone, finds the host
# fenced (and moves the VM's placement in the same tick), queues the start (a later tick);
# the new host's agent claims the task; the QEMU is live; the task ends; the guest beats.
STEPS = ("lease gone", "fenced", "start queued", "task claimed", "QEMU live", "task done",
         "heartbeat")


def breakdown(b: Bench, host: str, wall0: float) -> dict[str, float]:
    """The manager's and the agent's own timestamps of one failover (wall clock, this
    machine), as seconds after the kill."""
    row = next(r for r in b.get("/ha/status")["nodes"] if r["node"] == host)
    starts = [t for t in b.get(f"/tasks?vmid={VMID}")
              if t["kind"] == "vm.start" and t["created_at"] >= wall0]
    out: dict[str, float] = {}
    if row.get("lost_at"):
        out["lease gone"] = row["lost_at"] - wall0
    if row.get("fenced_at"):
        out["fenced"] = row["fenced_at"] - wall0
    if starts:
        task = min(starts, key=lambda t: t["created_at"])
        out["start queued"] = task["created_at"] - wall0
        if task.get("started_at"):
            out["task claimed"] = task["started_at"] - wall0
        if task.get("ended_at"):
            out["task done"] = task["ended_at"] - wall0
    return out


def one_run(b: Bench, n: int, bound: float) -> tuple[str, str, float, float, dict[str, float]]:
    """Kill the VM's host; returns (old host, new host, seconds to the new QEMU, seconds to
    its first heartbeat, the breakdown)."""
    host = b.get(f"/vms/{VMID}")["node"]
    others = [x["name"] for x in b.get("/nodes") if x["name"] != host]
    assert b.layout is not None
    # A killed etcd leader costs an election, and the new leader gives every lease a fresh
    # TTL: the lost host's lease then outlives the kill by more than its TTL.
    leader = etcd_leader(b.layout)
    if b.layout.cluster_mode:  # each host serves the API: ask one that survives
        b.use_api(b.layout.host_api_url(b.layout.node_index(others[0])))
    t0, wall0 = time.monotonic(), time.time()
    b.corral("lab", "kill-node", host)

    def new_qemu() -> str | None:
        # A serial log is emptied before QEMU starts, so once a new QEMU's pidfile is there
        # an older boot's heartbeat can no longer be in that host's log.
        return next((o for o in others if b.qemu_on(o) is not None), None)

    new = b.wait(f"VM {VMID} on another host (run {n})", bound, new_qemu)
    started = time.monotonic() - t0
    log = b.serial_log(new)
    b.wait(f"VM {VMID}'s heartbeat on {new} (run {n})", bound,
           lambda: HEARTBEAT in log.read_text(errors="replace"))
    beat = time.monotonic() - t0
    steps = b.wait(f"the failover's records (run {n})", 10, lambda: breakdown(b, host, wall0))
    steps |= {"QEMU live": started, "heartbeat": beat,
              "etcd leader killed": float(leader is not None and leader[0] == host)}
    b.corral("lab", "start-node", host)
    b.wait(f"the cluster to settle after {host}'s return (run {n})", SETTLE_TIMEOUT, b.settled)
    return host, new, started, beat, steps


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5)
    # The defaults of a lab (and so of an agent with the lab's watchdog): what users get.
    p.add_argument("--lease-ttl", type=int, default=DEFAULT_LEASE_TTL)
    p.add_argument("--watchdog-timeout", type=float, default=DEFAULT_WATCHDOG_TIMEOUT)
    p.add_argument("--images", default=os.environ.get("CORRAL_IMAGES_DIR",
                                                      "/var/lib/corral/images"))
    args = p.parse_args()
    if os.geteuid() != 0:
        p.error("the lab's network namespaces need root")
    if not 0 < args.watchdog_timeout < args.lease_ttl or args.runs < 1:
        p.error("need 0 < --watchdog-timeout < --lease-ttl and --runs >= 1")
    manager = HATiming()
    # Per step, a generous cap so that a broken run ends instead of hanging: the lease, at most
    # the watchdog and the margin, then a minute for the start and the boot.
    bound = args.lease_ttl + args.watchdog_timeout + manager.margin + 60.0

    root = Path(tempfile.mkdtemp(prefix="failover-", dir="/tmp"))
    b = Bench(root, args.images)
    base = spare_base_port()
    results: list[tuple[str, str, float, float, dict[str, float]]] = []
    try:
        print(f"lab in {root}: 3 hosts (netns, TCG), lease TTL {args.lease_ttl}s, "
              f"watchdog {args.watchdog_timeout:g}s", flush=True)
        b.corral("lab", "up", "--nodes", "3", "--vms", "1", "--accel", "tcg", "--netns",
                 "--lease-ttl", str(args.lease_ttl),
                 "--watchdog-timeout", f"{args.watchdog_timeout:g}",
                 "--base-port", str(base), "--api-port", str(base + 390))
        b.connect()
        b.corral("ha", "add", str(VMID))
        b.wait("the HA VM started", 60, b.settled)
        for n in range(1, args.runs + 1):
            old, new, started, beat, steps = one_run(b, n, bound)
            results.append((old, new, started, beat, steps))
            print(f"run {n}: killed {old}; VM {VMID} started on {new} after {started:5.1f}s, "
                  f"first heartbeat after {beat:5.1f}s; "
                  + ("etcd leader killed too; " if steps.pop("etcd leader killed") else "")
                  + ", ".join(f"{k} {v:.1f}" for k, v in steps.items()), flush=True)
    finally:
        b.destroy()

    beats = [r[3] for r in results]
    print()
    print("seconds after the kill (median over the runs; the step's own share after it):")
    before = 0.0
    for step in STEPS:
        seen = [r[4][step] for r in results if step in r[4]]
        if seen:
            at = statistics.median(seen)
            print(f"  {step:<13} {at:5.1f}s  (+{at - before:4.1f}s; min {min(seen):.1f}, "
                  f"max {max(seen):.1f})")
            before = at
    print(f"kill -> first heartbeat on the new host, {len(beats)} runs: "
          f"median {statistics.median(beats):.1f}s, max {max(beats):.1f}s")
    median = statistics.median(beats)
    print(f"lease TTL {args.lease_ttl}s, watchdog {args.watchdog_timeout:g}s, margin "
          f"{manager.margin:g}s: the lease ends at most a TTL after the kill (later when the "
          f"etcd leader died with the host); the manager's wait after that is 'fenced' less "
          f"'lease gone'; the rest is the start and the guest's boot")
    print(f"goal, median at most 15s and max at most 20s: "
          f"{'met' if median <= 15 and max(beats) <= 20 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
