"""A host's own description, `<etc>/host.json` (mode 0600): which cluster it belongs to, its
role, address and ports, the cluster's etcd members, its directories, its lease and watchdog
settings and the paths of its TLS files. Everything its services' command lines are made of
(`host.commands`) comes from here, on a real host and in the lab alike.

Real hosts keep it in /etc/corral, their data in /var/lib/corral and their sockets in
/run/corral (a tmpfs: a reset clears it); a lab host keeps everything below
<lab>/nodes/<name>/.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import sys
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from corral.cluster.models import check_name
from corral.cluster.records import what_is_wrong
from corral.fencing.timing import fits_lease, labdog_fence_time, mux_fence_time
from corral.host.ports import PortRange

Role = Literal["host", "witness"]
ClusterState = Literal["new", "existing"]
Accel = Literal["auto", "kvm", "tcg"]
WatchdogKind = Literal["device", "lab", "none"]
# Who starts the host's services: systemd (a real host), or the lab supervisor, which reads
# the wanted services from a control file in the host's run dir (`host.services`).
ManagedBy = Literal["systemd", "supervisor"]

CONFIG_NAME = "host.json"
REAL_ETC = Path("/etc/corral")
REAL_DATA = Path("/var/lib/corral")
REAL_RUN = Path("/run/corral")
REAL_IMAGES = Path("/var/lib/corral/images")
ETCD_BINARY = Path("/usr/bin/etcd")
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
API_PORT = 8470
AGENT_PORT = 8471
LEASE_TTL = 9
LAB_WATCHDOG_TIMEOUT = 6.0
LABDOG_TICK = 0.1  # corral.fencing.labdog.TICK (not imported: that module is a process's shell)
SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes with the terminating NUL


class HostConfigError(ValueError):
    """host.json is missing, unreadable or invalid; the message names the file and field."""


class WatchdogSettings(BaseModel):
    """What fences this host when its agent stops feeding.

    device: the watchdog mux on a watchdog device (hardware, or softdog), which resets the
    machine; lab: the lab watchdog, which kills the host's QEMU processes; none: no watchdog
    (the host runs VMs but the cluster never recovers them by the clock).
    """

    model_config = ConfigDict(extra="ignore")

    kind: WatchdogKind = "device"
    device: Path = Path("/dev/watchdog")
    # Seconds the agent may go unfed: the mux's --client-timeout, the lab watchdog's
    # --timeout and the agent's --watchdog-timeout.
    client_timeout: float = Field(default=4.0, gt=0)
    interval: float = Field(default=0.5, gt=0)  # the mux's device feed interval
    device_timeout: int = Field(default=2, ge=1)  # asked of the device by the mux

    @model_validator(mode="after")
    def _interval_below_timeout(self) -> Self:
        if self.kind == "device" and self.interval >= self.client_timeout:
            raise ValueError(f"interval ({self.interval:g}s) must be below client_timeout "
                             f"({self.client_timeout:g}s)")
        return self

    def fence_time(self) -> float:
        """From the agent's last feed to its host's fence, at the latest (the device may read
        back another timeout than the one asked: the mux then acknowledges that one)."""
        if self.kind == "device":
            return mux_fence_time(self.client_timeout, self.interval, self.device_timeout)
        if self.kind == "lab":
            return labdog_fence_time(self.client_timeout, LABDOG_TICK)
        return 0.0


class HostTLS(BaseModel):
    """Paths of the host's TLS files (`<etc>/pki/`). The CA key and the admin (etcd root)
    certificate live on full hosts only, never on a witness."""

    model_config = ConfigDict(extra="ignore")

    ca_cert: Path
    cert: Path  # this host's: server and client certificate of etcd, agent and API
    key: Path
    ca_key: Path | None = None
    admin_cert: Path | None = None
    admin_key: Path | None = None

    @classmethod
    def under(cls, etc_dir: Path, role: Role) -> HostTLS:
        pki = etc_dir / "pki"
        full = role == "host"
        return cls(
            ca_cert=pki / "ca.crt",
            cert=pki / "host.crt",
            key=pki / "host.key",
            ca_key=pki / "ca.key" if full else None,
            admin_cert=pki / "admin.crt" if full else None,
            admin_key=pki / "admin.key" if full else None,
        )


def url(scheme: str, address: str, port: int) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"{scheme}://{host}:{port}"


class HostConfig(BaseModel):
    model_config = ConfigDict(extra="ignore")

    cluster: str
    name: str
    role: Role = "host"
    address: str  # an IP address: etcd listens on it (and on 127.0.0.1)
    etcd_client_port: int = Field(default=ETCD_CLIENT_PORT, ge=1, le=65535)
    etcd_peer_port: int = Field(default=ETCD_PEER_PORT, ge=1, le=65535)
    agent_port: int = Field(default=AGENT_PORT, ge=1, le=65535)
    api_port: int = Field(default=API_PORT, ge=1, le=65535)
    # Client URLs of every etcd member of the cluster; empty: this member alone.
    etcd_endpoints: list[str] = Field(default_factory=list)
    # etcd's --initial-cluster and --initial-cluster-state for the first start (a member
    # with data ignores both); empty: this member alone.
    initial_cluster: str = ""
    initial_cluster_state: ClusterState = "new"
    etc_dir: Path = REAL_ETC
    data_dir: Path = REAL_DATA
    run_dir: Path = REAL_RUN
    images_dir: Path = REAL_IMAGES
    accel: Accel = "auto"
    lease_ttl: int = Field(default=LEASE_TTL, ge=2)
    watchdog: WatchdogSettings = Field(default_factory=WatchdogSettings)
    tls: HostTLS | None  # None: plain HTTP everywhere (lab and tests without a CA)
    # How the services are started: the `corral` command (argv prefix), the Python that has
    # corral installed (the lab watchdog is a module of its own), etcd's binary.
    corral: list[str] = Field(default_factory=lambda: ["/usr/local/bin/corral"], min_length=1)
    python: str = "/usr/bin/python3"
    etcd_binary: Path = ETCD_BINARY
    managed_by: ManagedBy = "systemd"
    # Several hosts on one machine (a lab): the machine's CPU load is not this host's, so its
    # agent publishes only its VMs' demand to the balancer.
    shared_machine: bool = False
    # "LOW-HIGH": the ports a migration's streams to this host listen on, for a firewall
    # between hosts; None: ports the kernel picks from its ephemeral range.
    migration_ports: str | None = None

    # --- checks ----------------------------------------------------------------------------

    @field_validator("cluster", "name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value)

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise ValueError(f"must be an IP address, not {value!r}") from None

    @field_validator("migration_ports")
    @classmethod
    def _migration_ports(cls, value: str | None) -> str | None:
        return None if value is None else str(PortRange.parse(value))

    @field_validator("etc_dir", "data_dir", "run_dir", "images_dir", "etcd_binary")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        if not value.is_absolute():
            raise ValueError(f"must be an absolute path, not {str(value)!r}")
        return value

    @field_validator("corral")
    @classmethod
    def _corral(cls, value: list[str]) -> list[str]:
        if not value[0].startswith("/"):
            raise ValueError(f"must start with an absolute path, not {value[0]!r}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        ports = [self.etcd_client_port, self.etcd_peer_port]
        if self.role == "host":
            ports += [self.agent_port, self.api_port]
        if len(set(ports)) != len(ports):
            raise ValueError(f"the ports of one host must differ: {ports}")
        if self.migration_ports is not None:
            migration = PortRange.parse(self.migration_ports)
            if clash := [p for p in ports if p in migration]:
                raise ValueError(f"migration_ports {migration} holds the host's own port(s) "
                                 f"{clash}")
        if not self.etcd_endpoints:
            self.etcd_endpoints = [self.client_url]
        for endpoint in self.etcd_endpoints:
            if not endpoint.startswith(f"{self.scheme}://"):
                raise ValueError(f"etcd_endpoints: {endpoint!r} is not {self.scheme} "
                                 f"(TLS is {'on' if self.tls else 'off'})")
        if not self.initial_cluster:
            self.initial_cluster = f"{self.member_name}={self.peer_url}"
        members = [m.partition("=") for m in self.initial_cluster.split(",")]
        if (self.member_name, "=", self.peer_url) not in members:
            raise ValueError(f"initial_cluster: must name this member as "
                             f"{self.member_name}={self.peer_url}, not "
                             f"{self.initial_cluster!r}")
        if self.tls is not None and self.role == "witness" and (
                self.tls.ca_key or self.tls.admin_cert or self.tls.admin_key):
            raise ValueError("tls: a witness keeps neither the CA key nor the admin certificate")
        if self.role == "host" and self.watchdog.kind == "device":
            # A real host's watchdog must fit its lease. A lab may run a slower one on
            # purpose (its host then publishes no fence time and is not recovered by the
            # clock), as a plain agent may.
            self._check_watchdog()
        if len(bytes(self.watchdog_socket)) > SOCKET_PATH_MAX:
            raise ValueError(f"run_dir: {self.run_dir} is too deep for the watchdog socket "
                             f"(at most {SOCKET_PATH_MAX} bytes)")
        return self

    def _check_watchdog(self) -> None:
        """The agent's own check (AgentSettings.check) and whether the fence fits the lease
        with the renewals the agent will make: a host whose watchdog fences too late would be
        published as unfenceable, so say so at setup instead."""
        timeout = self.watchdog.client_timeout
        if timeout >= self.lease_ttl:
            raise ValueError(f"watchdog.client_timeout ({timeout:g}s) must be below lease_ttl "
                             f"({self.lease_ttl}s)")
        renew = min(self.lease_ttl, timeout) / 3  # AgentSettings.renew_interval
        fence = self.watchdog.fence_time()
        if not fits_lease(fence, renew, self.lease_ttl):
            raise ValueError(f"watchdog: fences {fence:g}s after the last feed, which with "
                             f"renewals every {renew:.3g}s does not fit lease_ttl "
                             f"({self.lease_ttl}s)")

    # --- derived ---------------------------------------------------------------------------

    @property
    def member_name(self) -> str:
        """Its etcd member (and user) name: a witness's is prefixed, so that no host's
        certificate can pass for a witness's or the reverse."""
        return self.name if self.role == "host" else f"witness-{self.name}"

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    @property
    def client_url(self) -> str:
        return url(self.scheme, self.address, self.etcd_client_port)

    @property
    def peer_url(self) -> str:
        return url(self.scheme, self.address, self.etcd_peer_port)

    @property
    def local_client_url(self) -> str:
        """etcd also listens on the loopback address (the host certificate names
        127.0.0.1), for the host's own clients."""
        return url(self.scheme, "127.0.0.1", self.etcd_client_port)

    @property
    def etcd_endpoints_local_first(self) -> list[str]:
        """The cluster's endpoints with this host's own member first: its clients prefer it."""
        return [self.client_url, *(e for e in self.etcd_endpoints if e != self.client_url)]

    @property
    def agent_listen(self) -> str:
        return f"{self.address}:{self.agent_port}"

    @property
    def api_url(self) -> str:
        return url(self.scheme, self.address, self.api_port)

    @property
    def config_path(self) -> Path:
        return self.etc_dir / CONFIG_NAME

    @property
    def etcd_data_dir(self) -> Path:
        return self.data_dir / "etcd"

    @property
    def qemu_run_dir(self) -> Path:
        """The agent's run dir (AgentSettings.run_dir): QEMU pidfiles, QMP sockets."""
        return self.data_dir / "run"

    @property
    def watchdog_socket(self) -> Path:
        return self.run_dir / "watchdog.sock"

    @property
    def watchdog_state_dir(self) -> Path:
        return self.run_dir / "watchdog-mux"

    # --- constructors ----------------------------------------------------------------------

    @classmethod
    def for_lab(cls, lab_root: Path, name: str, *, cluster: str, address: str,
                etcd_client_port: int, etcd_peer_port: int, agent_port: int, api_port: int,
                images_dir: Path, role: Role = "host", tls: bool = True,
                watchdog_timeout: float = LAB_WATCHDOG_TIMEOUT, lease_ttl: int = LEASE_TTL,
                accel: Accel = "auto", python: str = sys.executable,
                **fields: object) -> HostConfig:
        """A lab host: <lab>/nodes/<name>/ is its data dir (etcd/ and run/ below, where the
        lab has always kept them), with etc/ beside; its run dir is the agent's (QEMU files,
        the watchdog socket, the supervisor's control file). The lab watchdog (0: none), the
        `corral` CLI run as `python -m corral.cli.main`, services started by the lab
        supervisor. `fields` sets the rest (etcd_endpoints, initial_cluster, ...)."""
        node = lab_root / "nodes" / name
        return cls.model_validate({
            "cluster": cluster, "name": name, "role": role, "address": address,
            "etcd_client_port": etcd_client_port, "etcd_peer_port": etcd_peer_port,
            "agent_port": agent_port, "api_port": api_port,
            "etc_dir": node / "etc", "data_dir": node, "run_dir": node / "run",
            "images_dir": images_dir, "accel": accel, "lease_ttl": lease_ttl,
            "watchdog": WatchdogSettings(kind="lab" if watchdog_timeout else "none",
                                         client_timeout=watchdog_timeout or 1.0),
            "tls": HostTLS.under(node / "etc", role) if tls else None,
            "corral": [python, "-m", "corral.cli.main"], "python": python,
            "etcd_binary": shutil.which("etcd") or ETCD_BINARY,
            "managed_by": "supervisor",
            "shared_machine": True,
            **fields,
        })

    @classmethod
    def for_real_host(cls, *, cluster: str, name: str, address: str, role: Role = "host",
                      **fields: object) -> HostConfig:
        """A real host: /etc/corral, /var/lib/corral, /run/corral, the watchdog mux on
        /dev/watchdog, TLS files in /etc/corral/pki, this installation's `corral`."""
        values: dict[str, object] = {
            "cluster": cluster, "name": name, "address": address, "role": role,
            "tls": HostTLS.under(REAL_ETC, role), "corral": installed_corral(),
            "python": sys.executable,
        }
        return cls.model_validate(values | fields)


