"""etcd members for a lab cluster (and for the test suite): command lines and health checks.

Without TLS files a member speaks plain HTTP (the lab and the test suite as they were); with
them, client and peer URLs are https and both sides must present a certificate of the
cluster CA (mutual TLS).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx

from corral.cluster.health import healthy
from corral.host.commands import ETCD_TUNING, etcd_tls_flags
from corral.host.ports import free_port as free_port  # labs, tests and benches use it from here
from corral.pki.files import TLSFiles

ClusterState = Literal["new", "existing"]


@dataclass(frozen=True)
class EtcdMember:
    name: str
    data_dir: Path
    client_port: int
    peer_port: int
    host: str = "127.0.0.1"
    tls: TLSFiles | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def client_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.peer_port}"

    def command(self, members: Sequence[EtcdMember], token: str = "corral-lab",
                state: ClusterState = "new",
                initial_cluster: Sequence[tuple[str, str]] | None = None) -> list[str]:
        """The member's command line. `members` make the initial cluster, unless
        `initial_cluster` gives it as (name, peer URL) pairs: a member joining a running
        cluster (state "existing") lists the members etcd reported when it was added."""
        binary = shutil.which("etcd") or "/usr/bin/etcd"
        pairs = (initial_cluster if initial_cluster is not None
                 else [(m.name, m.peer_url) for m in members])
        cluster = ",".join(f"{name}={url}" for name, url in pairs)
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
            "--initial-cluster-state", state,
            *ETCD_TUNING,
            *(etcd_tls_flags(self.tls.ca, self.tls.cert, self.tls.key) if self.tls else []),
        ]


def _client_kwargs(tls: TLSFiles | None) -> dict[str, Any]:
    return tls.httpx_kwargs() if tls else {}


@dataclass(frozen=True)
class MemberStatus:
    member: str  # this member's id
    leader: str  # the id of the leader it follows
    term: int  # raft term: a new one for every election


def member_status(client_url: str, timeout: float = 1.0,
                  tls: TLSFiles | None = None) -> MemberStatus | None:
    """What a member says of its cluster's leadership, or None when it does not answer or
    knows no leader (an election is on). Over etcd's HTTP gateway, which etcd 3.4 refuses to a
    client certificate once its authentication is on: there, `cluster.members.endpoint_status`
    asks over gRPC."""
    try:
        r = httpx.post(f"{client_url}/v3/maintenance/status", json={}, timeout=timeout,
                       **_client_kwargs(tls))
        data = r.json() if r.status_code == 200 else {}
        header = data.get("header", {})
        status = MemberStatus(str(header.get("member_id", "")), str(data.get("leader", "")),
                              int(header.get("raft_term", 0)))
    except (httpx.HTTPError, ValueError, TypeError, AttributeError):
        return None
    return status if status.member and status.leader not in ("", "0") else None


def wait_healthy(client_urls: list[str], timeout: float = 30.0,
                 tls: TLSFiles | None = None) -> None:
    """Wait until at least one member reports a healthy cluster (it has a leader)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(healthy(u, tls=tls) for u in client_urls):
            return
        time.sleep(0.2)
    raise TimeoutError(f"etcd at {', '.join(client_urls)} not healthy after {timeout:.0f}s")
