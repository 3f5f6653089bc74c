"""The HA view of each host: online, or lost and waiting to be fenced, or fenced. Pure.

Every wait is measured on the manager's monotonic clock (`HAInputs.mono`) and only within the
term that measured it (`HAInputs.term`): a new manager trusts no persisted time to shorten a
wait, and a jump of the wall clock shortens none either.
"""

from __future__ import annotations

from corral.cluster.models import HostShutdown, Node, NodeInfo, RunState
from corral.cluster.snapshot import ClusterSnapshot
from corral.ha.models import (
    FenceConfirmation,
    HAInputs,
    HARequest,
    HAState,
    HATiming,
    NodeHAState,
    NodeStatusHA,
)


def clock(snap: ClusterSnapshot, inputs: HAInputs) -> float:
    """The manager's monotonic now (snap.now when the shell gave none)."""
    return inputs.mono if inputs.mono is not None else snap.now


def confirmed(node: Node, conf: FenceConfirmation | None) -> bool:
    """A fence agent's confirmation counts only while the host has no lease, and only for the
    host's current life: once the agent starts again (new info.started_at) the old power-off
    proves nothing."""
    return (conf is not None and not node.alive and node.info is not None
            and conf.at >= node.info.started_at)


def parked(snap: ClusterSnapshot, inputs: HAInputs, name: str) -> bool:
    """A host in maintenance with nothing meant to run on it: losing it loses nothing, so it
    is neither fenced nor are its (stopped) VMs moved away. Any VM placed to run there, or an
    HA VM that should be started, makes it an ordinary lost host."""
    if not snap.in_maintenance(name):
        return False
    for vm in snap.vms_on(name):
        if vm.placement.state is not RunState.STOPPED:
            return False
        s = inputs.settings.get(vm.vmid)
        if s is not None and s.state is HARequest.STARTED:
            return False
    return True


def _frozen_shutdown(node: Node, prev: NodeHAState | None) -> HostShutdown | None:
    """The clean shutdown under policy freeze that this (leaseless) host is in, if any: of
    its current agent life, or of the last one while the host has not been online since (a
    returning agent writes its new facts before it takes its lease; its VMs must not be
    recovered away in that moment: no QEMU runs there without a lease)."""
    sd = node.shutdown
    if sd is None or not sd.done or sd.policy != "freeze":
        return None
    if node.shutting_down is sd:
        return sd
    return sd if prev is not None and prev.status is NodeStatusHA.SHUTDOWN else None


def recovery_wait(info: NodeInfo, fence: float, timing: HATiming) -> float:
    """How long after the manager first saw a host's lease gone its VMs may run elsewhere.

    The host's agent feeds its watchdog only right after etcd confirmed a lease renewal, and
    one renewal attempt takes at most `renew_interval`; etcd ends the lease `lease_ttl` after
    the renewal it last accepted, and the watchdog resets the host `fence` (the device's own
    figure, published by the host) after the last feed. So the host outlives its lease by at
    most fence + renew_interval - lease_ttl, usually less than nothing: an agent publishes a
    fence time only when it fits its lease. The margin covers what the figures cannot (a
    watchdog process starved of CPU, clocks running at slightly different rates). A host
    that published neither its lease TTL nor its renewal interval (an older agent) gets the
    whole fence time on top of the lease.
    """
    if info.lease_ttl is None or info.renew_interval is None:
        return fence + timing.margin
    return max(0.0, fence + info.renew_interval - info.lease_ttl) + timing.margin


