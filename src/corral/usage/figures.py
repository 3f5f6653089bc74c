"""What one usage sample of a host or a VM is, from two readings of its counters. Pure: the
readings come from `usage.readings` (the host) and the agent (a VM's QEMU process and QMP).

Every figure is None when it cannot be told honestly: a rate needs the previous reading
(of the same process, for a VM) and a counter that did not go back.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

CPU = "cpu"
MEMORY_USED = "memory_used_bytes"
MEMORY_TOTAL = "memory_total_bytes"
DISK_READ = "disk_read_bytes_per_s"
DISK_WRITE = "disk_write_bytes_per_s"
NET_RX = "net_rx_bytes_per_s"
NET_TX = "net_tx_bytes_per_s"
PSI_CPU = "psi_cpu"
PSI_MEMORY = "psi_memory"
PSI_IO = "psi_io"

VM_METRICS = (CPU, MEMORY_USED, MEMORY_TOTAL, DISK_READ, DISK_WRITE, NET_RX, NET_TX)
# A VM's QEMU has no cgroup of its own, so no pressure stall figures of its own.
HOST_METRICS = (*VM_METRICS, PSI_CPU, PSI_MEMORY, PSI_IO)
# Fractions to 1/10000; bytes and bytes per second to whole numbers.
DECIMALS = {CPU: 4, PSI_CPU: 4, PSI_MEMORY: 4, PSI_IO: 4}
PRESSURE = {"cpu": PSI_CPU, "memory": PSI_MEMORY, "io": PSI_IO}  # /proc/pressure/<name>

Figures = dict[str, float | None]


@dataclass(frozen=True)
class HostReading:
    at: float  # monotonic seconds
    cpu_busy: float  # CPU seconds of all CPUs, busy (not idle, not waiting for I/O)
    cpu_total: float  # CPU seconds of all CPUs
    memory_used: int  # total - available
    memory_total: int
    disk_read: int | None  # bytes since boot, of the host's physical disks
    disk_written: int | None
    net_rx: int | None  # bytes since boot, of the counted interfaces
    net_tx: int | None
    # /proc/pressure/<resource> "some" total: microseconds some task stalled. A kernel
    # without PSI has none.
    stall: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class VmReading:
    at: float  # monotonic seconds
    pid: int
    cpu_seconds: float  # user + system of the QEMU process: vCPUs and QEMU's own threads
    resident_bytes: int
    disk_read: int | None  # bytes the guest read from its disks (QMP query-blockstats)
    disk_written: int | None
    # A VM has no network device yet: nothing to count.
    net_rx: int | None = None
    net_tx: int | None = None


def rate(before: float | None, after: float | None, seconds: float) -> float | None:
    """Per second between two readings of a counter; None when it went back (a reset)."""
    if before is None or after is None or seconds <= 0 or after < before:
        return None
    return (after - before) / seconds


def host_figures(prev: HostReading | None, cur: HostReading) -> Figures:
    seconds = cur.at - prev.at if prev else 0.0
    out: Figures = {
        MEMORY_USED: float(cur.memory_used), MEMORY_TOTAL: float(cur.memory_total),
        CPU: None, DISK_READ: None, DISK_WRITE: None, NET_RX: None, NET_TX: None,
        PSI_CPU: None, PSI_MEMORY: None, PSI_IO: None,
    }
    if prev is None or seconds <= 0:
        return out
    total = cur.cpu_total - prev.cpu_total
    busy = cur.cpu_busy - prev.cpu_busy
    if total > 0 and busy >= 0:
        out[CPU] = min(busy / total, 1.0)
    out[DISK_READ] = rate(prev.disk_read, cur.disk_read, seconds)
    out[DISK_WRITE] = rate(prev.disk_written, cur.disk_written, seconds)
    out[NET_RX] = rate(prev.net_rx, cur.net_rx, seconds)
    out[NET_TX] = rate(prev.net_tx, cur.net_tx, seconds)
    for resource, metric in PRESSURE.items():
        stalled = rate(prev.stall.get(resource), cur.stall.get(resource), seconds)
        # Microseconds stalled per second of the interval: the share of the time.
        out[metric] = None if stalled is None else min(stalled / 1e6, 1.0)
    return out


def vm_figures(prev: VmReading | None, cur: VmReading, cores: int | None,
               memory_bytes: int | None) -> Figures:
    """`cores` and `memory_bytes`: the VM's configuration (None: not known here). cpu is the
    QEMU process's CPU time per second of the interval over the VM's cores: 1.0 is every
    vCPU busy; QEMU's own threads can take it a little above."""
    same = prev is not None and prev.pid == cur.pid
    seconds = cur.at - prev.at if prev is not None and same else 0.0
    out: Figures = {
        CPU: None, MEMORY_USED: float(cur.resident_bytes),
        MEMORY_TOTAL: None if memory_bytes is None else float(memory_bytes),
        DISK_READ: None, DISK_WRITE: None, NET_RX: None, NET_TX: None,
    }
    if prev is None or not same or seconds <= 0:
        return out
    used = rate(prev.cpu_seconds, cur.cpu_seconds, seconds)
    if used is not None and cores:
        out[CPU] = used / cores
    out[DISK_READ] = rate(prev.disk_read, cur.disk_read, seconds)
    out[DISK_WRITE] = rate(prev.disk_written, cur.disk_written, seconds)
    out[NET_RX] = rate(prev.net_rx, cur.net_rx, seconds)
    out[NET_TX] = rate(prev.net_tx, cur.net_tx, seconds)
    return out


