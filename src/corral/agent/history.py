"""The host's usage history: every 10 s the agent samples its host and each VM it runs (the
QEMU process for CPU and memory, QMP for the guest's disk I/O), folds the figures into the
archives of `usage.rrd`, and keeps them in files under `<data dir>/usage` (written whole,
atomically, once a minute and when the agent stops). The console endpoint answers windows of
them, which the API relays.

Sampling costs the event loop little: the /proc reads run in a worker thread, QMP exchanges
are short and bounded, and the files are compressed and written in a worker thread. A
failing sample is logged and skipped; it never ends the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from corral.cluster.models import RecentUsage
from corral.cluster.snapshot import ClusterSnapshot
from corral.qemu.driver import QemuDriver
from corral.usage import figures, readings, recent, rrd
from corral.usage.figures import HOST_METRICS, VM_METRICS

log = logging.getLogger(__name__)

SAMPLE_SECONDS = 10.0  # the hour archive's step: about one sample per slot
PERSIST_SECONDS = 60.0  # what an agent killed outright loses at most
QMP_SECONDS = 2.0  # a QEMU that does not answer within this has no disk figures this time
NODE_FILE = "node.rrd"
_VM_FILE = re.compile(r"^vm-(\d+)\.rrd$")
MIB = 1024 * 1024


def vm_file(vmid: int) -> str:
    return f"vm-{vmid}.rrd"


def next_sample_at(now: float, interval: float) -> float:
    """The next middle of a slot: a sample late or early by up to half a slot still lands
    in the slot it belongs to."""
    half = interval / 2
    return (math.floor((now - half) / interval) + 1) * interval + half


class UsageHistory:
    def __init__(self, node: str, directory: Path, driver: QemuDriver,
                 snapshot: Callable[[], ClusterSnapshot],
                 interval: float = SAMPLE_SECONDS,
                 persist_every: float = PERSIST_SECONDS, own_machine: bool = True) -> None:
        self.node = node
        # False: the machine's CPU load is not this host's alone (lab hosts share one).
        self.own_machine = own_machine
        self.directory = directory
        self.driver = driver
        self.snapshot = snapshot  # the VMs' configurations: cores, memory
        self.interval = interval
        self.persist_every = persist_every
        self.host = rrd.Rrd(HOST_METRICS)
        self.vms: dict[int, rrd.Rrd] = {}  # the VMs sampled since the last write
        # The last minutes, from the same passes, for the record published in etcd.
        self.recent = recent.RecentWindow()
        self._prev_host: figures.HostReading | None = None
        self._prev_vms: dict[int, figures.VmReading] = {}
        self._dirty: set[int | None] = set()  # None: the host
        self._last_error = ""
        self.samples = 0  # passes done, for tests and the log

    # --- files -----------------------------------------------------------------------------

    def _path(self, vmid: int | None) -> Path:
        return self.directory / (NODE_FILE if vmid is None else vm_file(vmid))

    def _load(self, vmid: int | None) -> rrd.Rrd:
        metrics = HOST_METRICS if vmid is None else VM_METRICS
        path = self._path(vmid)
        try:
            return rrd.decode(path.read_bytes(), metrics)
        except FileNotFoundError:
            return rrd.Rrd(metrics)
        except (OSError, ValueError) as e:
            log.warning("usage history %s unreadable, starting anew: %s", path, e)
            return rrd.Rrd(metrics)

    async def load(self) -> None:
        """The host's archives as the previous agent left them."""
        self.host = await asyncio.to_thread(self._load, None)

    def _write(self, files: list[tuple[Path, bytes, bytes]], gone: Iterable[Path]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for path, header, rings in files:
            tmp = path.with_name(f".{path.name}.tmp")
            with tmp.open("wb") as fh:
                fh.write(rrd.pack(header, rings))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)  # a reader or a crash sees the old file or the new one
        for path in gone:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _stored_vms(self) -> set[int]:
        try:
            names = os.listdir(self.directory)
        except OSError:
            return set()
        return {int(m.group(1)) for n in names if (m := _VM_FILE.match(n))}

    async def persist(self) -> None:
        """Write the archives that changed; drop from memory the VMs no longer running here
        (their file stays: the VM may come back) and delete the files of VMs that no longer
        exist in the cluster."""
        running = self.driver.running()
        files = [(self._path(k), *rrd.snapshot(self.host if k is None else self.vms[k]))
                 for k in sorted(self._dirty, key=lambda k: -1 if k is None else k)
                 if k is None or k in self.vms]
        self._dirty.clear()
        for vmid in set(self.vms) - set(running):
            del self.vms[vmid]
            self._prev_vms.pop(vmid, None)
        snap = self.snapshot()
        stored = await asyncio.to_thread(self._stored_vms)
        existing = set(snap.vms) | set(snap.unreadable_vms) | set(running)
        gone = [self._path(v) for v in sorted(stored - existing)] if snap.revision else []
        await asyncio.to_thread(self._write, files, gone)

    # --- sampling --------------------------------------------------------------------------

    async def _disk(self, vmid: int) -> tuple[int, int] | None:
        try:
            async with asyncio.timeout(QMP_SECONDS):
                reply = await self.driver.qmp(vmid, "query-blockstats")
        except Exception:  # busy, hung, gone: no disk figures this time
            return None
        return figures.blockstats_bytes(reply)

    async def sample(self) -> None:
        now = time.time()
        running = self.driver.running()
        host, procs = await asyncio.to_thread(
            lambda: (readings.read_host(), readings.read_processes(running)))
        vmids = sorted(procs)
        disks = await asyncio.gather(*(self._disk(v) for v in vmids))
        host_values = figures.host_figures(self._prev_host, host)
        self.host.add(now, host_values)
        busy = figures.busy_cores(self._prev_host, host) if self.own_machine else None
        self._prev_host = host
        demand: dict[int, recent.VmSample] = {}
        self._dirty.add(None)
        configs = self.snapshot().vms
        for vmid, disk in zip(vmids, disks, strict=True):
            p = procs[vmid]
            reading = figures.VmReading(p.at, p.pid, p.cpu_seconds, p.resident_bytes,
                                        disk[0] if disk else None, disk[1] if disk else None)
            vm = configs.get(vmid)
            values = figures.vm_figures(
                self._prev_vms.get(vmid), reading, vm.config.cores if vm else None,
                vm.config.memory_mb * MIB if vm else None)
            if vmid not in self.vms:
                self.vms[vmid] = await asyncio.to_thread(self._load, vmid)
            self.vms[vmid].add(now, values)
            demand[vmid] = recent.VmSample(
                figures.cores_used(self._prev_vms.get(vmid), reading), p.resident_bytes)
            self._prev_vms[vmid] = reading
            self._dirty.add(vmid)
        for vmid in set(self._prev_vms) - set(procs):
            del self._prev_vms[vmid]
        self.recent.add(now, recent.HostSample(host_values[figures.CPU], host.memory_used,
                                               busy), demand)
        self.samples += 1

    def recent_usage(self) -> RecentUsage | None:
        """The last minutes as published in etcd; None before the first pass."""
        return self.recent.record()

    def _failed(self, what: str, e: Exception) -> None:
        message = f"{what}: {e!r}"
        if message != self._last_error:  # once per kind of failure, not every 10 s
            log.warning("usage history %s", message)
        self._last_error = message

    async def run(self) -> None:
        """Sample each slot and write now and then, until cancelled; never raises."""
        written = time.monotonic()
        while True:
            await asyncio.sleep(max(0.0, next_sample_at(time.time(), self.interval)
                                    - time.time()))
            try:
                await self.sample()
                self._last_error = ""
            except Exception as e:
                self._failed("sample failed", e)
            if time.monotonic() - written >= self.persist_every:
                written = time.monotonic()
                try:
                    await self.persist()
                except Exception as e:
                    self._failed("not written", e)

    # --- answers ---------------------------------------------------------------------------

    async def window(self, vmid: int | None, range_name: str,
                     now: float | None = None) -> dict[str, object]:
        """The answer for the host (vmid None) or a VM: all gaps for a VM that never ran
        here."""
        if vmid is None:
            archives = self.host
        elif vmid in self.vms:
            archives = self.vms[vmid]
        else:
            archives = await asyncio.to_thread(self._load, vmid)
        at = time.time() if now is None else now
        return rrd.answer(archives.window(range_name, at, figures.DECIMALS), self.node, vmid)
