"""Per-VM usage as Prometheus families, from plain samples."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from corral.metrics.vm_usage import ProcessSample, vm_usage_metrics


class Fixed(Collector):
    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> list[Metric]:
        return self.metrics


def text(metrics: list[Metric]) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Fixed(metrics))
    return generate_latest(registry).decode()


def test_each_vm_gets_its_figures_under_its_host() -> None:
    out = text(vm_usage_metrics("n2", {
        101: ProcessSample(cpu_seconds=12.5, resident_bytes=300_000_000, read_bytes=4096,
                           written_bytes=8192),
        102: ProcessSample(cpu_seconds=0.5, resident_bytes=1000, read_bytes=None,
                           written_bytes=None),
    }))
    assert 'corral_vm_cpu_seconds_total{host="n2",vmid="101"} 12.5' in out
    assert 'corral_vm_memory_resident_bytes{host="n2",vmid="101"} 3e+08' in out
    assert 'corral_vm_disk_read_bytes_total{host="n2",vmid="101"} 4096.0' in out
    assert 'corral_vm_disk_written_bytes_total{host="n2",vmid="101"} 8192.0' in out
    # A process whose I/O the kernel does not account shows no disk figures, not zeros.
    assert 'corral_vm_cpu_seconds_total{host="n2",vmid="102"} 0.5' in out
    assert 'vmid="102"' not in "".join(line for line in out.splitlines(True)
                                       if line.startswith("corral_vm_disk"))
