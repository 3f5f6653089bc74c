"""Readings of the host's counters and of its QEMU processes, from /proc, /sys and psutil.
Blocking (file reads): the agent calls these in a worker thread."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil

from corral.metrics import vm_usage
from corral.usage import figures


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def physical(sys_dir: Path) -> set[str]:
    """Names under a /sys class directory (block, class/net) that are real devices: their
    link does not lead into /sys/devices/virtual (loop, dm, md, zram, bridges, taps, veths)."""
    try:
        entries = list(sys_dir.iterdir())
    except OSError:
        return set()
    return {e.name for e in entries if "/devices/virtual/" not in os.path.realpath(e)}


def read_host(proc: Path = Path("/proc"), sys: Path = Path("/sys")) -> figures.HostReading:
    busy, total = figures.cpu_busy_total(psutil.cpu_times()._asdict())
    mem = psutil.virtual_memory()
    disks = _read(proc / "diskstats")
    disk = figures.disk_bytes(disks, physical(sys / "block")) if disks is not None else None
    net_dev = _read(proc / "net/dev")
    net: tuple[int, int] | None = None
    if net_dev is not None:
        counters = figures.net_bytes(net_dev)
        counted = figures.counted_interfaces(counters, physical(sys / "class/net"))
        net = (sum(counters[n][0] for n in counted), sum(counters[n][1] for n in counted))
    stall: dict[str, float] = {}
    for resource in figures.PRESSURE:
        text = _read(proc / "pressure" / resource)
        if text is not None and (some := figures.stall_total(text)) is not None:
            stall[resource] = some
    return figures.HostReading(
        at=time.monotonic(), cpu_busy=busy, cpu_total=total,
        memory_used=mem.total - mem.available, memory_total=mem.total,
        disk_read=disk[0] if disk else None, disk_written=disk[1] if disk else None,
        net_rx=net[0] if net else None, net_tx=net[1] if net else None, stall=stall,
    )


@dataclass(frozen=True)
class ProcessReading:
    at: float  # monotonic seconds
    pid: int
    cpu_seconds: float
    resident_bytes: int


def read_processes(running: Mapping[int, int]) -> dict[int, ProcessReading]:
    """vmid -> its QEMU process's CPU time and resident memory (vmid -> pid in); a process
    gone meanwhile is left out. The same reading as the agent's /metrics."""
    found = vm_usage.sample(running)
    at = time.monotonic()
    return {vmid: ProcessReading(at, running[vmid], s.cpu_seconds, s.resident_bytes)
            for vmid, s in found.items()}
