"""What the lab supervisor runs: each child's spec and, in cluster mode, the children a host's
control file asks for and the stops and starts that bring the running ones there. Pure, but
for reading the control file.

A host's services become children named as the supervisor's own plan names them (n1-etcd,
n1-watchdog, n1-agent, and n1-api, for the API each such host runs), with the same roles, so
that `lab status` and the faults (`kill-node`, `freeze-agent`, `kill-etcd-leader`, ...) find
them alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from corral.host.commands import AGENT, API, ETCD, WATCHDOG, ServiceName
from corral.host.services import ServiceControl, ServicesError, control_path, read_control
from corral.lab import netns, procs
from corral.lab.layout import LabLayout

Role = Literal["etcd", "watchdog", "agent", "api", "other"]

SERVICE_ROLES: dict[ServiceName, Role] = {
    ETCD: "etcd", WATCHDOG: "watchdog", AGENT: "agent", API: "api",
}


@dataclass(frozen=True)
class ChildSpec:
    name: str
    argv: tuple[str, ...]
    log: Path
    role: Role = "other"
    env: dict[str, str] = field(default_factory=dict)
    restart: bool = True
    host: str | None = None  # the simulated host it belongs to (powered off together)
    service: ServiceName | None = None  # the host service it runs (cluster mode)


def child_name(host: str, service: ServiceName) -> str:
    return f"{host}-{SERVICE_ROLES[service]}"


def read_wanted(run_dir: Path, host: str) -> ServiceControl | None:
    """The control file of the lab host `host`, None when there is none (nothing installed
    yet); ServicesError naming the file and the field when it does not read, names another
    host, or lists a service twice."""
    control = read_control(run_dir)
    if control is None:
        return None
    path = control_path(run_dir)
    if control.host != host:
        raise ServicesError(f"{path}: host: {control.host!r} is not the lab host it lies in "
                            f"({host!r})")
    names = [s.name for s in control.services]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ServicesError(f"{path}: services: listed more than once: {', '.join(twice)}")
    return control


def wanted_children(layout: LabLayout, i: int, control: ServiceControl | None) -> list[ChildSpec]:
    """The children machine i (a host, or the witness) is to run, in start order: the wanted
    services of its control file (None: nothing), inside its network namespace in netns
    mode."""
    if control is None:
        return []
    host = layout.machine_name(i)
    out = []
    for service in control.wanted():
        name = child_name(host, service.name)
        out.append(ChildSpec(
            name, (*netns.exec_prefix(layout, i), *service.argv), layout.log_path(name),
            SERVICE_ROLES[service.name], {procs.LAB_ENV: str(layout.root), **service.env},
            host=host, service=service.name,
        ))
    return out


@dataclass(frozen=True)
class Changes:
    stop: tuple[str, ...] = ()  # child names, in the order to stop them
    start: tuple[ChildSpec, ...] = ()  # in the order to start them

    def __bool__(self) -> bool:
        return bool(self.stop or self.start)


def changes(running: Sequence[ChildSpec], wanted: Sequence[ChildSpec]) -> Changes:
    """From the children a host has (in the order they were started) to the ones it wants:
    the unwanted stop in reverse order, the missing start in the wanted order. A child whose
    command line or environment changed stops and starts again: a flow that stops and starts
    a service to change its command line (`cluster expected 1`) may do both between two
    looks at the control file."""
    want = {s.name: s for s in wanted}
    stale = [s for s in running if want.get(s.name) != s]
    keep = {s.name for s in running} - {s.name for s in stale}
    return Changes(stop=tuple(s.name for s in reversed(stale)),
                   start=tuple(s for s in wanted if s.name not in keep))
