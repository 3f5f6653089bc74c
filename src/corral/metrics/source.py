"""The cluster as /metrics shows it: the snapshot and HA inputs from the API's watch-fed
view (consistent with etcd at the scrape, and nothing decoded again that did not change)."""

from __future__ import annotations

import time

from corral.cluster.view import ClusterView
from corral.ha.store import read_all_from
from corral.metrics.exposition import ClusterState, SnapshotSource


def from_view(view: ClusterView) -> SnapshotSource:
    async def read() -> ClusterState:
        return await read_all_from(view, time.time())

    return read
