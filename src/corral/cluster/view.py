"""The watch-fed view of the cluster: the records under /corral/ listed once at a revision,
then kept current by an etcd watch, so a read costs what its answer costs, not what the
cluster holds.

Reads are consistent: `current()` asks etcd for its revision (one small linearizable read)
and waits until the view has applied it, so a read after any finished write (yours or
anyone's) sees that write, as reading etcd itself would. Writes do not go through the view:
they stay etcd transactions conditioned on revisions.

A broken stream resumes at the next revision; when etcd has compacted that revision away, or
the view falls behind for longer than a catch-up allows, it lists everything again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from corral.aio import cancel_and_wait
from corral.cluster import keys
from corral.cluster.snapshot import ClusterSnapshot
from corral.cluster.store import Store, StoreUnavailable
from corral.cluster.view_state import ViewState
from corral.cluster.watch_stream import WatchCompacted, watch_batches

log = logging.getLogger(__name__)

# How long a consistent read waits for the watch to deliver a revision etcd already has. On
# one machine it takes milliseconds; past this the stream is taken for stuck and replaced.
CATCH_UP_SECONDS = 2.0
# A leader election takes a second or two; longer than this, the store is out of reach.
READ_SECONDS = 4.0
# Once a read found the store out of reach, and until one finds it again, reads wait only
# this long: a host cut off from etcd says so at once, and its clients go to another host.
OUT_OF_REACH_READ_SECONDS = 0.5
RETRY_SECONDS = (0.1, 0.2, 0.5, 1.0)

Listener = Callable[[list[str] | None], None]  # changed keys; None: listed anew (anything)


class ClusterView:
    def __init__(self, store: Store, prefix: str = keys.PREFIX) -> None:
        self.store = store
        self.state = ViewState(prefix)
        self.listings = 0  # how often everything was listed (the first time included)
        self._listeners: list[Listener] = []
        self._moved = asyncio.Event()
        self._follower: asyncio.Task[None] | None = None
        self._relisting = asyncio.Lock()
        self._pending: asyncio.Task[int] | None = None  # a revision request not yet sent
        self._asking: asyncio.Task[int] | None = None  # the one on its way
        self._out_of_reach = False  # the last read's revision did not come in time

    async def __aenter__(self) -> ClusterView:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        await self._list()
        self._follow_from_now()

    async def close(self) -> None:
        await self._stop_following()
        # Revision requests still out would otherwise outlive the view (and its store).
        asking = [t for t in (self._pending, self._asking) if t is not None and not t.done()]
        self._pending = self._asking = None
        await cancel_and_wait(asking)

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call listener after each change applied; returns how to stop."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    @property
    def revision(self) -> int:
        return self.state.revision

    # --- reads -----------------------------------------------------------------------------

    def snapshot(self, now: float) -> ClusterSnapshot:
        """What the view holds now: fast, and as fresh as the watch (for decisions that
        re-check with etcd anyway, or that only need to be eventually right)."""
        return self.state.snapshot(now)

    async def current(self, now: float) -> ClusterSnapshot:
        """A snapshot that includes every write etcd had finished when this was called."""
        return (await self.caught_up()).snapshot(now)

    async def caught_up(self) -> ViewState:
        """The state once it includes every write etcd had finished when this was called:
        for an answer that reads a few records of it, without the cost of a snapshot.
        It moves on with the watch: what is read after a later await may be newer, never
        older; records read together without an await between them agree.
        StoreError when etcd does not tell its revision within READ_SECONDS (no quorum in
        reach): no answer rather than a stale one, and soon enough to try another host."""
        wait = OUT_OF_REACH_READ_SECONDS if self._out_of_reach else READ_SECONDS
        try:
            async with asyncio.timeout(wait):
                revision = await asyncio.shield(self._revision_now())
        except TimeoutError:
            self._out_of_reach = True
            raise StoreUnavailable(
                f"etcd did not answer within {wait:g}s" + (
                    " (nor the reads before)" if wait < READ_SECONDS else "")) from None
        except Exception:
            self._out_of_reach = True
            raise
        self._out_of_reach = False
        await self.catch_up(revision)
        return self.state

    def _revision_now(self) -> asyncio.Task[int]:
        """etcd's revision, asked after this call: readers that come while one request is
        on its way share the next one (sent once that returns), so a burst of reads costs
        etcd two requests, not one each, and each still sees every write finished before
        it came."""
        if self._pending is None:
            self._pending = asyncio.create_task(self._ask_revision(self._asking))
        return self._pending

    async def _ask_revision(self, before: asyncio.Task[int] | None) -> int:
        if before is not None:
            await asyncio.wait([before])
        self._asking, self._pending = self._pending, None  # later readers wait for the next
        return await self.store.current_revision()

    async def catch_up(self, revision: int) -> None:
        """Return once the view has applied revision; list anew if the watch cannot get there
        in time (a stalled stream must not serve stale answers forever)."""
        if await self.wait_for(revision, CATCH_UP_SECONDS):
            return
        async with self._relisting:
            if self.revision >= revision:
                return  # another reader's listing got there
            log.warning("the view is stuck at revision %s, etcd is at %s: listing again",
                        self.revision, revision)
            await self._stop_following()
            try:
                await self._list()
            finally:
                self._follow_from_now()

    async def wait_for(self, revision: int, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.revision < revision:
            left = deadline - loop.time()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self._moved.wait()
        return True

    # --- feeding ---------------------------------------------------------------------------

    async def _list(self) -> None:
        items, revision = await self.store.snapshot(self.state.prefix)
        self.state.reset(items, revision)
        self.listings += 1
        self._changed(None)

    def _follow_from_now(self) -> None:
        self._follower = asyncio.create_task(self._follow(), name="cluster-view")

    async def _stop_following(self) -> None:
        task, self._follower = self._follower, None
        if task is not None:
            await cancel_and_wait([task])

    async def _follow(self) -> None:
        failures = 0
        while True:
            try:
                channel, metadata = self.store.watch_channel()
                async for batch in watch_batches(channel, metadata, self.state.prefix,
                                                 self.state.revision + 1):
                    failures = 0
                    changed = self.state.apply(batch.changes)
                    self.state.advance(batch.revision)
                    self._changed(changed or [])
            except WatchCompacted as e:
                log.info("%s; listing the cluster again", e)
                await self._list_until_done()
                continue
            except Exception as e:  # a member gone, no leader: resume where the view is
                log.debug("the cluster watch broke (%s); resuming at revision %s", e,
                          self.state.revision + 1)
            await asyncio.sleep(RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)])
            failures += 1

    async def _list_until_done(self) -> None:
        for attempt in range(1_000_000):
            try:
                await self._list()
                return
            except Exception as e:
                log.warning("cannot list the cluster (%s); trying again", e)
                await asyncio.sleep(RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)])

    def _changed(self, changed: list[str] | None) -> None:
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()  # waiters look at the revision again
        if changed == []:
            return
        for listener in list(self._listeners):
            try:
                listener(changed)
            except Exception:
                log.exception("a cluster view listener failed")

