"""The manager in the simulator: election on the hosts' leases, and a pass of the real
decision code whose actions are applied to the simulated store. The manager keeps nothing
between passes: what it knows comes from the store, so a failover loses nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from corral.cluster.actions import DeleteTask, QueueTask, SetPlacement, UpdateTask
from corral.cluster.snapshot import ClusterSnapshot
from corral.ha.actions import ClearFenceConfirmation, SaveHAState
from corral.ha.models import HAInputs, HAState, HATiming
from corral.manager.decide import decide_with_ha
from corral.sim.world import World

Decide = Callable[[ClusterSnapshot, HAInputs, HATiming], tuple[list[Any], HAState]]


class SimManager:
    def __init__(self, world: World, timing: HATiming) -> None:
        self.world = world
        self.timing = timing
        # What the production loop runs: maintenance, bulk, then HA.
        self.decide: Decide = decide_with_ha
        # A new term per leader change, as etcd's revision of the election key: the new
        # leader measures every wait afresh.
        self.term = 0
        self.epoch = world.members.epoch  # the cluster epoch the leader was elected in

    def elect(self) -> str | None:
        """The election key is bound to the leader's lease: while that lives, the leader
        stays; then the first connected host takes it. Only a host the store answers can
        win, so without quorum nobody does. A new cluster epoch (the override) is a new
        election: the survivor's data is a new cluster."""
        w, s = self.world, self.world.store
        fresh = self.epoch != w.members.epoch
        if not fresh and s.leader is not None and w.alive(s.leader):
            return s.leader
        candidates = sorted(h.name for h in w.hosts.values() if h.connected)
        new = candidates[0] if candidates else None
        if fresh and new is not None:
            w.say(f"manager: {new} is leader in epoch {w.members.epoch} "
                  f"(was {s.leader or 'nobody'})")
            s.leader, self.epoch = new, w.members.epoch
            self.term += 1
        elif new != s.leader:
            w.say(f"manager: {new or 'nobody'} is leader (was {s.leader or 'nobody'})")
            s.leader = new
            self.term += 1
        return new

    def step(self) -> None:
        self.world.refresh_store()
        leader = self.elect()
        if leader is None or not self.world.hosts[leader].connected:
            return  # a leader cut off from etcd cannot read or write
        snap = self.world.snapshot()
        # The virtual clock is the manager's monotonic clock too.
        inputs = replace(self.world.ha_inputs(), term=self.term, mono=self.world.t)
        actions, _ = self.decide(snap, inputs, self.timing)
        for action in actions:
            self.apply(action)

    def apply(self, action: object) -> None:
        w, s = self.world, self.world.store
        if isinstance(action, QueueTask):
            if action.task.id not in s.tasks:
                s.tasks[action.task.id] = action.task.model_copy(update={"created_at": w.t})
                t = action.task
                w.say(f"manager: queue {t.kind} of VM {t.vmid} on {t.node} ({t.id})")
        elif isinstance(action, UpdateTask):
            s.tasks[action.task.id] = action.task
        elif isinstance(action, SetPlacement):
            ok = s.cas_placement(action.vmid, action.placement, action.expect_rev)
            w.say(f"manager: place VM {action.vmid} on {action.placement.node} "
                  f"({action.placement.state.value}): {action.reason}"
                  + ("" if ok else " -- lost the race, not written"))
        elif isinstance(action, DeleteTask):
            s.tasks.pop(action.task_id, None)
        elif isinstance(action, ClearFenceConfirmation):
            if w.alive(action.node) and s.fenced.pop(action.node, None) is not None:
                w.say(f"manager: clear the fence confirmation of {action.node} (holds a lease)")
        elif isinstance(action, SaveHAState):
            self.log_changes(s.ha_state, action.state)
            s.ha_state = action.state
        else:
            w.say(f"manager: ignores unknown action {type(action).__name__}")

    def log_changes(self, old: HAState, new: HAState) -> None:
        """One line per HA status change: "was -> now: why" (a new reason alone counts)."""
        w = self.world
        for name, ns in sorted(new.nodes.items()):
            prev = old.nodes.get(name)
            if prev is None or prev.status is not ns.status:
                was = prev.status.value if prev else "new"
                w.say(f"ha: node {name} {was} -> {ns.status.value}"
                      + (f": {ns.reason}" if ns.reason else ""))
        for vmid, vs in sorted(new.vms.items()):
            prev_vm = old.vms.get(vmid)
            if prev_vm is None or prev_vm.status is not vs.status or prev_vm.reason != vs.reason:
                was = prev_vm.status.value if prev_vm else "new"
                change = vs.status.value if was == vs.status.value else \
                    f"{was} -> {vs.status.value}"
                w.say(f"ha: VM {vmid} {change}" + (f": {vs.reason}" if vs.reason else ""))
