"""The HA state machine's one action of its own, beside the cluster actions it shares."""

from __future__ import annotations

from dataclasses import dataclass

from corral.cluster.actions import Action
from corral.ha.models import HAState


@dataclass(frozen=True)
class SaveHAState:
    """Persist the HA state machine's state (so a new leader continues from etcd alone)."""

    state: HAState


@dataclass(frozen=True)
class ClearFenceConfirmation:
    """Forget a host's fence confirmation: the host holds a lease again (it rejoined), so the
    old power-off proves nothing any more. Applied only while the host is alive."""

    node: str


HAAction = Action | SaveHAState | ClearFenceConfirmation
