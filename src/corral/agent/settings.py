"""What one agent needs to know about its host."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Accel = Literal["kvm", "tcg"]


@dataclass(frozen=True)
class AgentSettings:
    node: str
    data_dir: Path  # host state: storage (relative `dir` paths), run dir
    images_dir: Path  # boot images such as the tiny guest
    etcd: list[str] = field(default_factory=lambda: ["http://127.0.0.1:2379"])
    listen_host: str = "127.0.0.1"
    listen_port: int = 0  # serial console endpoint; 0 picks a free port
    accel: Literal["auto", "kvm", "tcg"] = "auto"
    lease_ttl: int = 10  # seconds: the host counts as failed once its lease is gone
    # Fencing: the watchdog fed after each lease renewal. It must fire (and so stop this
    # host's VMs) before the lease can expire, hence watchdog_timeout < lease_ttl.
    watchdog_socket: Path | None = None
    watchdog_timeout: float = 0.0
    usage_interval: float = 5.0
    monitor_interval: float = 1.0

    def check(self) -> None:
        """Refuse settings under which the cluster could recover VMs that still run here."""
        if self.watchdog_socket is not None and not 0 < self.watchdog_timeout < self.lease_ttl:
            raise ValueError(
                f"watchdog timeout ({self.watchdog_timeout:g}s) must be positive and below the "
                f"lease TTL ({self.lease_ttl}s): the watchdog must fence this host before its "
                "lease expires"
            )

    @property
    def renew_interval(self) -> float:
        """Renew (and so feed) three times per TTL and per watchdog timeout."""
        if self.watchdog_socket is None:
            return self.lease_ttl / 3
        return min(self.lease_ttl, self.watchdog_timeout) / 3

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"
