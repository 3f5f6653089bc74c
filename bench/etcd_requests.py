"""What the cluster asks of etcd during a window: requests by gRPC method, proposals committed
and WAL fsyncs, from each member's own /metrics (etcd's counters, read before and after).

Three members share the bench machine's cores with everything else, so their CPU is a large
part of the load; these figures say which requests it goes to.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import httpx
from prometheus_client.parser import text_string_to_metric_families

# Counters of etcd 3.4's default (basic) metrics, as (metric family, what to call it).
PROPOSALS = "etcd_server_proposals_committed_total"
FSYNC = "etcd_disk_wal_fsync_duration_seconds"


def scrape(client_urls: Sequence[str], timeout: float = 5.0) -> dict[str, float]:
    """The counters summed over members: "grpc <Method>" per unary call or stream opened,
    "proposals" committed (each member counts the same ones; the leader's are taken), and
    "fsyncs" of the WAL (every member's)."""
    total: defaultdict[str, float] = defaultdict(float)
    proposals = 0.0
    for url in client_urls:
        text = httpx.get(f"{url}/metrics", timeout=timeout).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "grpc_server_handled_total":
                    total[f"grpc {sample.labels.get('grpc_method', '?')}"] += sample.value
                elif sample.name == PROPOSALS:
                    proposals = max(proposals, sample.value)
                elif sample.name == f"{FSYNC}_count":
                    total["fsyncs"] += sample.value
    total["proposals"] = proposals
    return dict(total)


def per_second(before: dict[str, float], after: dict[str, float], seconds: float) -> str:
    """One line: the busiest counters first, per second of the window."""
    rates = {k: (v - before.get(k, 0.0)) / seconds for k, v in after.items()}
    grpc = sorted(((k.removeprefix("grpc "), v) for k, v in rates.items()
                   if k.startswith("grpc ") and v >= 0.05), key=lambda kv: -kv[1])
    parts = [f"{name} {rate:.0f}" for name, rate in grpc]
    return (f"etcd requests/s over all members: {', '.join(parts) or 'none'}; "
            f"proposals committed/s {rates.get('proposals', 0.0):.0f}; "
            f"WAL fsyncs/s (all members) {rates.get('fsyncs', 0.0):.0f}")