def installed_corral() -> list[str]:
    """The `corral` command of this installation: the console script beside this Python
    (a venv's bin/), else the one on PATH, else the module run by this Python."""
    beside = Path(sys.executable).parent / "corral"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    found = shutil.which("corral")
    if found:
        return [str(Path(found).resolve())]
    return [sys.executable, "-m", "corral.cli.main"]


# --- files -----------------------------------------------------------------------------------


def load(path: Path) -> HostConfig:
    """The host config at path; HostConfigError naming the file (and the field) otherwise."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise HostConfigError(f"{path}: no host config: this machine is in no cluster "
                              "(`corral cluster create` or `join` writes it)") from None
    except OSError as e:
        raise HostConfigError(f"{path}: cannot read the host config: {e.strerror}") from None
    try:
        return HostConfig.model_validate_json(raw)
    except ValidationError as e:
        raise HostConfigError(f"{path}: {what_is_wrong(e)}") from None


def save(config: HostConfig, path: Path | None = None) -> Path:
    """Write the config (default: <etc>/host.json) atomically, mode 0600 from the start: it
    names the key files and the cluster's layout."""
    path = path or config.config_path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(config.model_dump_json(indent=2) + "\n")
    os.chmod(tmp, 0o600)  # an umask cannot widen it, but an old tmp file could be wider
    os.replace(tmp, path)
    return path
