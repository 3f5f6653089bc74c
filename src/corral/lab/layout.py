"""Where a lab keeps its files and which ports it uses: pure, no I/O except load/save.

<lab>/lab.json                 this layout, so `status`, `down` and a later `up` agree
<lab>/supervisor.json          written by the running supervisor: pid, children, ready
<lab>/token                    the API token (mode 0600)
<lab>/logs/<process>.log       one log per process (supervisor, n1-etcd, n1-agent, api)
<lab>/shared/                  the `shared` storage (shared-dir), one for all hosts
<lab>/nodes/n<i>/              a host's data dir (--data-dir of its agent)
<lab>/nodes/n<i>/etcd/         its etcd member's data
<lab>/nodes/n<i>/run/          its QEMU pidfiles, QMP sockets, serial logs
<lab>/nodes/n<i>/etc/          its host.json and pki/ (hosts built by `cluster create/join`)
<lab>/nodes/n<i>/run/services.json          the services the host wants (cluster mode)
<lab>/nodes/n<i>/run/services-status.json   what the supervisor runs of them (cluster mode)

<lab>/nodes/n<i>/watchdog.sock the host's lab watchdog, fed by its agent
<lab>/nodes/n<i>/powered-off   present while `lab kill-node` keeps the host down
<lab>/nodes/w/                 the witness (`--witness`, cluster mode): etc/, etcd/, run/ as a
                               host has them, and its power marker

Hosts and machines: the hosts (n1..nN: agents, VMs, `node_names`) are the machines the
network and the supervisor handle, and so is the witness when there is one: machine N+1,
named `w`, with the address, ports and namespace of index N+1, running an etcd voter only.

Ports, for machine i (1-based): etcd client base+i, etcd peer base+100+i, agent base+200+i,
in cluster mode on loopback its own API base+300+i;
the API listens on api_port.

Addresses: 127.0.0.1 for everything in loopback mode. In netns mode (as root) host i lives in
the network namespace corral-<id>-n<i> at 198.18.<net>.<i>, where <id> = base_port // 128
picks the lab's /24 inside 198.18.0.0/15 (two labs whose port blocks do not overlap never
share it); the root namespace's side of the lab bridge is .254, and the API stays there.

Cluster mode (`cluster_mode`): the supervisor starts no etcd, agents or API of its own; each
host runs what its control file wants, as `corral cluster create/join` installed it there
(`corral.host.services`), the same command lines a real host's systemd units run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from corral.host.config import CONFIG_NAME, Accel
from corral.host.services import CONTROL_NAME, STATUS_NAME
from corral.lab.defaults import (
    DEFAULT_API_PORT,
    DEFAULT_BASE_PORT,
    DEFAULT_LEASE_TTL,
    DEFAULT_NODES,
    DEFAULT_WATCHDOG_TIMEOUT,
)
from corral.lab.etcd import EtcdMember
from corral.pki.files import TLSFiles

MAX_NODES = 99  # the port blocks are 100 wide
WITNESS = "w"  # the witness machine's name: no host is named so
ACCELS: tuple[Accel, ...] = ("auto", "tcg", "kvm")
HOST = "127.0.0.1"
NET_BLOCK = 128  # base ports per lab network: base_port // 128 is at most 509 < 512 /24s
BRIDGE_ADDRESS = 254


@dataclass(frozen=True)
class LabLayout:
    root: Path
    nodes: int = DEFAULT_NODES
    base_port: int = DEFAULT_BASE_PORT
    api_port: int = DEFAULT_API_PORT
    accel: Accel = "auto"
    images_dir: Path = Path("/var/lib/corral/images")
    # Set once the first `up` created the demo VMs, so a later `up` never recreates them.
    vms_seeded: bool = False
    netns: bool = False  # one network namespace per host (needs root)
    lease_ttl: int = DEFAULT_LEASE_TTL
    watchdog_timeout: float = DEFAULT_WATCHDOG_TIMEOUT  # 0: hosts run without a watchdog
    # Each host runs the services its control file wants (hosts built by `cluster create`
    # and `join`) instead of the supervisor's own plan.
    cluster_mode: bool = False
    # One more machine, after the hosts: a quorum witness (`corral witness setup`).
    witness: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.nodes <= MAX_NODES:
            raise ValueError(f"nodes must be 1..{MAX_NODES}, not {self.nodes}")
        if self.witness and not self.cluster_mode:
            raise ValueError("witness: a lab gets a witness only when it is built as a cluster "
                             "(--cluster): the witness joins with `corral witness setup`")
        if self.witness and self.nodes >= MAX_NODES:
            raise ValueError(f"nodes must be 1..{MAX_NODES - 1} with a witness, not {self.nodes}")
        if not 1024 <= self.base_port <= 65535 - 400:
            raise ValueError(f"base port {self.base_port} leaves no room for the port blocks")
        if not 1 <= self.api_port <= 65535:
            raise ValueError(f"bad API port {self.api_port}")
        if self.base_port <= self.api_port <= self.base_port + 300 or (
                self.cluster_mode and not self.netns
                and self.base_port + 300 < self.api_port <= self.base_port + 300 + self.machines):
            raise ValueError(f"API port {self.api_port} falls in the lab's port blocks")
        if self.accel not in ACCELS:
            raise ValueError(f"accel must be one of {', '.join(ACCELS)}")
        if self.lease_ttl < 2:
            raise ValueError(f"lease TTL must be at least 2s, not {self.lease_ttl}")
        if self.watchdog_timeout and not 0 < self.watchdog_timeout < self.lease_ttl:
            raise ValueError(f"watchdog timeout ({self.watchdog_timeout:g}s) must be below the "
                             f"lease TTL ({self.lease_ttl}s)")

    # --- hosts -----------------------------------------------------------------------------

    @property
    def node_names(self) -> list[str]:
        return [f"n{i}" for i in range(1, self.nodes + 1)]

    # --- machines: the hosts, and the witness after them -------------------------------------

    @property
    def machines(self) -> int:
        return self.nodes + (1 if self.witness else 0)

    @property
    def witness_index(self) -> int | None:
        return self.nodes + 1 if self.witness else None

    def machine_name(self, i: int) -> str:
        return WITNESS if i == self.witness_index else f"n{i}"

    @property
    def machine_names(self) -> list[str]:
        return [self.machine_name(i) for i in range(1, self.machines + 1)]

    def machine_index(self, name: str) -> int:
        """A host's index, or the witness's (after the hosts)."""
        if name == WITNESS and self.witness_index is not None:
            return self.witness_index
        if name not in self.node_names:
            raise ValueError(f"no host or witness {name!r} in this lab (hosts: n1..n{self.nodes}"
                             + (f", witness: {WITNESS})" if self.witness else ")"))
        return int(name[1:])

    def node_dir(self, i: int) -> Path:
        """Machine i's data dir: a host's, or the witness's."""
        return self.root / "nodes" / self.machine_name(i)

    def run_dir(self, i: int) -> Path:
        return self.node_dir(i) / "run"

    def node_index(self, name: str) -> int:
        if name not in self.node_names:
            what = " (the witness runs no agent and no VMs)" if name == WITNESS and self.witness \
                else ""
            raise ValueError(f"no host {name!r} in this lab (hosts: n1..n{self.nodes}){what}")
        return int(name[1:])

    def etc_dir(self, i: int) -> Path:
        """The host's config dir (HostConfig.for_lab's etc_dir): host.json, pki/."""
        return self.node_dir(i) / "etc"

    def host_config_path(self, i: int) -> Path:
        return self.etc_dir(i) / CONFIG_NAME

    def control_file(self, i: int) -> Path:
        """The services host i wants, written by Corral (`host.services`), read by the
        supervisor in cluster mode."""
        return self.run_dir(i) / CONTROL_NAME

    def services_status_file(self, i: int) -> Path:
        """What the supervisor runs of host i's services: pids, for Corral to read."""
        return self.run_dir(i) / STATUS_NAME

    def watchdog_socket(self, i: int) -> Path:
        return self.node_dir(i) / "watchdog.sock"

    def power_marker(self, i: int) -> Path:
        return self.node_dir(i) / "powered-off"

    def shutdown_marker(self, i: int) -> Path:
        """While present the host is shutting down cleanly: its processes that exit stay
        down (they are not killed, as a power loss would)."""
        return self.node_dir(i) / "shutting-down"

    # --- network ---------------------------------------------------------------------------

    @property
    def net_id(self) -> int:
        return self.base_port // NET_BLOCK

    @property
    def subnet_prefix(self) -> str:
        """The first three octets of the lab's /24 in 198.18.0.0/15."""
        return f"198.{18 + self.net_id // 256}.{self.net_id % 256}"

    def host_address(self, i: int) -> str:
        return f"{self.subnet_prefix}.{i}" if self.netns else HOST

    @property
    def bridge_address(self) -> str:
        return f"{self.subnet_prefix}.{BRIDGE_ADDRESS}"

    @property
    def bridge(self) -> str:
        return bridge_name(self.base_port)

    def veth(self, i: int) -> str:
        """The root namespace's end of host i's link to the bridge."""
        return f"crl{self.net_id}{self.machine_name(i)}"

    def netns_name(self, i: int) -> str:
        return f"corral-{self.net_id}-{self.machine_name(i)}"

    def etcd_member(self, i: int) -> EtcdMember:
        return EtcdMember(
            name=f"n{i}",
            data_dir=self.node_dir(i) / "etcd",
            client_port=self.base_port + i,
            peer_port=self.base_port + 100 + i,
            host=self.host_address(i),
            # Cluster mode: https, the host's own certificate (as `cluster create` made it).
            tls=TLSFiles.in_dir(self.etc_dir(i) / "pki") if self.cluster_mode else None,
        )

    @property
    def etcd_admin_tls(self) -> TLSFiles | None:
        """What a lab tool shows etcd to read and write anything (cluster mode: n1's root
        certificate), None for the plain lab."""
        return TLSFiles.in_dir(self.etc_dir(1) / "pki", "admin") if self.cluster_mode else None

    @property
    def etcd_members(self) -> list[EtcdMember]:
        return [self.etcd_member(i) for i in range(1, self.nodes + 1)]

    @property
    def client_urls(self) -> list[str]:
        return [m.client_url for m in self.etcd_members]

    def etcd_urls_for(self, i: int) -> list[str]:
        """All client URLs with host i's own member first: its agent prefers the local one."""
        own = self.etcd_member(i).client_url
        return [own, *(u for u in self.client_urls if u != own)]

    def agent_port(self, i: int) -> int:
        return self.base_port + 200 + i

    def agent_url(self, i: int) -> str:
        return f"http://{self.host_address(i)}:{self.agent_port(i)}"

    @property
    def ports(self) -> list[int]:
        """Every port the lab listens on in the root namespace (on 127.0.0.1)."""
        out = [self.api_port]
        if self.netns:
            return out  # the hosts listen in their own namespaces
        for i in range(1, self.nodes + 1):
            out += [self.base_port + i, self.base_port + 100 + i, self.agent_port(i)]
            if self.cluster_mode:
                out.append(self.host_api_port(i))
        if (w := self.witness_index) is not None:
            out += [self.base_port + w, self.base_port + 100 + w]  # etcd only
        return out

    # --- API -------------------------------------------------------------------------------

    def host_api_port(self, i: int) -> int:
        """Host i's own API (cluster mode): the lab's API port on its own address, or a port
        of its own on loopback, where the hosts share one address."""
        return self.api_port if self.netns else self.base_port + 300 + i

    def host_api_url(self, i: int) -> str:
        return f"https://{self.host_address(i)}:{self.host_api_port(i)}"

    @property
    def api_url(self) -> str:
        """Where the CLI and the tests reach the API: n1's own in cluster mode, else the
        lab's one API in the root namespace."""
        return self.host_api_url(1) if self.cluster_mode else f"http://{HOST}:{self.api_port}"

    @property
    def other_api_urls(self) -> list[str]:
        """In cluster mode the other hosts' APIs, for the CLI to fall back on."""
        if not self.cluster_mode:
            return []
        return [self.host_api_url(i) for i in range(2, self.nodes + 1)]

    @property
    def ca_file(self) -> Path | None:
        """The cluster CA the API's certificate must chain to (cluster mode), else None."""
        return self.etc_dir(1) / "pki" / "ca.crt" if self.cluster_mode else None

    # --- files -----------------------------------------------------------------------------

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    def log_path(self, process: str) -> Path:
        return self.logs_dir / f"{process}.log"

    @property
    def shared_dir(self) -> Path:
        return self.root / "shared"

    @property
    def token_path(self) -> Path:
        return self.root / "token"

    @property
    def lab_json(self) -> Path:
        return self.root / "lab.json"

    @property
    def supervisor_json(self) -> Path:
        return self.root / "supervisor.json"

    # --- persistence -----------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["root"] = str(self.root)
        data["images_dir"] = str(self.images_dir)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LabLayout:
        return cls(
            root=Path(data["root"]),
            nodes=int(data.get("nodes", DEFAULT_NODES)),
            base_port=int(data.get("base_port", DEFAULT_BASE_PORT)),
            api_port=int(data.get("api_port", DEFAULT_API_PORT)),
            accel=accel_named(str(data.get("accel", "auto"))),
            images_dir=Path(data.get("images_dir", "/var/lib/corral/images")),
            vms_seeded=bool(data.get("vms_seeded", False)),
            netns=bool(data.get("netns", False)),
            lease_ttl=int(data.get("lease_ttl", DEFAULT_LEASE_TTL)),
            watchdog_timeout=float(data.get("watchdog_timeout", DEFAULT_WATCHDOG_TIMEOUT)),
            cluster_mode=bool(data.get("cluster_mode", False)),
            witness=bool(data.get("witness", False)),
        )

    def save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.lab_json, self.to_json())

    @classmethod
    def load(cls, root: Path) -> LabLayout | None:
        """The saved layout of the lab at root (root itself wins over the saved path, so a
        moved lab dir still works), or None when there is none."""
        try:
            data = json.loads((root / "lab.json").read_text())
        except FileNotFoundError:
            return None
        return replace(cls.from_json(data), root=root)

    def with_options(self, **changes: Any) -> LabLayout:
        """This layout with the options that were given (None means: keep)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def write_json_atomic(path: Path, data: Any, mode: int = 0o644) -> None:
    """Readers never see a half-written file: write a sibling, then rename over."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def ephemeral_port_floor() -> int:
    """The lowest port the kernel hands out to outgoing connections: a lab listening above it
    can find its port taken by some client's connection."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def bridge_name(base_port: int) -> str:
    """The bridge of the lab with this base port (interface names have 15 characters at most)."""
    return f"crl{base_port // NET_BLOCK}"


def lab_bridge_exists(base_port: int) -> bool:
    """Whether a lab in network namespaces with this base port is up: its bridge exists."""
    return Path("/sys/class/net", bridge_name(base_port)).exists()


def spare_base_port(span: int = 400, low: int = 20000,
                    in_use: Callable[[int], bool] = lab_bridge_exists) -> int:
    """A random base port whose whole block (ports base..base+span) is free now and lies below
    the ephemeral range: for test and benchmark labs next to a running demo lab. A lab in
    network namespaces listens on its own addresses, not on loopback, so free ports do not
    show it: `in_use` (its bridge) does."""
    import random
    import socket

    high = ephemeral_port_floor() - span
    for _ in range(100):
        base = random.randrange(low, high, span)
        if base <= DEFAULT_BASE_PORT + span and base + span >= DEFAULT_BASE_PORT:
            continue  # the demo lab's block
        if in_use(base):
            continue
        try:
            for port in range(base, base + span):
                with socket.socket() as s:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free block of ports below the ephemeral range")


def accel_named(name: str) -> Accel:
    """name as an accelerator setting; ValueError naming the choices if it is none."""
    for accel in ACCELS:
        if accel == name:
            return accel
    raise ValueError(f"accel must be one of {', '.join(ACCELS)}, not {name!r}")