def busy_cores(prev: HostReading | None, cur: HostReading) -> float | None:
    """CPU seconds per second the host's CPUs were busy, all of them together."""
    if prev is None or cur.at <= prev.at:
        return None
    return rate(prev.cpu_busy, cur.cpu_busy, cur.at - prev.at)


def cores_used(prev: VmReading | None, cur: VmReading) -> float | None:
    """CPU seconds per second of a VM's QEMU process; None without a previous reading of
    the same process."""
    if prev is None or prev.pid != cur.pid or cur.at <= prev.at:
        return None
    return rate(prev.cpu_seconds, cur.cpu_seconds, cur.at - prev.at)


# --- parsing what the kernel and QEMU say --------------------------------------------------

def cpu_busy_total(times: Mapping[str, float]) -> tuple[float, float]:
    """(busy, total) CPU seconds from the fields of /proc/stat's cpu line (psutil's
    cpu_times). guest and guest_nice are counted in user and nice already; iowait is idle."""
    total = sum(times.values()) - times.get("guest", 0.0) - times.get("guest_nice", 0.0)
    return total - times.get("idle", 0.0) - times.get("iowait", 0.0), total


SECTOR = 512  # /proc/diskstats counts 512-byte sectors whatever the device's own size


def disk_bytes(diskstats: str, disks: Collection[str]) -> tuple[int, int]:
    """(read, written) bytes of `disks` from /proc/diskstats. Only whole physical disks are
    given: partitions, device-mapper and md devices would count the same I/O again."""
    read = written = 0
    for line in diskstats.splitlines():
        fields = line.split()
        if len(fields) >= 10 and fields[2] in disks:
            read += int(fields[5]) * SECTOR
            written += int(fields[9]) * SECTOR
    return read, written


def net_bytes(net_dev: str) -> dict[str, tuple[int, int]]:
    """interface -> (received, sent) bytes, from /proc/net/dev."""
    out: dict[str, tuple[int, int]] = {}
    for line in net_dev.splitlines():
        name, colon, rest = line.partition(":")
        fields = rest.split()
        if colon and len(fields) >= 9 and fields[0].isdigit():
            out[name.strip()] = (int(fields[0]), int(fields[8]))
    return out


def counted_interfaces(names: Collection[str], physical: Collection[str]) -> set[str]:
    """The host's physical NICs: bridges, taps, bonds and VLANs over them would count the
    same traffic again. A host with none (a lab host in its network namespace): every
    interface but loopback."""
    nics = {n for n in names if n in physical}
    return nics or {n for n in names if n != "lo"}


def stall_total(pressure: str) -> float | None:
    """The "some" total (microseconds) of a /proc/pressure file."""
    for line in pressure.splitlines():
        kind, _, rest = line.partition(" ")
        if kind != "some":
            continue
        for part in rest.split():
            key, _, value = part.partition("=")
            if key == "total" and value.isdigit():
                return float(value)
    return None


def blockstats_bytes(reply: Any) -> tuple[int, int] | None:
    """(read, written) bytes of all the guest's disks from QMP query-blockstats; None when
    the reply is not such a list. A VM without disks reads and writes nothing."""
    if not isinstance(reply, list):
        return None
    read = written = 0
    for device in reply:
        stats = device.get("stats") if isinstance(device, dict) else None
        if not isinstance(stats, dict):
            return None
        rd, wr = stats.get("rd_bytes"), stats.get("wr_bytes")
        if not isinstance(rd, int) or not isinstance(wr, int):
            return None
        read += rd
        written += wr
    return read, written

