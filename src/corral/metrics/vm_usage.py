"""What each VM uses, from its QEMU process on this host: sampled when an agent's /metrics is
scraped (nothing is kept or written to etcd), so Prometheus holds the history.

`sample` reads the processes (psutil); `vm_usage_metrics` is pure.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass

import psutil
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from corral.metrics import names


@dataclass(frozen=True)
class ProcessSample:
    cpu_seconds: float
    resident_bytes: int
    read_bytes: int | None  # None: the kernel does not say (no I/O accounting)
    written_bytes: int | None


def sample(running: Mapping[int, int]) -> dict[int, ProcessSample]:
    """vmid -> its QEMU's figures, for the processes that still exist (vmid -> pid in)."""
    out: dict[int, ProcessSample] = {}
    for vmid, pid in running.items():
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            with proc.oneshot():
                cpu = proc.cpu_times()
                rss = proc.memory_info().rss
                read: int | None = None
                written: int | None = None
                with contextlib.suppress(psutil.Error, AttributeError):
                    io = proc.io_counters()
                    read, written = int(io.read_bytes), int(io.write_bytes)
            out[vmid] = ProcessSample(cpu.user + cpu.system, int(rss), read, written)
    return out


def vm_usage_metrics(host: str, samples: Mapping[int, ProcessSample]) -> list[Metric]:
    def counter(spec: names.Spec) -> CounterMetricFamily:
        # prometheus_client adds "_total" to a counter family's samples itself.
        return CounterMetricFamily(spec.name.removesuffix("_total"), spec.help,
                                   labels=spec.labels)

    cpu, read, written = (counter(names.VM_CPU_SECONDS), counter(names.VM_DISK_READ),
                          counter(names.VM_DISK_WRITTEN))
    rss = GaugeMetricFamily(names.VM_RSS.name, names.VM_RSS.help, labels=names.VM_RSS.labels)
    for vmid, s in sorted(samples.items()):
        labels = [host, str(vmid)]
        cpu.add_metric(labels, s.cpu_seconds)
        rss.add_metric(labels, s.resident_bytes)
        if s.read_bytes is not None and s.written_bytes is not None:
            read.add_metric(labels, s.read_bytes)
            written.add_metric(labels, s.written_bytes)
    return [cpu, rss, read, written]
