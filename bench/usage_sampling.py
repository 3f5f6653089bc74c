"""What the agent's usage history costs: one sampling pass over N running tiny guests (the
host's /proc reads, each QEMU process's CPU time and memory, a QMP query-blockstats per VM,
the archives' update), a write of all archives, and the archives' size on disk, new and full.

    .venv/bin/python bench/usage_sampling.py [--vms 30] [--passes 12]

Starts N real QEMU tiny guests (TCG, 64 MiB, one 32 MiB qcow2 disk each) in a temporary run
directory and stops them at the end. CPU time is this process's (all its threads), so other
load on the machine skews it less than wall time. Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from corral.agent.history import UsageHistory
from corral.cluster.models import Disk, VMConfig
from corral.image.tiny import build_tiny
from corral.qemu.driver import QemuDriver
from corral.usage import rrd
from corral.usage.figures import VM_METRICS

IMAGES = Path(os.environ.get("CORRAL_IMAGES_DIR", "/var/lib/corral/images"))


def full_vm_archive_size() -> int:
    """A VM's file once every slot of every range holds figures (a year of history)."""
    r = rrd.Rrd(VM_METRICS)
    rng = random.Random(1)
    for archive in r.archives.values():
        archive.last = archive.spec.rows
        for ring in (*archive.avg.values(), *archive.max.values()):
            for i in range(archive.spec.rows):
                ring[i] = round(rng.uniform(0, 1e8))
    return len(rrd.encode(r))


async def lag_probe(lags: list[float], tick: float = 0.005) -> None:
    """How late the event loop wakes a 5 ms sleeper: what the agent's other work (lease
    renewals, the monitor) would wait while a pass runs."""
    while True:
        t = time.perf_counter()
        await asyncio.sleep(tick)
        lags.append(time.perf_counter() - t - tick)


async def main(vms: int, passes: int) -> None:
    build_tiny(IMAGES)
    root = Path(tempfile.mkdtemp(prefix="usage-bench-", dir="/tmp"))
    driver = QemuDriver(root / "run", IMAGES, "tcg")
    configs = {}
    print(f"starting {vms} tiny guests ...", flush=True)
    for k in range(vms):
        vmid = 100 + k
        cfg = VMConfig(vmid=vmid, name=f"b{vmid}", memory_mb=64, cores=1,
                       disks=[Disk(volume=f"local:vm-{vmid}.qcow2", size_mb=32)])
        disk = root / f"vm-{vmid}.qcow2"
        await asyncio.to_thread(subprocess.run, ["qemu-img", "create", "-q", "-f", "qcow2",
                                                 str(disk), "32M"], check=True)
        await driver.start(cfg, [disk])
        configs[vmid] = SimpleNamespace(config=cfg)
    snap = SimpleNamespace(vms=configs, unreadable_vms=set(), revision=1)
    history = UsageHistory("bench", root / "usage", driver, lambda: snap)  # type: ignore[arg-type,return-value]
    try:
        await history.sample()  # the first pass has no rates yet; not counted
        cpu: list[float] = []
        wall: list[float] = []
        lags: list[float] = []
        idle: list[float] = []
        for _ in range(passes):
            probe = asyncio.create_task(lag_probe(idle))  # the same, without a pass
            await asyncio.sleep(1.0)
            probe.cancel()
            probe_lags: list[float] = []
            probe = asyncio.create_task(lag_probe(probe_lags))
            await asyncio.sleep(0)
            c0, w0 = time.process_time(), time.perf_counter()
            await history.sample()
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
            probe.cancel()
            lags += probe_lags
        c0, w0 = time.process_time(), time.perf_counter()
        await history.persist()
        write_cpu, write_wall = time.process_time() - c0, time.perf_counter() - w0
        c0 = time.process_time()
        for _ in range(10):
            await history.window(100, "day")
        day_cpu = (time.process_time() - c0) / 10
        files = sorted((root / "usage").glob("vm-*.rrd"))
        sizes = [f.stat().st_size for f in files]
        print(f"VMs sampled: {len(history.vms)} of {vms}; passes: {passes}")
        print(f"one pass: CPU median {statistics.median(cpu) * 1000:.1f} ms, "
              f"max {max(cpu) * 1000:.1f} ms; wall median {statistics.median(wall) * 1000:.1f}"
              f" ms, max {max(wall) * 1000:.1f} ms")
        print(f"  = {statistics.median(cpu) / 10 * 100:.2f}% of one core at a pass every 10 s")
        for name, seen in (("during passes", lags), ("between passes", idle)):
            seen.sort()
            print(f"event loop lateness {name}: median {statistics.median(seen) * 1000:.1f} "
                  f"ms, p99 {seen[int(len(seen) * 0.99)] * 1000:.1f} ms, max "
                  f"{seen[-1] * 1000:.1f} ms")
        print(f"write of all archives: CPU {write_cpu * 1000:.1f} ms, wall "
              f"{write_wall * 1000:.1f} ms (every 60 s)")
        print(f"a VM's day window as answered: CPU {day_cpu * 1000:.1f} ms")
        print(f"VM file on disk after {passes + 1} samples: {statistics.median(sizes)} bytes; "
              f"host file: {(root / 'usage' / 'node.rrd').stat().st_size} bytes")
        print(f"VM file with every slot full: {full_vm_archive_size()} bytes; in memory "
              f"{len(VM_METRICS) * 2 * sum(s.rows for s in rrd.RANGES.values()) * 8} bytes")
    finally:
        for vmid in configs:
            await driver.stop(vmid)
        await asyncio.to_thread(shutil.rmtree, root, True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=30)
    parser.add_argument("--passes", type=int, default=12)
    args = parser.parse_args()
    asyncio.run(main(args.vms, args.passes))
