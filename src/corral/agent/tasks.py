"""Claims the tasks addressed to this host and runs them, one at a time per VM."""

from __future__ import annotations

import asyncio
import logging
import time

from corral.agent.claims import Claims
from corral.agent.context import HostContext, TaskFailed, placed_of
from corral.agent.handlers import HANDLERS
from corral.agent.reconciler import accept_task
from corral.cluster import keys
from corral.cluster.models import Task, TaskState
from corral.cluster.records import Problem, UnreadableRecord, decode

log = logging.getLogger(__name__)

class TaskRunner:
    def __init__(self, ctx: HostContext) -> None:
        self.ctx = ctx
        self.claims = Claims()  # VMs a task is working on: the monitor leaves them be
        self._locks: dict[int, asyncio.Lock] = {}
        self._running: set[asyncio.Task[None]] = set()
        self.shutting_down = False  # the host shuts down: no guest is brought up any more

    async def run(self) -> None:
        store = self.ctx.store
        items, rev = await store.snapshot(keys.TASKS)
        for key, value, mod_rev in items:
            task = _decode(key, value)
            if task is None or not self._mine(task):
                continue
            if task.state is TaskState.QUEUED:
                self._spawn(task, mod_rev)
            elif task.state is TaskState.RUNNING:
                # This host's agent died mid-task: the monitor reports the VM's real state.
                await self._finish(task, error="the agent restarted while the task ran")
        async for ev in store.watch_prefix(keys.TASKS, start_revision=rev + 1):
            if ev.value is None:
                continue
            task = _decode(ev.key, ev.value)
            if task is not None and self._mine(task) and task.state is TaskState.QUEUED:
                self._spawn(task, ev.revision)

    async def stop(self, grace: float = 5.0) -> None:
        """Cancel the tasks still running; their records are failed by the next agent."""
        for t in self._running:
            t.cancel()
        if self._running:
            await asyncio.wait(self._running, timeout=grace)

    async def drain(self, timeout: float) -> None:
        """Let the tasks in flight finish (the caller has stopped `run`, so none is taken
        any more), then cancel what is left: a start cancelled mid-launch could leave a QEMU
        coming up after its host said none runs."""
        if self._running:
            await asyncio.wait(self._running, timeout=timeout)
        await self.stop()

    def _mine(self, task: Task) -> bool:
        # Kinds without a handler here (bulk actions) belong to the manager.
        return task.node == self.ctx.node and task.kind in HANDLERS

    def _spawn(self, task: Task, rev: int) -> None:
        t = asyncio.create_task(self._claim_and_run(task, rev))
        self._running.add(t)
        t.add_done_callback(self._running.discard)

    async def _claim_and_run(self, task: Task, rev: int) -> None:
        store = self.ctx.store
        current = task.model_copy(update={"state": TaskState.RUNNING, "started_at": time.time()})
        if not await store.claim_task(task, rev, current):
            return  # someone else changed it first
        vmid = task.vmid if task.vmid is not None else -1
        lock = self._locks.setdefault(vmid, asyncio.Lock())
        async with lock:
            self.claims.take(vmid)
            try:
                await self._execute(current)
            finally:
                self.claims.release(vmid)

    async def _execute(self, task: Task) -> None:
        try:
            vm = await self.ctx.store.vm(task.vmid) if task.vmid is not None else None
        except UnreadableRecord as e:  # not gone, but nothing to act on safely either
            await self._finish(task, error=f"VM {task.vmid} cannot be read: {e}")
            return
        lease = self.ctx.lease
        verdict = accept_task(task.kind, placed_of(vm), self.ctx.node,
                              lease is not None and lease.known_alive(), HANDLERS,
                              self.shutting_down)
        handler = HANDLERS.get(task.kind)
        if not verdict.ok or handler is None or vm is None:
            # The VM moved (HA recovery, migration) after this task was queued, or this host
            # lost its lease: acting on it here could run it on two hosts. Handlers that run
            # a guest prove ownership again right before doing so.
            await self._finish(task, error=verdict.reason or "refused")
            return
        state = task

        async def report(progress: float, line: str) -> None:
            nonlocal state
            state = state.with_log(line).model_copy(update={"progress": progress})
            await self.ctx.store.put_task(state)

        try:
            result = await handler(self.ctx, task, vm, report)
        except (TaskFailed, ValueError, OSError, TimeoutError) as e:
            await self._finish(state, error=str(e) or type(e).__name__)
        except Exception as e:
            log.exception("task %s (%s) failed", task.id, task.kind)
            await self._finish(state, error=f"{type(e).__name__}: {e}")
        else:
            await self._finish(state, result=result)

    async def _finish(self, task: Task, error: str | None = None,
                      result: dict[str, object] | None = None) -> None:
        done = task.model_copy(update={
            "state": TaskState.ERROR if error else TaskState.OK,
            "error": error,
            "result": result or {},
            "progress": 1.0,
            "ended_at": time.time(),
        })
        await self.ctx.store.put_task(done.with_log(f"error: {error}" if error else "done"))


def _decode(key: str, value: bytes) -> Task | None:
    """A task record, or None (logged) when it does not decode: one bad record must not end
    the task loop, which would end the agent."""
    problems: list[Problem] = []
    task = decode(Task, key, value, problems)
    for p in problems:
        log.warning("skipping a task record that does not decode: %s", p)
    return task
