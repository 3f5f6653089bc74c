"""Today's cluster view for the metrics: one etcd read of the snapshot and the HA inputs."""

from __future__ import annotations

import time

from corral.cluster.store import Store
from corral.ha.store import read_all
from corral.metrics.exposition import ClusterView, SnapshotSource


def from_store(store: Store) -> SnapshotSource:
    async def read() -> ClusterView:
        return await read_all(store, time.time())

    return read
