"""What one agent needs to know about its host."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from corral.fencing.protocol import Ack
from corral.fencing.timing import FIT_MARGIN, fits_lease
from corral.host.ports import PortRange
from corral.pki.files import TLSFiles

Accel = Literal["kvm", "tcg"]
# Written in the agent's run dir by whatever shuts the host down where systemd does not (the
# lab): "reboot" or "poweroff". Removed when the agent starts.
HOST_SHUTDOWN_MARKER = "host-shutdown"


@dataclass(frozen=True)
class AgentSettings:
    node: str
    data_dir: Path  # host state: storage (relative `dir` paths), run dir
    images_dir: Path  # boot images such as the tiny guest
    etcd: list[str] = field(default_factory=lambda: ["http://127.0.0.1:2379"])
    listen_host: str = "127.0.0.1"
    listen_port: int = 0  # serial console endpoint; 0 picks a free port
    accel: Literal["auto", "kvm", "tcg"] = "auto"
    lease_ttl: int = 9  # seconds: the host counts as failed once its lease is gone
    # Fencing: the watchdog fed after each lease renewal. watchdog_timeout is how long the
    # agent expects it may go unfed (it paces the renewals; 0: take it from the watchdog's
    # acknowledgement). What the agent publishes is the fence time the watchdog acknowledged,
    # and only when it fits the lease (fencing.timing.fits_lease).
    watchdog_socket: Path | None = None
    watchdog_timeout: float = 0.0
    watchdog_arm_wait: float = 10.0  # seconds to wait for the acknowledgement at start
    usage_interval: float = 5.0
    # The last minutes of the host and its VMs (RecentUsage, for the load balancer): a few
    # KiB per host, so written twice per minute point rather than every sample.
    recent_interval: float = 30.0
    # Hosts that share one machine (a lab) see its CPU load as their own: they publish no
    # host load besides their VMs' (RecentUsage.other_cores stays empty).
    shared_machine: bool = False
    monitor_interval: float = 1.0
    # A clean host shutdown: how long a guest gets to power off on the ACPI button, and how
    # long policy migrate waits for maintenance to empty the host (systemd's stop timeout of
    # the agent's unit must cover both).
    vm_shutdown_timeout: float = 60.0
    evacuate_timeout: float = 300.0
    # The host's certificate and the cluster CA (`--pki-dir`): etcd is spoken to over TLS
    # with it, and the console endpoint serves HTTPS to clients with a certificate of that
    # CA only. None: plain HTTP (a lab without TLS).
    tls: TLSFiles | None = None
    # The ports a migration's streams to this host listen on (a firewall lets them through);
    # None: ports the kernel picks from its ephemeral range.
    migration_ports: PortRange | None = None

    def check(self) -> None:
        """Refuse settings under which the cluster could recover VMs that still run here."""
        if self.watchdog_socket is not None and not 0 <= self.watchdog_timeout < self.lease_ttl:
            raise ValueError(
                f"watchdog timeout ({self.watchdog_timeout:g}s) must be below the lease TTL "
                f"({self.lease_ttl}s): the watchdog must fence this host before its lease "
                "expires"
            )

    def renew_interval(self, acknowledged_timeout: float | None = None) -> float:
        """Renew (and so feed) three times per TTL and per client timeout: this agent's
        setting and the one its watchdog acknowledged, whichever is shorter."""
        timeouts: list[float] = [self.lease_ttl]
        if self.watchdog_socket is not None and self.watchdog_timeout > 0:
            timeouts.append(self.watchdog_timeout)
        if acknowledged_timeout:
            timeouts.append(acknowledged_timeout)
        return min(timeouts) / 3

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"

    @property
    def usage_dir(self) -> Path:
        """The usage history's files (agent.history): host state, not run state, so they
        outlive a reboot."""
        return self.data_dir / "usage"

    @property
    def scheme(self) -> str:
        """Of the console endpoint's URL, which the host publishes for the API."""
        return "https" if self.tls is not None else "http"


def published_fence_time(ack: Ack | None, renew_interval: float, lease_ttl: float
                         ) -> tuple[float, str]:
    """What the host publishes as its watchdog timeout, and why. 0 makes it unfenceable by
    the clock (HA waits for a confirmed power-off): without an acknowledgement the agent does
    not know it is armed, and a fence time that does not fit the lease could free its VMs
    while they still run. Such a host runs its VMs but is no HA target for recovery by the
    clock; the agent keeps feeding all the same (it may be armed)."""
    if ack is None:
        return 0.0, "no acknowledgement from the watchdog: this host is not known to be armed"
    if not fits_lease(ack.fence, renew_interval, lease_ttl):
        return 0.0, (f"the watchdog fences {ack.fence:g}s after the last feed; with renewals "
                     f"every {renew_interval:.3g}s and a {FIT_MARGIN:g}s margin that does not fit "
                     f"the lease TTL ({lease_ttl:g}s)")
    return ack.fence, (f"fenced at most {ack.fence:g}s after the last feed (renewal every "
                       f"{renew_interval:.3g}s, lease TTL {lease_ttl:g}s)")
