"""The HA view of each host: online, or lost and waiting to be fenced, or fenced. Pure."""

from __future__ import annotations

from corral.cluster.models import Node
from corral.cluster.snapshot import ClusterSnapshot
from corral.ha.models import FenceConfirmation, HAInputs, HATiming, NodeHAState, NodeStatusHA


def confirmed(node: Node, conf: FenceConfirmation | None) -> bool:
    """A fence agent's confirmation counts only for the host's current life: once the agent
    starts again (new info.started_at) the old power-off proves nothing."""
    return conf is not None and node.info is not None and conf.at >= node.info.started_at


def node_states(snap: ClusterSnapshot, inputs: HAInputs, timing: HATiming
                ) -> dict[str, NodeHAState]:
    out: dict[str, NodeHAState] = {}
    now = snap.now
    for name, node in sorted(snap.nodes.items()):
        prev = inputs.state.nodes.get(name)
        conf = inputs.fenced.get(name)
        if node.info is None:
            out[name] = NodeHAState(status=NodeStatusHA.UNKNOWN, reason="no host facts")
            continue
        if node.alive and not confirmed(node, conf):
            out[name] = NodeHAState(status=NodeStatusHA.ONLINE)
            continue
        # First seen without its lease now, unless the persisted state knew it earlier. A new
        # leader without a record starts the clock afresh: later, never earlier, is safe.
        lost = prev.lost_at if prev and prev.lost_at is not None else now
        was_fenced = prev.fenced_at if prev and prev.status is NodeStatusHA.FENCED else None
        watchdog = node.info.watchdog_timeout
        if watchdog is None:
            watchdog = timing.watchdog_timeout
        # The host's own timeout when it published one: that is what its watchdog does.
        deadline = lost + watchdog + timing.margin
        if confirmed(node, conf):
            assert conf is not None
            out[name] = NodeHAState(status=NodeStatusHA.FENCED, lost_at=lost,
                                    fenced_at=was_fenced or now,
                                    reason=f"power-off confirmed by {conf.by}")
        elif watchdog <= 0:
            # Nothing on that host stops its VMs: only a confirmed power-off may free them.
            out[name] = NodeHAState(status=NodeStatusHA.FENCE, lost_at=lost,
                                    reason="lease lost; the host has no watchdog: waiting "
                                           "for a confirmed power-off")
        elif now >= deadline:
            out[name] = NodeHAState(status=NodeStatusHA.FENCED, lost_at=lost,
                                    fenced_at=was_fenced or now,
                                    reason="lease lost and watchdog deadline passed")
        else:
            out[name] = NodeHAState(status=NodeStatusHA.FENCE, lost_at=lost,
                                    reason=f"lease lost; fenced at t={deadline:g}")
    return out
