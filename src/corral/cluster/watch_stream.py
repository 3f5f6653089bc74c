"""etcd's watch stream, read a whole response at a time.

aetcd hands watch events over one by one, so a reader cannot tell where one revision's
events end; the view must never show half of a transaction. Here each response is one batch,
and etcd never splits one revision's events across responses (we do not ask it to fragment).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aetcd.utils
from aetcd import rpc

from corral.cluster.view_state import Change

# Without it a member cut off from the majority keeps the stream open and silent: the view
# would go stale with no error. With it etcd ends the stream once the member has no leader.
REQUIRE_LEADER = ("hasleader", "true")


class WatchCompacted(Exception):
    """The revision to resume from is gone: list again."""

    def __init__(self, compact_revision: int) -> None:
        super().__init__(f"etcd compacted its history up to revision {compact_revision}")
        self.compact_revision = compact_revision


class WatchLost(Exception):
    """etcd ended the watch (no leader, a member going away, cancelled)."""


@dataclass(frozen=True)
class WatchBatch:
    changes: list[Change]
    revision: int  # every change up to this revision has been delivered


def _changes(events: Any) -> list[Change]:
    return [Change(ev.kv.key.decode(), None if ev.type == rpc.Event.DELETE else ev.kv.value,
                   int(ev.kv.mod_revision)) for ev in events]


async def watch_batches(channel: Any, metadata: Any, prefix: str, start_revision: int
                        ) -> AsyncIterator[WatchBatch]:
    """Batches of changes under prefix from start_revision on, until the stream breaks
    (WatchCompacted, WatchLost, or gRPC's own error)."""
    key = prefix.encode()
    create = rpc.WatchRequest(create_request=rpc.WatchCreateRequest(
        key=key, range_end=aetcd.utils.prefix_range_end(key), start_revision=start_revision))
    done = asyncio.Event()

    async def requests() -> AsyncIterator[Any]:
        yield create
        await done.wait()  # closing our side would end the watch

    call = rpc.WatchStub(channel).Watch(requests(), metadata=(REQUIRE_LEADER, *(metadata or ())))
    try:
        async for response in call:
            if response.compact_revision:
                raise WatchCompacted(int(response.compact_revision))
            if response.canceled:
                raise WatchLost(response.cancel_reason or "etcd cancelled the watch")
            if response.events:
                changes = _changes(response.events)
                yield WatchBatch(changes, max(c.revision for c in changes))
        raise WatchLost("etcd ended the watch stream")
    finally:
        done.set()
        with contextlib.suppress(Exception):
            call.cancel()
