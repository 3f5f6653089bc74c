"""One scrape's output: this process's instruments, plus the cluster's metrics when there is
a cluster view to show.

prometheus_client collects synchronously, but the cluster view is read asynchronously (from
etcd, or later from a watch-fed copy in memory). So the caller awaits the view first, and each
scrape renders a registry of its own whose collector returns that view: the process-wide
registry is never handed a collector that would block on I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from corral.cluster.snapshot import ClusterSnapshot
from corral.ha.models import HAInputs
from corral.metrics.cluster import cluster_metrics

ClusterState = tuple[ClusterSnapshot, HAInputs]
CONTENT_TYPE = CONTENT_TYPE_LATEST


class _Delegate(Collector):
    """Another registry's metrics, collected when this one is."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        yield from self.registry.collect()


class _Fixed(Collector):
    def __init__(self, metrics: Iterable[Metric]) -> None:
        self.metrics = list(metrics)

    def collect(self) -> Iterator[Metric]:
        yield from self.metrics


def render(view: ClusterState | None = None, process: CollectorRegistry = REGISTRY,
           extra: Iterable[Metric] = ()) -> bytes:
    """Prometheus text format: the process registry's metrics, the cluster's from view, and
    extra ones made for this scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Delegate(process))
    if view is not None:
        registry.register(_Fixed(cluster_metrics(*view)))
    registry.register(_Fixed(extra))
    return generate_latest(registry)
