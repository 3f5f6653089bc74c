"""The command line of each service a host runs, from its HostConfig. Pure.

ONE source: the systemd units of a real host (`host.units`) and the lab supervisor's children
run exactly these argv. Services, in start order: corral-etcd (the cluster store), then
corral-watchdog (the mux on the watchdog device, or the lab watchdog), corral-agent and
corral-api. A witness runs etcd only: it is a voting member and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from corral.host.config import HostConfig

ServiceName = Literal["corral-etcd", "corral-watchdog", "corral-agent", "corral-api"]
ETCD: ServiceName = "corral-etcd"
WATCHDOG: ServiceName = "corral-watchdog"
AGENT: ServiceName = "corral-agent"
API: ServiceName = "corral-api"
SERVICES: tuple[ServiceName, ...] = (ETCD, WATCHDOG, AGENT, API)

# etcd 3.4 refuses to start on an architecture it does not list as supported unless this names
# it (a Raspberry Pi-class witness): uname's machine -> Go's GOARCH.
ETCD_UNSUPPORTED_ARCH = {"aarch64": "arm64", "arm64": "arm64", "armv7l": "arm", "armv6l": "arm"}


@dataclass(frozen=True)
class ServiceCommand:
    name: ServiceName
    description: str
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)


def services_of(config: HostConfig) -> list[ServiceName]:
    """What the host runs, in start order."""
    if config.role == "witness":
        return [ETCD]
    if config.watchdog.kind == "none":
        return [ETCD, AGENT, API]
    return [ETCD, WATCHDOG, AGENT, API]


def _g(value: float) -> str:
    return f"{value:g}"


# Every etcd member's timing and housekeeping, on real hosts and in every lab.
ETCD_TUNING: tuple[str, ...] = (
    # Quick elections: the lease TTL (9 s) must outlast one comfortably.
    "--heartbeat-interval", "100",
    "--election-timeout", "1000",
    # A member cut off by a partition keeps campaigning and raising its term; without
    # pre-vote (off by default in etcd 3.4) its return deposes the healthy leader, and the
    # election stalls every host's lease renewal long enough for the watchdogs of hosts
    # that never lost anything to fence them.
    "--pre-vote",
    "--snapshot-count", "10000",
    "--auto-compaction-retention", "1h",
    "--logger", "zap",
    "--log-outputs", "stderr",
    "--log-level", "warn",
)


def etcd_tls_flags(ca: Path, cert: Path, key: Path) -> list[str]:
    """Mutual TLS for an etcd member: clients and peers alike must show a certificate of the
    cluster's CA (with auth on, etcd takes a client certificate's CN as its user). One
    certificate serves both sides and is the member's client certificate towards its peers."""
    return [
        "--cert-file", str(cert), "--key-file", str(key),
        "--client-cert-auth", "--trusted-ca-file", str(ca),
        "--peer-cert-file", str(cert), "--peer-key-file", str(key),
        "--peer-client-cert-auth", "--peer-trusted-ca-file", str(ca),
    ]


def etcd_command(config: HostConfig, force_new_cluster: bool = False,
                 machine: str = "") -> ServiceCommand:
    """The etcd member of the host. An existing data dir carries the membership: the
    --initial-* flags count at the first start only. force_new_cluster: the one start that
    rebuilds a one-member cluster from this member's data (`cluster expected 1`). machine:
    uname's machine, for etcd's architecture check."""
    listen = [config.client_url]
    if config.local_client_url != config.client_url:
        listen.append(config.local_client_url)
    argv = [
        # The launcher clears a data dir left by a first start that never saved a raft entry
        # (`etcd_launch`), then becomes etcd.
        config.python, "-m", "corral.host.etcd_launch",
        str(config.etcd_binary),
        "--name", config.member_name,
        "--data-dir", str(config.etcd_data_dir),
        "--listen-client-urls", ",".join(listen),
        "--advertise-client-urls", config.client_url,
        "--listen-peer-urls", config.peer_url,
        "--initial-advertise-peer-urls", config.peer_url,
        "--initial-cluster", config.initial_cluster,
        "--initial-cluster-token", f"corral-{config.cluster}",
        "--initial-cluster-state", config.initial_cluster_state,
        *ETCD_TUNING,
    ]
    if config.tls is not None:
        argv += etcd_tls_flags(config.tls.ca_cert, config.tls.cert, config.tls.key)
    if force_new_cluster:
        argv.append("--force-new-cluster")
    env = {}
    if machine in ETCD_UNSUPPORTED_ARCH:
        env["ETCD_UNSUPPORTED_ARCH"] = ETCD_UNSUPPORTED_ARCH[machine]
    return ServiceCommand(ETCD, f"Corral etcd member {config.name} of cluster {config.cluster}",
                          tuple(argv), env)


