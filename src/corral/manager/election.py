"""Manager election on etcd: whoever creates /corral/manager, bound to its host's lease, leads.

The key's mod revision when we won is the term's fencing token: every write of the manager
is a transaction conditioned on it (see loop.py), so a leader that lost the key without
noticing yet (a stalled watch, a paused process) cannot change anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from corral.cluster import keys
from corral.cluster.store import Store

log = logging.getLogger(__name__)

# How often the key is read again, in case a watch stalls silently (a partitioned member).
CHECK_SECONDS = 2.0


class Election:
    def __init__(self, store: Store, name: str, lease: Callable[[], Any]) -> None:
        self.store = store
        self.name = name
        # The host's lease can be replaced (after an expiry): always campaign with the current.
        self.lease = lease

    async def holder(self) -> tuple[str | None, int, int]:
        """Who holds the key, its lease id and mod revision (None, 0, 0 when free)."""
        kv = await self.store.client.get(keys.MANAGER.encode())
        if kv is None:
            return None, 0, 0
        return kv.value.decode(), int(kv.lease), int(kv.mod_revision)

    async def campaign(self) -> int | None:
        """Create the key if nobody holds it; our term's token when we hold it, else None."""
        lease = self.lease()
        if lease is None:
            return None
        t = self.store.client.transactions
        key = keys.MANAGER.encode()
        await self.store.client.transaction(
            compare=[t.version(key) == 0],
            success=[t.put(key, self.name.encode(), lease=lease)],
            failure=[],
        )
        # Read back rather than trust the reply: a retried request may have won the first time.
        name, lease_id, rev = await self.holder()
        # Our name on another lease is a previous life of this agent (killed, restarted): that
        # key dies with its lease, and only then do we lead again.
        return rev if name == self.name and lease_id == int(lease.id) else None

    async def win(self) -> int:
        """Campaign until we lead; returns the term's token."""
        while True:
            try:
                token = await self.campaign()
                if token is not None:
                    log.info("%s leads the cluster (term %s)", self.name, token)
                    return token
                name, _, rev = await self.holder()
                if name is not None:
                    await self._until_changed(rev)
                    continue
            except Exception as e:  # etcd unreachable, lease gone: the next try decides
                log.warning("manager campaign failed: %s", e)
            await asyncio.sleep(1.0)

    async def lost(self, token: int) -> None:
        """Returns once the key is no longer ours."""
        while True:
            await self._until_changed(token)
            try:
                name, lease_id, rev = await self.holder()
            except Exception as e:
                log.warning("cannot read the manager key: %s", e)
                continue  # the fenced writes keep a stale leader harmless meanwhile
            if rev != token:
                log.info("%s no longer leads (key now %s)", self.name, name)
                return

    async def _until_changed(self, rev: int) -> None:
        """Wait for an event on the key after revision rev, or CHECK_SECONDS."""

        async def first_event() -> None:
            async for ev in self.store.watch_prefix(keys.MANAGER, start_revision=rev + 1):
                if ev.key == keys.MANAGER:
                    return

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CHECK_SECONDS):
                await first_event()

    async def resign(self, token: int) -> None:
        """Give the key up at once (clean shutdown), only if it is still this term's."""
        t = self.store.client.transactions
        key = keys.MANAGER.encode()
        with contextlib.suppress(Exception):
            await self.store.client.transaction(
                compare=[t.mod(key) == token], success=[t.delete(key)], failure=[])
