"""What a quorum witness costs at idle: resident memory and CPU of its etcd member, beside one
host's etcd member, agent and API for comparison.

    .venv/bin/python bench/witness.py [--vms 2] [--idle 60] [--sample 30]

Brings up its own lab built as a cluster (`corral lab up --cluster --nodes 2 --witness`, hosts
in network namespaces, TCG, so as root) in a temporary directory, leaves it idle for --idle
seconds, samples each process's RSS once a second and its CPU time over --sample seconds
(psutil), prints the figures and tears the lab down, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from corral.lab.defaults import DEFAULT_LEASE_TTL, DEFAULT_WATCHDOG_TIMEOUT
from corral.lab.layout import spare_base_port

WATCHED = ("w-etcd", "n1-etcd", "n1-agent", "n1-api")
MIB = 1024 * 1024


@dataclass
class Sampled:
    name: str
    proc: psutil.Process
    rss: list[int] = field(default_factory=list)
    cpu_start: float = 0.0
    cpu_end: float = 0.0
    seconds: float = 0.0  # wall time between the two CPU readings

    def cpu_seconds(self) -> float:
        t = self.proc.cpu_times()
        return float(t.user + t.system)


def corral(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    proc = subprocess.run([sys.executable, "-m", "corral.cli.main", *args], env=env,
                          text=True, capture_output=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"corral {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def children(lab: Path) -> dict[str, int]:
    state = json.loads((lab / "supervisor.json").read_text())
    return {name: int(pid) for name, pid in state["children"].items() if pid}


def measure(lab: Path, sample: float) -> list[Sampled]:
    pids = children(lab)
    missing = [n for n in WATCHED if n not in pids]
    if missing:
        raise SystemExit(f"not running: {', '.join(missing)}")
    watched = [Sampled(n, psutil.Process(pids[n])) for n in WATCHED]
    for s in watched:
        s.cpu_start = s.cpu_seconds()
    began = time.monotonic()
    while time.monotonic() - began < sample:
        for s in watched:
            s.rss.append(s.proc.memory_info().rss)
        time.sleep(1.0)
    for s in watched:
        s.cpu_end = s.cpu_seconds()
        s.seconds = time.monotonic() - began
    return watched


def report(watched: list[Sampled]) -> None:
    print(f"{'process':10} {'pid':>7} {'RSS mean MiB':>13} {'RSS max MiB':>12} "
          f"{'CPU % (one core)':>17}")
    for s in watched:
        cpu = 100 * (s.cpu_end - s.cpu_start) / s.seconds
        print(f"{s.name:10} {s.proc.pid:>7} {statistics.mean(s.rss) / MIB:>13.1f} "
              f"{max(s.rss) / MIB:>12.1f} {cpu:>17.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vms", type=int, default=2, help="tiny VMs on the hosts (one each)")
    p.add_argument("--idle", type=float, default=60.0, help="seconds left idle first")
    p.add_argument("--sample", type=float, default=30.0, help="seconds sampled")
    p.add_argument("--images", default=os.environ.get("CORRAL_IMAGES_DIR",
                                                      "/var/lib/corral/images"))
    args = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("a lab in network namespaces needs root")
    root = Path(tempfile.mkdtemp(prefix="wbench-", dir="/tmp"))
    env = {**os.environ, "CORRAL_CONFIG": str(root / "client.json"),
           "CORRAL_LAB_DIR": str(root / "lab"), "CORRAL_IMAGES_DIR": args.images}
    env.pop("CORRAL_URL", None)
    env.pop("CORRAL_TOKEN", None)
    base = spare_base_port()
    try:
        t0 = time.monotonic()
        corral(env, "lab", "up", "--cluster", "--nodes", "2", "--witness", "--netns",
               "--accel", "tcg", "--vms", str(args.vms), "--base-port", str(base),
               "--api-port", str(base + 390), "--lease-ttl", str(DEFAULT_LEASE_TTL),
               "--watchdog-timeout", f"{DEFAULT_WATCHDOG_TIMEOUT:g}")
        print(f"lab up in {time.monotonic() - t0:.1f}s (2 hosts, witness, {args.vms} VMs); "
              f"idle for {args.idle:g}s, then sampling {args.sample:g}s")
        time.sleep(args.idle)
        report(measure(root / "lab", args.sample))
    finally:
        subprocess.run([sys.executable, "-m", "corral.cli.main", "lab", "destroy", "--yes"],
                       env=env, capture_output=True, timeout=180, check=False)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
