"""The manager's shell: read a snapshot, decide, apply; only while this host leads.

Every write is an etcd transaction conditioned on the manager key still carrying this term's
revision, so a deposed leader's late writes fail instead of fighting the new leader's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

from corral.aio import cancel_and_wait
from corral.balancer.model import BalanceConfig
from corral.balancer.store import config_in, put_status, status_of
from corral.cluster import keys
from corral.cluster.actions import DeleteTask, QueueTask, SetPlacement, UpdateTask
from corral.cluster.records import Problem, dump
from corral.cluster.store import Store
from corral.cluster.view import ClusterView
from corral.ha.actions import ClearFenceConfirmation, HAAction, SaveHAState
from corral.ha.models import HATiming
from corral.ha.nodes import next_fence
from corral.ha.store import read_all_from
from corral.manager.balance import BalanceRound, round_due
from corral.manager.decide import decide_with_balance
from corral.manager.election import Election
from corral.manager.failures import RepeatedFailures
from corral.metrics.instruments import MANAGER_DECIDE, MANAGER_PASS

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0
# A burst of etcd changes (a migration reporting progress) wakes the manager once, not per key.
MIN_GAP_SECONDS = 0.2


class NotLeader(Exception):
    """The manager key is no longer this term's: stop deciding."""


class Manager:
    def __init__(self, store: Store, view: ClusterView, token: int,
                 timing: HATiming | None = None) -> None:
        self.store = store
        self.view = view
        self.token = token
        self.timing = timing or HATiming()
        self.changed = asyncio.Event()
        self.problems: frozenset[Problem] = frozenset()  # records skipped, as last logged
        self.next_fence: float | None = None  # monotonic: the earliest end of a fence wait
        self.last_round: float | None = None  # monotonic: the balancer's last round

    async def apply(self, action: HAAction) -> bool:
        """One action as one fenced transaction; False when its condition did not hold."""
        t = self.store.client.transactions
        fence = t.mod(keys.MANAGER.encode()) == self.token
        if isinstance(action, QueueTask):
            key = keys.task(action.task.id).encode()
            compare = [fence, t.version(key) == 0]  # queued once, whoever asks again
            ops = [t.put(key, dump(action.task))]
        elif isinstance(action, UpdateTask):
            compare = [fence]
            ops = [t.put(keys.task(action.task.id).encode(), dump(action.task))]
        elif isinstance(action, SaveHAState):
            compare = [fence]
            ops = [t.put(keys.HA_STATE.encode(), dump(action.state))]
        elif isinstance(action, DeleteTask):
            compare = [fence]
            ops = [t.delete(keys.task(action.task_id).encode())]
        elif isinstance(action, ClearFenceConfirmation):
            # Only while the host holds a lease: a confirmation written after it lost the
            # lease again is a new one, and stays.
            alive = keys.node(action.node, "alive").encode()
            compare = [fence, t.version(alive) > 0]
            ops = [t.delete(keys.ha_fenced(action.node).encode())]
        else:
            key = keys.vm(action.vmid, "placement").encode()
            compare = [fence, t.mod(key) == action.expect_rev]
            ops = [t.put(key, dump(action.placement))]
        ok, _ = await self.store.client.transaction(compare=compare, success=ops, failure=[])
        if not ok:
            kv = await self.store.client.get(keys.MANAGER.encode())
            if kv is None or int(kv.mod_revision) != self.token:
                raise NotLeader()
        return bool(ok)

    async def tick(self) -> list[HAAction]:
        with MANAGER_PASS.time():
            return await self._tick()

    async def _tick(self) -> list[HAAction]:
        snap, ha = await read_all_from(self.view, time.time())
        # Waits run on this process's monotonic clock within this term (see ha/nodes.py).
        ha = replace(ha, term=self.token, mono=time.monotonic())
        balance, balance_problems = config_in(self.view.state)
        self._report({*snap.problems, *ha.problems, *balance_problems})
        due = self._round_due(balance)
        decide = partial(decide_with_balance, snap, ha, self.timing, balance if due else None)
        with MANAGER_DECIDE.time():
            # A balancing round costs up to a few hundred ms at thousands of VMs: in a thread
            # (the decision is pure), so this agent's lease renewal, watchdog and monitor go
            # on meanwhile. HA's own decisions take milliseconds and stay on the loop.
            actions, state, rnd = await asyncio.to_thread(decide) if due else decide()
        self.next_fence = next_fence(state)
        applied: set[str] = set()
        for action in actions:
            if not await self.apply(action):
                # Someone changed it first (an operator, an agent): the next tick re-reads.
                log.debug("not applied (changed meanwhile): %s", _describe(action))
            else:
                log.info("%s", _describe(action))
                if isinstance(action, QueueTask):
                    applied.add(action.task.id)
        if rnd is not None:
            await self._record_round(rnd, snap.now, applied)
        return actions

    def _round_due(self, config: BalanceConfig) -> bool:
        """A balancing round every interval_s on this manager's clock, the first at once."""
        now = time.monotonic()
        since = None if self.last_round is None else now - self.last_round
        if not round_due(config, since):
            return False
        self.last_round = now
        return True

    async def _record_round(self, rnd: BalanceRound, at: float, applied: set[str]) -> None:
        for note in rnd.plan.notes:
            log.info("balancer: %s", note)
        tasks = {a.task.vmid: a.task.id for a in rnd.queued
                 if a.task.id in applied and a.task.vmid is not None}
        try:
            await put_status(self.store, status_of(rnd.plan, at, tasks))
        except Exception as e:  # the moves are queued; the status is for operators
            log.warning("balancer: could not record the round: %s", e)

    def _report(self, problems: set[Problem]) -> None:
        """Each record that does not decode is logged once (not every tick), and again when it
        reads again; the decisions go on over the rest."""
        for p in sorted(problems - self.problems, key=str):
            log.warning("skipping a record that does not decode: %s", p)
        for p in sorted(self.problems - problems, key=str):
            log.info("record readable again (or gone): %s", p.key)
        self.problems = frozenset(problems)

    def _heard(self, changed: list[str] | None) -> None:
        # Usage samples arrive from every host every few seconds and decide nothing yet;
        # the regular tick sees them. Anything else may call for a decision now.
        if changed is None or not all(k.endswith(("/usage", "/recent")) for k in changed):
            self.changed.set()

    async def run(self) -> None:
        unlisten = self.view.listen(self._heard)
        failures = RepeatedFailures(log, "manager tick")
        try:
            while True:
                self.changed.clear()
                try:
                    await self.tick()
                    failures.succeeded()
                except NotLeader:
                    return
                except Exception as e:  # etcd hiccup or a bug on odd data: keep managing
                    failures.failed(e)
                wait = TICK_SECONDS
                if self.next_fence is not None:  # a fence wait ends before the next tick
                    wait = min(wait, max(0.0, self.next_fence - time.monotonic()))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self.changed.wait()
                await asyncio.sleep(MIN_GAP_SECONDS)
        finally:
            unlisten()


def _describe(action: HAAction) -> str:
    if isinstance(action, SaveHAState):
        return "HA state saved"
    if isinstance(action, SetPlacement):
        return f"VM {action.vmid}: placement {action.placement.model_dump()} ({action.reason})"
    if isinstance(action, DeleteTask):
        return f"forget finished task {action.task_id}"
    if isinstance(action, ClearFenceConfirmation):
        return f"clear the fence confirmation of {action.node} (it holds a lease again)"
    task = action.task
    verb = "queue" if isinstance(action, QueueTask) else "update"
    return f"{verb} task {task.id} {task.kind} ({task.state.value})"


async def serve(store: Store, view: ClusterView, name: str, lease: Callable[[], Any]) -> None:
    """Campaign forever; decide while leading. Runs inside every agent."""
    election = Election(store, name, lease)
    while True:
        token = await election.win()
        manager = asyncio.create_task(Manager(store, view, token).run(), name="manager-loop")
        lost = asyncio.create_task(election.lost(token), name="manager-lost")
        try:
            await asyncio.wait({manager, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait([manager, lost])
        log.info("%s stopped managing (term %s)", name, token)

