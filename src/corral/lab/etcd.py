"""etcd members for a lab cluster (and for the test suite): command lines and health checks."""

from __future__ import annotations

import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass(frozen=True)
class EtcdMember:
    name: str
    data_dir: Path
    client_port: int
    peer_port: int
    host: str = "127.0.0.1"

    @property
    def client_url(self) -> str:
        return f"http://{self.host}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{self.host}:{self.peer_port}"

    def command(self, members: list[EtcdMember], token: str = "corral-lab") -> list[str]:
        binary = shutil.which("etcd") or "/usr/bin/etcd"
        cluster = ",".join(f"{m.name}={m.peer_url}" for m in members)
        # An existing data dir carries the membership; --initial-* flags are then ignored.
        return [
            binary,
            "--name", self.name,
            "--data-dir", str(self.data_dir),
            "--listen-client-urls", self.client_url,
            "--advertise-client-urls", self.client_url,
            "--listen-peer-urls", self.peer_url,
            "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", cluster,
            "--initial-cluster-token", token,
            "--initial-cluster-state", "new",
            # Small clusters on one machine: quick elections, a small snapshot interval.
            "--heartbeat-interval", "100",
            "--election-timeout", "1000",
            # A member cut off by a partition keeps campaigning and raising its term; without
            # pre-vote (off by default before etcd 3.5) its return deposes the healthy leader,
            # and the election stalls every host's lease renewal long enough for the watchdogs
            # of hosts that never lost anything to fence them.
            "--pre-vote",
            "--snapshot-count", "10000",
            "--auto-compaction-retention", "1h",
            "--logger", "zap",
            "--log-outputs", "stderr",
            "--log-level", "warn",
        ]


def healthy(client_url: str, timeout: float = 1.0) -> bool:
    try:
        r = httpx.get(f"{client_url}/health", timeout=timeout)
        return r.status_code == 200 and r.json().get("health") in ("true", True)
    except (httpx.HTTPError, ValueError):
        return False


@dataclass(frozen=True)
class MemberStatus:
    member: str  # this member's id
    leader: str  # the id of the leader it follows
    term: int  # raft term: a new one for every election


def member_status(client_url: str, timeout: float = 1.0) -> MemberStatus | None:
    """What a member says of its cluster's leadership, or None when it does not answer or
    knows no leader (an election is on)."""
    try:
        r = httpx.post(f"{client_url}/v3/maintenance/status", json={}, timeout=timeout)
        data = r.json() if r.status_code == 200 else {}
        header = data.get("header", {})
        status = MemberStatus(str(header.get("member_id", "")), str(data.get("leader", "")),
                              int(header.get("raft_term", 0)))
    except (httpx.HTTPError, ValueError, TypeError, AttributeError):
        return None
    return status if status.member and status.leader not in ("", "0") else None


def wait_healthy(client_urls: list[str], timeout: float = 30.0) -> None:
    """Wait until at least one member reports a healthy cluster (it has a leader)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(healthy(u) for u in client_urls):
            return
        time.sleep(0.2)
    raise TimeoutError(f"etcd at {', '.join(client_urls)} not healthy after {timeout:.0f}s")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