def node_states(snap: ClusterSnapshot, inputs: HAInputs, timing: HATiming
                ) -> dict[str, NodeHAState]:
    out: dict[str, NodeHAState] = {}
    now, term = clock(snap, inputs), inputs.term
    for name, node in sorted(snap.nodes.items()):
        prev = inputs.state.nodes.get(name)
        ours = prev if prev is not None and prev.term == term else None
        conf = inputs.fenced.get(name)
        if node.info is None:
            out[name] = NodeHAState(status=NodeStatusHA.UNKNOWN, reason="no host facts",
                                    term=term)
            continue
        sd = node.shutting_down
        if node.alive:
            since = (ours.online_since if ours is not None and ours.status is NodeStatusHA.ONLINE
                     and ours.online_since is not None else now)
            why = f"shutting down ({sd.kind}, policy {sd.policy})" if sd is not None else ""
            out[name] = NodeHAState(status=NodeStatusHA.ONLINE, term=term, online_since=since,
                                    reason=why)
            continue
        if parked(snap, inputs, name):
            out[name] = NodeHAState(status=NodeStatusHA.MAINTENANCE, term=term,
                                    reason="offline in maintenance, nothing meant to run on "
                                           "it: not fenced, its VMs wait for it")
            continue
        lost_states = (NodeStatusHA.FENCE, NodeStatusHA.FENCED)
        # First seen without its lease now, unless this very term saw it earlier: a new
        # leader starts the clock afresh (later, never earlier, is safe).
        lost = (ours.lost_mono if ours is not None and ours.status in lost_states
                and ours.lost_mono is not None else now)
        lost_at = (prev.lost_at if prev is not None and prev.status in lost_states
                   and prev.lost_at is not None else snap.now)
        was_fenced = ours.fenced_at if ours is not None and ours.status is NodeStatusHA.FENCED \
            else None
        watchdog = node.info.watchdog_timeout
        if watchdog is None:
            watchdog = timing.watchdog_timeout
        wait = recovery_wait(node.info, watchdog, timing)
        lost_state = NodeHAState(status=NodeStatusHA.FENCE, lost_at=lost_at, term=term,
                                 lost_mono=lost)
        if confirmed(node, conf):
            assert conf is not None
            out[name] = lost_state.model_copy(update={
                "status": NodeStatusHA.FENCED, "fenced_at": was_fenced or snap.now,
                "reason": f"power-off confirmed by {conf.by}"})
        elif (frozen := _frozen_shutdown(node, prev)) is not None:
            out[name] = lost_state.model_copy(update={
                "status": NodeStatusHA.SHUTDOWN,
                "reason": f"shut down cleanly ({frozen.kind}, policy freeze): its VMs wait for "
                          "it (`corral ha confirm-fenced` if it does not come back)"})
        elif sd is not None and sd.done:
            # Its agent stopped every QEMU, said so, then gave up its lease: nothing runs
            # there, so there is no watchdog to wait for.
            out[name] = lost_state.model_copy(update={
                "status": NodeStatusHA.FENCED, "fenced_at": was_fenced or snap.now,
                "reason": f"shut down cleanly ({sd.kind}, policy {sd.policy}) with every "
                          "VM stopped"})
        elif watchdog <= 0:
            # Nothing on that host stops its VMs: only a confirmed power-off may free them.
            out[name] = lost_state.model_copy(update={
                "reason": "lease lost; the host has no watchdog: waiting for a confirmed "
                          "power-off"})
        elif now >= lost + wait:
            out[name] = lost_state.model_copy(update={
                "status": NodeStatusHA.FENCED, "fenced_at": was_fenced or snap.now,
                "reason": "lease lost and its watchdog has fired: wait passed"})
        else:
            out[name] = lost_state.model_copy(update={
                "fence_mono": lost + wait,
                "reason": f"lease lost; fenced {wait:g}s after this manager saw it lost "
                          f"(term {term})"})
    return out


def next_fence(state: HAState) -> float | None:
    """The earliest end of a fence wait (the manager's monotonic clock), so the manager can
    decide right then rather than on its next regular tick."""
    ends = [ns.fence_mono for ns in state.nodes.values()
            if ns.status is NodeStatusHA.FENCE and ns.fence_mono is not None]
    return min(ends, default=None)
