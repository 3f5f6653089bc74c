"""Pure decisions of an agent: what to do with the VMs placed on its host and the QEMU
processes it finds, which tasks it accepts, and whether it owns a VM right before it starts,
resumes or receives one. No I/O here: the real agent and the simulator pass what they read
and carry out what comes back, so both run the same decisions.

Like Proxmox's local resource manager, which acts only while it holds its host's lock, an
agent runs a guest only after one etcd transaction showed, at one revision, that the VM is
placed on its host and that its host lease is alive (`Ownership`, `ownership_refusal`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from corral.cluster.models import NodeRequest, RunState, ShutdownPolicy, VMStatus


class Do(StrEnum):
    ADOPT = "adopt"  # a QEMU process of a VM placed here: keep it, report it
    START = "start"  # placed here, meant to run, no process (the host came back)
    KILL_ORPHAN = "kill-orphan"  # a process whose VM is gone or placed elsewhere
    MARK_STOPPED = "mark-stopped"  # meant to run, but the process ended on its own


@dataclass(frozen=True)
class Action:
    do: Do
    vmid: int
    reason: str = ""


@dataclass(frozen=True)
class Placed:
    """The part of a VM's record the reconciler needs."""

    vmid: int
    node: str
    state: RunState


# Tasks a host runs for a VM that another host owns: the receiving end of a migration.
FOREIGN_VM_KINDS = frozenset({"vm.receive"})
# Tasks that bring a guest up here: a host that shuts down refuses them.
GUEST_UP_KINDS = frozenset({"vm.start", "vm.resume", "vm.receive"})


# --- ownership ------------------------------------------------------------------------------


class Purpose(StrEnum):
    """Why an agent wants to run a guest: each asks for a slightly different proof."""

    START = "start"  # a vm.start task: the operator (or HA) asked for it
    RESUME = "resume"  # cont of a paused guest: vm.resume, after a switchover, after recovery
    RESTORE = "restore"  # start-up reconcile: boot what was meant to run when the host left
    RECEIVE = "receive"  # an incoming QEMU for a migration to this host


@dataclass(frozen=True)
class Ownership:
    """What one etcd transaction saw of one VM and this host, at one revision."""

    vmid: int
    placed: Placed | None  # None: no such VM
    lease_alive: bool  # this host's alive key is bound to the lease the agent holds
    receiving: bool = False  # a migration record names this host as its (unfinished) target
    revision: int = 0


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str = ""
    # Only the lease failed: after re-registering, the agent may prove ownership again.
    retry: bool = False


RUN = Verdict(True)


def ownership_refusal(node: str, seen: Ownership, purpose: Purpose) -> Verdict:
    """May this host run (start, resume, receive) the guest now? Asked right before the QEMU
    call, never earlier: a task can sleep (a frozen agent, a slow disk) between its checks."""
    p = seen.placed
    if p is None:
        return Verdict(False, f"VM {seen.vmid} no longer exists")
    if purpose is Purpose.RECEIVE:
        if not seen.receiving:
            return Verdict(False, f"no migration of VM {seen.vmid} to {node} is in progress")
    elif p.node != node:
        return Verdict(False, f"VM {seen.vmid} is now placed on {p.node}")
    elif purpose is Purpose.RESTORE and p.state is RunState.STOPPED:
        return Verdict(False, f"VM {seen.vmid} is no longer meant to run")
    if not seen.lease_alive:
        return Verdict(False, f"the lease of {node} is not alive at revision {seen.revision}",
                       retry=True)
    return RUN


def accept_task(kind: str, placed: Placed | None, node: str, lease_alive: bool,
                known_kinds: Collection[str], shutting_down: bool = False) -> Verdict:
    """Whether to run a claimed task: a task queued before its VM moved (HA recovery,
    migration) must not act on it here, a host that lost its lease acts on nothing, and a
    host that shuts down brings no guest up."""
    if kind not in known_kinds:
        return Verdict(False, f"unknown task kind {kind}")
    if shutting_down and kind in GUEST_UP_KINDS:
        return Verdict(False, f"{node} is shutting down")
    if placed is None:
        return Verdict(False, "the VM is gone")
    if kind not in FOREIGN_VM_KINDS and placed.node != node:
        return Verdict(False, f"VM {placed.vmid} is now placed on {placed.node}")
    if not lease_alive:
        return Verdict(False, f"the lease of {node} is not known to be alive")
    return RUN


