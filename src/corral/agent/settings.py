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
    usage_interval: float = 5.0
    monitor_interval: float = 1.0

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"