def watchdog_command(config: HostConfig) -> ServiceCommand | None:
    """The watchdog the agent feeds: the mux on the watchdog device (its reset fences the
    host), or in the lab the lab watchdog, which kills the host's QEMU processes instead.
    None when the host has no watchdog."""
    dog = config.watchdog
    if config.role == "witness" or dog.kind == "none":
        return None
    argv: tuple[str, ...]
    if dog.kind == "lab":
        argv = (
            config.python, "-m", "corral.fencing.labdog",
            "--node", config.name,
            "--run-dir", str(config.qemu_run_dir),
            "--socket", str(config.watchdog_socket),
            "--timeout", _g(dog.client_timeout),
        )
        return ServiceCommand(WATCHDOG, f"Corral lab watchdog of {config.name}", argv)
    argv = (
        *config.corral, "watchdog-mux",
        "--device", str(dog.device),
        "--socket", str(config.watchdog_socket),
        "--client-timeout", _g(dog.client_timeout),
        "--interval", _g(dog.interval),
        "--device-timeout", str(dog.device_timeout),
        "--state-dir", str(config.watchdog_state_dir),
    )
    return ServiceCommand(WATCHDOG, f"Corral watchdog mux on {dog.device}", argv)


def pki_dir(config: HostConfig) -> Path:
    """The directory the agent and the API take their TLS files from (`TLSFiles.in_dir`):
    where `HostTLS.under` puts them."""
    return config.etc_dir / "pki"


def agent_command(config: HostConfig) -> ServiceCommand:
    argv: tuple[str, ...] = (
        *config.corral, "agent", "run",
        "--node", config.name,
        "--data-dir", str(config.data_dir),
        "--images-dir", str(config.images_dir),
        "--etcd", ",".join(config.etcd_endpoints_local_first),
        "--listen", config.agent_listen,
        "--accel", config.accel,
        "--lease-ttl", str(config.lease_ttl),
    )
    if config.watchdog.kind != "none":
        argv += ("--watchdog-socket", str(config.watchdog_socket),
                 "--watchdog-timeout", _g(config.watchdog.client_timeout))
    if config.tls is not None:
        argv += ("--pki-dir", str(pki_dir(config)))
    if config.shared_machine:
        argv += ("--shared-machine",)
    if config.migration_ports is not None:
        argv += ("--migration-ports", config.migration_ports)
    return ServiceCommand(AGENT, f"Corral agent of host {config.name}", argv)


def api_command(config: HostConfig) -> ServiceCommand:
    argv: tuple[str, ...] = (
        *config.corral, "api", "serve",
        "--etcd", ",".join(config.etcd_endpoints_local_first),
        "--host", config.address,
        "--port", str(config.api_port),
    )
    if config.tls is not None:
        argv += ("--pki-dir", str(pki_dir(config)))
    return ServiceCommand(API, f"Corral API on {config.name}", argv)


def host_commands(config: HostConfig, machine: str = "") -> list[ServiceCommand]:
    """Every service of the host, in start order."""
    out = [etcd_command(config, machine=machine)]
    for name in services_of(config)[1:]:
        if name == WATCHDOG:
            dog = watchdog_command(config)
            assert dog is not None  # services_of lists it only when there is one
            out.append(dog)
        elif name == AGENT:
            out.append(agent_command(config))
        elif name == API:
            out.append(api_command(config))
    return out
