"""Where a new VM goes when the operator names no host: the balancer's own scoring (room,
HA rules, then the host that leaves the cluster most even), so placement and balancing never
pull in different directions. Pure."""

from __future__ import annotations

from collections.abc import Sequence

from corral.balancer import planner
from corral.balancer.inputs import balance_input
from corral.balancer.model import BalanceConfig, VmLoad
from corral.cluster.snapshot import ClusterSnapshot
from corral.ha.models import HARule


def place_new(snap: ClusterSnapshot, rules: Sequence[HARule], config: BalanceConfig,
              memory_mb: int, cores: int) -> tuple[str | None, str]:
    """The host for a VM about to be created, or None and every reason none fits. A new
    VM has no usage yet: it is planned at its configured memory and half its cores."""
    load = VmLoad(vmid=0, node="", cores=cores, memory_mb=memory_mb, cpu=(),
                  memory_used_mb=float(memory_mb))
    return planner.place(balance_input(snap, rules), config, load)
