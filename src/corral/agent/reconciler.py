"""Pure decisions of an agent: what to do with the VMs placed on its host and the QEMU
processes it finds. No I/O here: callers pass what they read and carry out what comes back."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from corral.cluster.models import RunState, VMStatus


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


def plan_startup(node: str, placed: list[Placed], running: dict[int, int]) -> list[Action]:
    """After an agent (re)start: adopt what runs, start what should run, and never leave a
    QEMU process of a VM that this host does not own."""
    mine = {p.vmid: p for p in placed if p.node == node}
    actions: list[Action] = []
    for vmid in sorted(running):
        if vmid in mine:
            actions.append(Action(Do.ADOPT, vmid))
        else:
            owner = next((p.node for p in placed if p.vmid == vmid), None)
            why = f"placed on {owner}" if owner else "no such VM in the cluster"
            actions.append(Action(Do.KILL_ORPHAN, vmid, why))
    for vmid, p in sorted(mine.items()):
        if vmid not in running and p.state in (RunState.RUNNING, RunState.PAUSED):
            actions.append(Action(Do.START, vmid, "meant to run after the host came back"))
    return actions


def plan_observation(
    placed: Placed, was: VMStatus | None, now: VMStatus, busy: bool
) -> list[Action]:
    """A VM meant to run whose process vanished while no task was working on it: the guest
    powered itself off or QEMU died. Record that rather than restart it (HA decides later)."""
    if busy or placed.state is RunState.STOPPED:
        return []
    if was in (VMStatus.RUNNING, VMStatus.PAUSED) and now is VMStatus.STOPPED:
        return [Action(Do.MARK_STOPPED, placed.vmid, "the guest powered off or QEMU exited")]
    return []
