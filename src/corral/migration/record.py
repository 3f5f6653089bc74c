"""The migration record in etcd: where source and target agents of one migration meet.

Both agents write it, so every write is a compare-and-swap on the revision read, and a
record that has reached a final phase (completed, aborted) is never changed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Literal

from pydantic import Field

from corral.aio import cancel_and_wait
from corral.cluster import keys
from corral.cluster.models import Placement, Record
from corral.cluster.records import Problem, decode, dump, load_or_raise
from corral.cluster.store import Store

log = logging.getLogger(__name__)


class Phase(StrEnum):
    PREPARING = "preparing"  # the source created the record and queued the target's task
    READY = "ready"  # the target waits: incoming QEMU (live) and NBD exports are up
    TRANSFERRING = "transferring"  # the source is sending disks and RAM
    COMPLETED = "completed"  # placement flipped to the target: the target may run the guest
    ABORTED = "aborted"  # either side gave up; `error` says why

    @property
    def final(self) -> bool:
        return self in (Phase.COMPLETED, Phase.ABORTED)


class NbdEndpoint(Record):
    """Where the target exports one of its fresh volumes for the source to write into."""

    disk: int  # index in the VM's disk list
    host: str
    port: int
    export: str


class Stats(Record):
    """Bytes moved so far, as the source sees them."""

    ram_total: int = 0
    ram_transferred: int = 0
    ram_remaining: int = 0
    disk_total: int = 0
    disk_transferred: int = 0
    rate: float = 0.0  # bytes per second, RAM and disk together
    elapsed: float = 0.0  # seconds since the migration task started

    @property
    def total(self) -> int:
        return self.ram_total + self.disk_total

    @property
    def transferred(self) -> int:
        return self.ram_transferred + self.disk_transferred


class MigrationRecord(Record):
    vmid: int
    source: str
    target: str
    mode: Literal["live", "cold"]
    task: str  # the source's vm.migrate task
    receive_task: str  # the target's vm.receive task
    phase: Phase = Phase.PREPARING
    local_disks: list[int] = Field(default_factory=list)  # indexes of disks copied over
    resume: bool = True  # live: whether the target runs the guest (False: it was paused)
    # The VM's placement generation when the migration began: a source's paused copy may run
    # again only while the placement is still that one (None: written by an older version).
    source_generation: int | None = None
    migrate_uri: str | None = None  # live: where the target's QEMU listens
    nbd: list[NbdEndpoint] = Field(default_factory=list)
    tls: bool = False  # the target takes RAM and disks over TLS only
    stats: Stats = Field(default_factory=Stats)
    error: str | None = None
    updated_at: float = Field(default_factory=time.time)

    def flipped_in(self, placement: Placement) -> bool:
        """The placement is this migration's switchover (its task made it), whether or not
        the record has said so yet."""
        return placement.moved_by == self.task


def key(vmid: int) -> str:
    return keys.vm(vmid, "migration")


async def read(store: Store, vmid: int) -> tuple[MigrationRecord | None, int]:
    return await store.get(key(vmid), MigrationRecord)


async def replace(store: Store, rec: MigrationRecord, expect_rev: int) -> bool:
    """Write rec if the record is unchanged since expect_rev (0: if there is none)."""
    t = store.client.transactions
    k = key(rec.vmid).encode()
    compare = t.version(k) == 0 if expect_rev == 0 else t.mod(k) == expect_rev
    ok, _ = await store.client.transaction(compare=[compare], success=[t.put(k, dump(rec))],
                                           failure=[])
    return bool(ok)


async def update(store: Store, vmid: int,
                 change: Callable[[MigrationRecord], MigrationRecord | None],
                 ) -> MigrationRecord | None:
    """Apply change to the current record, retrying on concurrent writes.

    Returns the record as stored afterwards; change returning None (or a record already in a
    final phase) leaves it as it is. None when there is no record.
    """
    while True:
        rec, rev = await read(store, vmid)
        if rec is None:
            return None
        if rec.phase.final:
            return rec
        new = change(rec)
        if new is None:
            return rec
        new = new.model_copy(update={"updated_at": time.time()})
        if await replace(store, new, rev):
            return new


async def set_phase(store: Store, vmid: int, phase: Phase, error: str | None = None,
                    **fields: object) -> MigrationRecord | None:
    return await update(store, vmid, lambda r: r.model_copy(
        update={"phase": phase, "error": error or r.error, **fields}))


async def abort(store: Store, vmid: int, error: str) -> MigrationRecord | None:
    return await set_phase(store, vmid, Phase.ABORTED, error)


async def remove(store: Store, vmid: int, task_id: str) -> None:
    """Delete the record if it still belongs to task_id."""
    rec, rev = await read(store, vmid)
    if rec is None or rec.task != task_id:
        return
    t = store.client.transactions
    k = key(vmid).encode()
    await store.client.transaction(compare=[t.mod(k) == rev], success=[t.delete(k)], failure=[])


class Watch:
    """The latest record, kept current by an etcd watch, and a way to sleep until it changes.

    Both sides react to the other's writes within milliseconds this way (the switchover's
    downtime depends on it) without polling etcd in a tight loop.
    """

    def __init__(self, store: Store, vmid: int) -> None:
        self.store = store
        self.vmid = vmid
        self.record: MigrationRecord | None = None
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Watch:
        items, rev = await self.store.snapshot(key(self.vmid))
        found = [v for k, v, _ in items if k == key(self.vmid)]
        self.record = load_or_raise(MigrationRecord, key(self.vmid), found[0]) if found else None
        self._task = asyncio.create_task(self._follow(rev + 1))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])

    async def _follow(self, start: int) -> None:
        async for ev in self.store.watch_prefix(key(self.vmid), start_revision=start):
            if ev.key != key(self.vmid):
                continue
            if ev.value is None:
                self.record = None
            else:
                # A write that does not decode keeps the last record seen (and the watch
                # alive); the waiting side times out rather than acting on a guess.
                problems: list[Problem] = []
                rec = decode(MigrationRecord, ev.key, ev.value, problems)
                if rec is None:
                    log.warning("migration of VM %s: %s", self.vmid, problems[0])
                    continue
                self.record = rec
            self._changed.set()

    async def wait(self, timeout: float) -> None:
        """Return when the record changed or after timeout seconds, whichever comes first."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._changed.wait()
        self._changed.clear()
