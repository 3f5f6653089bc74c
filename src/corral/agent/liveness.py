"""The host's lease: while it lives, the host is alive in the cluster's eyes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from corral.agent.reconciler import LeaseStep, after_renewal
from corral.cluster import keys
from corral.cluster.models import NodeInfo, NodeUsage, RecentUsage
from corral.cluster.records import dump
from corral.cluster.store import Store

log = logging.getLogger(__name__)
STALL_FACTOR = 1.5  # a renewal this many intervals after the previous one is logged


class Liveness:
    def __init__(self, store: Store, node: str, ttl: int, interval: float | None = None,
                 feed: Callable[[], object] | None = None) -> None:
        self.store = store
        self.node = node
        self.ttl = ttl
        self.interval = interval or ttl / 3
        # Called only after etcd confirmed the lease: the watchdog starves when renewal fails.
        self.feed = feed or (lambda: None)
        self.lease: Any = None
        self._confirmed_at = -float("inf")  # monotonic time etcd last confirmed the lease

    @property
    def lease_id(self) -> int | None:
        return int(self.lease.id) if self.lease is not None else None

    def known_alive(self) -> bool:
        """The lease was confirmed less than a TTL ago on this host's clock. A cheap check for
        accepting work; the proof of ownership before running a guest asks etcd itself."""
        return self.lease is not None and time.monotonic() - self._confirmed_at < self.ttl

    async def register(self, info: NodeInfo) -> None:
        # Static facts outlive the lease, so an offline host is still listed as offline.
        await self.store.put(keys.node(self.node, "info"), info)
        await self._new_lease()
        self.feed()

    async def _new_lease(self) -> None:
        sent = time.monotonic()
        lease = await self.store.grant_lease(self.ttl)
        await self.store.client.put(keys.node(self.node, "alive").encode(), b"1", lease=lease)
        self.lease, self._confirmed_at = lease, sent

    async def publish_usage(self, usage: NodeUsage) -> None:
        await self.store.client.put(
            keys.node(self.node, "usage").encode(), dump(usage), lease=self.lease
        )

    async def publish_recent(self, recent: RecentUsage) -> None:
        # Bound to the lease like usage: a host gone takes its figures with it.
        await self.store.client.put(
            keys.node(self.node, "recent").encode(), dump(recent), lease=self.lease
        )

    async def keep_alive(self) -> None:
        """Renew well within the TTL; a lease lost (etcd unreachable longer than the TTL) is
        replaced by a new one as soon as etcd answers again.

        Each attempt may take one interval at most, and a failed one is retried at once: a
        renewal stuck behind an etcd election must not starve the watchdog by itself.
        """
        fed = time.monotonic()
        while True:
            await asyncio.sleep(self.interval)
            while True:
                try:
                    async with asyncio.timeout(self.interval):
                        await self._renew()
                    self.feed()
                    fed = self._fed_after(fed)
                    break
                except Exception as e:  # etcd slow or unreachable: the watchdog decides
                    log.warning("lease renewal failed: %s", str(e) or type(e).__name__)
                    await asyncio.sleep(0.2)

    def _fed_after(self, previous: float) -> float:
        """Log a renewal that came late: how close the host came to its watchdog's timeout
        (a frozen process, a stalled etcd election, a starved CPU) shows in the log."""
        now = time.monotonic()
        if now - previous > STALL_FACTOR * self.interval:
            log.warning("lease renewed %.1fs after the previous renewal (every %.1fs)",
                        now - previous, self.interval)
        return now

    async def _renew(self) -> None:
        sent = time.monotonic()
        if after_renewal(await self.store.refresh_lease(self.lease)) is LeaseStep.REREGISTER:
            log.warning("lease of %s expired; registering again", self.node)
            await self._new_lease()
        else:
            self._confirmed_at = sent

    async def release(self) -> None:
        if self.lease is not None:
            with contextlib.suppress(Exception):
                await self.store.revoke_lease(self.lease)
