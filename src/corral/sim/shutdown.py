"""A clean host shutdown (reboot or power-off) in the simulator: what the host's agent does,
step by step. The choices are the real agent's (`corral.agent.reconciler`: shutdown_policy,
asks_maintenance, ends_shutdown_maintenance; accept_task refuses to bring a guest up
meanwhile); this module is only I/O on the modelled store and host.

1. The agent resolves the cluster's policy for this kind of shutdown and writes its host's
   HostShutdown record (life: its own start time); from then on it brings no guest up.
2. migrate: it asks for maintenance (unless the host is in maintenance already), keeps running
   tasks (the migrations out) and its monitor, and waits until no VM that maintenance moves
   still runs here, at most `timeout` seconds (VMs that stay, stop or are stuck are left).
3. It stops its task runner and monitor (so no placement is marked stopped: under freeze the
   VMs start again when the host returns), presses every guest's power button and stops hard
   what is still up after `stop_timeout` (a hung QEMU only goes that way); each VM is
   reported stopped.
4. It marks the record done, releases its lease, disarms its watchdog, and the host goes off;
   a reboot powers it on `back` seconds later.
5. At its next start (a new life) the agent deletes the record and ends the maintenance it
   asked for; then the usual start-up reconcile starts what is placed to run there.

A host that dies, or whose agent is stopped, before step 4 is an ordinary lost host: its lease
runs out, its watchdog fires, HA waits for the fence as for any other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from corral.agent.reconciler import (
    Policy,
    ShutdownKind,
    asks_maintenance,
    ends_shutdown_maintenance,
    shutdown_policy,
)
from corral.cluster.models import HostShutdown, NodeRequest, TaskState, VMStatus
from corral.manager.maintenance import maintenance_status

if TYPE_CHECKING:
    from corral.sim.world import Host, World

GUEST_OFF = 2.0  # a guest that hears its power button is off this long after it
DRAIN_TIMEOUT = 120.0  # migrate: the longest wait for the host to empty
STOP_TIMEOUT = 30.0  # a guest still up this long after its power button is stopped hard
REBOOT_BACK = 20.0  # a rebooting host powers on again this long after it went off


@dataclass
class Going:
    """A clean shutdown under way, as its agent knows it (one agent life)."""

    kind: ShutdownKind
    policy: Policy
    back: float
    stop_timeout: float
    record: HostShutdown
    drain_until: float | None = None  # migrate: waits for migrations out until then
    button_at: float | None = None  # step 3 began: the power buttons were pressed
    stopping: set[int] = field(default_factory=set)  # guests not yet seen off


def begin(w: World, h: Host, kind: ShutdownKind, back: float = REBOOT_BACK,
          timeout: float = DRAIN_TIMEOUT, stop_timeout: float = STOP_TIMEOUT) -> None:
    """The host is told to shut down (systemd stops the agent's service): steps 1 and 2."""
    if not h.powered:
        w.say(f"{h.name}/host: nothing to shut down (the host is off)")
        return
    if h.going is not None:
        w.say(f"{h.name}/host: already shutting down")
        return
    if not h.agent_up:
        # Stopped or frozen: no agent carries out a policy; the host's own shutdown ends its
        # QEMUs and the lease runs out, as for a host that died.
        w.say(f"{h.name}/host: shuts down without a running agent: its VMs end, no policy")
        h.going = Going(kind, "freeze", back, stop_timeout,
                        HostShutdown(policy="freeze", kind=kind, life=h.started_at, at=w.t))
        power_off(w, h)
        return
    policy = shutdown_policy(w.store.ha_config.shutdown_policy, kind)
    record = HostShutdown(policy=policy, kind=kind, life=h.started_at, at=w.t)
    h.going = Going(kind, policy, back, stop_timeout, record)
    w.say(f"{h.name}: shutting down ({kind}, policy {policy})")
    if not h.network:
        w.say(f"{h.name}: cannot reach the store: no shutdown record, the lease will run out")
        return
    w.store.shutdowns[h.name] = record
    if policy != "migrate":
        return
    request = w.store.requests.get(h.name)
    if asks_maintenance(policy, request):
        w.store.requests[h.name] = NodeRequest(maintenance=True, by="shutdown",
                                               requested_at=w.t)
        w.say(f"{h.name}: asks for maintenance to empty the host (waits at most "
              f"{timeout:g}s)")
    else:
        w.say(f"{h.name}: in maintenance already: waits for it to empty the host (at most "
              f"{timeout:g}s)")
    h.going.drain_until = w.t + timeout


def step(w: World, h: Host) -> None:
    """One tick of a running agent that shuts down: steps 2 to 4."""
    g = h.going
    assert g is not None
    if g.button_at is None:
        if g.drain_until is not None:
            if h.connected:
                w.monitor(h, w.run_tasks(h))
            # Cut off from the store it cannot tell: it waits out the timeout.
            left = still_to_leave(w, h) if h.connected else sorted(h.procs)
            if left and w.t < g.drain_until:
                return
            w.say(f"{h.name}: " + (
                f"gives up waiting: VM(s) {', '.join(map(str, left))} still here"
                if left else "maintenance has nothing more to move off the host"))
        press_buttons(w, h)
    pressed = g.button_at if g.button_at is not None else w.t
    for vmid in sorted(g.stopping | h.procs):
        if vmid not in h.procs:
            how = "has exited"
        elif vmid not in h.hung and w.t >= pressed + GUEST_OFF:
            how = "powered off"
        elif w.t >= pressed + g.stop_timeout:
            how = f"still up after {g.stop_timeout:g}s: stopped hard"
        else:
            g.stopping.add(vmid)
            continue
        h.procs.discard(vmid)
        h.hung.discard(vmid)
        g.stopping.discard(vmid)
        w.say(f"{h.name}: VM {vmid} {how}")
        placed = w.placed(vmid)
        if h.network and placed is not None and placed.node == h.name:
            w.report(h, vmid, VMStatus.STOPPED)
    if not h.procs:
        finish(w, h)


def still_to_leave(w: World, h: Host) -> list[int]:
    """VMs that maintenance is moving off the host (or will) and that still run here."""
    st = maintenance_status(w.snapshot(), h.name, w.ha_inputs().rules)
    return sorted(v for v in (*st.to_move, *st.moving) if v in h.procs)


def press_buttons(w: World, h: Host) -> None:
    """Step 3: no more tasks, no more monitor; every guest is told to power off."""
    g = h.going
    assert g is not None
    for task in list(w.store.tasks.values()):
        if task.node == h.name and task.state is TaskState.RUNNING:
            w.store.tasks[task.id] = task.model_copy(update={
                "state": TaskState.ERROR, "ended_at": w.t,
                "error": f"interrupted: {h.name} shuts down"})
            w.say(f"{h.name}: task {task.id} error: interrupted by the shutdown")
    g.button_at = w.t
    g.stopping = set(h.procs)
    w.say(f"{h.name}: stops its task runner and monitor; " + (
        f"powers off VM(s) {', '.join(map(str, sorted(h.procs)))}" if h.procs
        else "no VM runs here"))


def finish(w: World, h: Host) -> None:
    """Step 4: every QEMU has ended."""
    g = h.going
    assert g is not None
    if h.network:
        w.store.shutdowns[h.name] = g.record.model_copy(update={"done": True})
        h.lease_expires = w.t  # released: the alive key goes at once
        w.say(f"{h.name}: every QEMU has ended: shutdown done, releases its lease, disarms "
              "its watchdog")
    else:
        w.say(f"{h.name}: every QEMU has ended; cannot reach the store: the lease runs out")
    power_off(w, h)


def power_off(w: World, h: Host) -> None:
    g = h.going
    assert g is not None
    h.powered, h.agent_up, h.agent_back_at, h.frozen, h.going = False, False, None, False, None
    h.procs.clear()
    h.hung.clear()
    if g.kind == "reboot":
        h.power_on_at = w.t + g.back
        w.say(f"{h.name}/host: off; reboots, on again at {h.power_on_at:g}")
    else:
        w.say(f"{h.name}/host: off")


def on_start(w: World, h: Host) -> None:
    """Step 5, at an agent's start with the store in reach: the record of its last life goes,
    and so does the maintenance that life asked for."""
    old = w.store.shutdowns.pop(h.name, None)
    if old is not None:
        w.say(f"{h.name}: deletes the shutdown record of its last life ({old.kind}, policy "
              f"{old.policy}" + (", done)" if old.done else ", not done)"))
    request = w.store.requests.get(h.name)
    if ends_shutdown_maintenance(request):
        assert request is not None
        w.store.requests[h.name] = request.model_copy(update={"maintenance": False,
                                                              "requested_at": w.t})
        w.say(f"{h.name}: ends the maintenance it asked for before the shutdown")