class LeaseStep(StrEnum):
    KEEP = "keep"  # renewed: feed the watchdog
    REREGISTER = "reregister"  # expired meanwhile (a freeze, etcd away): take a new lease


def after_renewal(remaining_ttl: int) -> LeaseStep:
    """A renewal that finds the lease gone (the agent was frozen or cut off for longer than
    its TTL) registers again; every later start, resume or receive proves ownership anew under
    the new lease, so nothing decided before the freeze is carried out on stale facts."""
    return LeaseStep.KEEP if remaining_ttl > 0 else LeaseStep.REREGISTER


# --- processes --------------------------------------------------------------------------------


def plan_orphans(node: str, placed: Mapping[int, Placed], running: Iterable[int],
                 spared: Collection[int]) -> list[Action]:
    """QEMU processes here of VMs that are gone or placed elsewhere, read at a current
    revision: stop them. `spared` are VMs a task here works on or a migration to this host
    waits for (the receiving QEMU; the source's paused copy until the target took over)."""
    actions = []
    for vmid in sorted(running):
        if vmid in spared:
            continue
        p = placed.get(vmid)
        if p is None:
            actions.append(Action(Do.KILL_ORPHAN, vmid, "no such VM in the cluster"))
        elif p.node != node:
            actions.append(Action(Do.KILL_ORPHAN, vmid, f"placed on {p.node}"))
    return actions


def plan_startup(node: str, placed: list[Placed], running: Mapping[int, int],
                 spared: Collection[int] = ()) -> list[Action]:
    """After an agent (re)start: adopt what runs, start what should run (each start proves
    ownership first), and never leave a QEMU process of a VM that this host does not own."""
    by_vmid = {p.vmid: p for p in placed}
    mine = {p.vmid: p for p in placed if p.node == node}
    actions = [Action(Do.ADOPT, vmid) for vmid in sorted(running) if vmid in mine]
    actions += plan_orphans(node, by_vmid, running, spared)
    actions.sort(key=lambda a: a.vmid)
    for vmid, p in sorted(mine.items()):
        if vmid not in running and p.state in (RunState.RUNNING, RunState.PAUSED):
            actions.append(Action(Do.START, vmid, "meant to run after the host came back"))
    return actions


def plan_observation(
    placed: Placed, was: VMStatus | None, now: VMStatus, busy: bool
) -> list[Action]:
    """A VM meant to run whose process vanished while no task was working on it: the guest
    powered itself off or QEMU died. Record that rather than restart it (HA decides later).
    Only a process that is gone counts: a QEMU that does not answer is `unknown`, not stopped."""
    if busy or placed.state is RunState.STOPPED:
        return []
    if was in (VMStatus.RUNNING, VMStatus.PAUSED, VMStatus.UNKNOWN) and now is VMStatus.STOPPED:
        return [Action(Do.MARK_STOPPED, placed.vmid, "the guest powered off or QEMU exited")]
    return []


# --- clean host shutdown ----------------------------------------------------------------------


ShutdownKind = Literal["reboot", "poweroff"]
Policy = Literal["freeze", "failover", "migrate"]


def shutdown_policy(setting: ShutdownPolicy, kind: ShutdownKind) -> Policy:
    """The policy a host carries out for this shutdown (conditional: a reboot is short, so
    its VMs wait for it; a power-off may last, so HA starts them elsewhere)."""
    if setting is ShutdownPolicy.CONDITIONAL:
        return "freeze" if kind == "reboot" else "failover"
    return setting.value  # type: ignore[return-value]


def asks_maintenance(policy: Policy, request: NodeRequest | None) -> bool:
    """Policy migrate empties the host through maintenance before it shuts down: the agent
    asks for it unless the host is in maintenance already (an operator's request stays the
    operator's, and is not ended by the host's return)."""
    return policy == "migrate" and not (request is not None and request.maintenance)


def ends_shutdown_maintenance(request: NodeRequest | None) -> bool:
    """At start: the host is in maintenance only because its agent asked for it before a
    clean shutdown (policy migrate), so its return ends it and its VMs come back."""
    return request is not None and request.maintenance and request.by == "shutdown"
