"""Installing, starting and stopping a host's services.

Where systemd is PID 1 (a real host) they are systemd units in /etc/systemd/system, enabled so
that they come back at boot. Elsewhere (the lab, CI) the lab supervisor runs them: Corral
writes the services it wants, with their command lines, into a control file in the host's run
dir, and the supervisor starts and stops its children to match; it reports back what runs in
a status file beside it. Both run the same command lines (`host.commands`).

Control file, `<run>/services.json` (written by Corral, read by the supervisor):

    {"version": 1, "host": "n1",
     "services": [{"name": "corral-etcd", "argv": ["/usr/bin/etcd", ...], "env": {},
                   "wanted": true}, ...]}

Services are listed in start order: the supervisor starts the wanted ones in that order and
stops the others in the reverse order. The argv is the whole command line (a netns prefix,
if any, is the supervisor's to add).

Status file, `<run>/services-status.json` (written by the supervisor, read by Corral):

    {"version": 1, "services": {"corral-etcd": {"pid": 1234}, ...}}

naming each service it runs right now and its pid.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from corral.cluster.records import what_is_wrong
from corral.host.commands import ServiceCommand, ServiceName, host_commands
from corral.host.config import HostConfig
from corral.host.processes import pid_alive
from corral.host.units import host_units, unit_name, unit_text

UNITS_ROOT = Path("/etc/systemd/system")
MODULES_LOAD_DIR = Path("/etc/modules-load.d")
SYSTEMD_BOOTED = Path("/run/systemd/system")  # what sd_booted() checks
CONTROL_NAME = "services.json"
STATUS_NAME = "services-status.json"
CONTROL_VERSION: Literal[1] = 1
DEVICE_WAIT = 5.0  # udev creates the device node shortly after the module is loaded

Runner = Callable[..., "subprocess.CompletedProcess[str]"]


class ServicesError(RuntimeError):
    """A service could not be installed, started or stopped; the message says which."""


def _write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def write_units(config: HostConfig, root: Path = UNITS_ROOT,
                machine: str | None = None) -> list[Path]:
    """Write the host's unit files into root; their paths, in start order."""
    units = host_units(config, platform.machine() if machine is None else machine)
    out = []
    for name, text in units.items():
        _write_atomic(root / name, text)
        out.append(root / name)
    return out


class Services(Protocol):
    def install(self, commands: Sequence[ServiceCommand]) -> None:
        """Make the services known with these command lines (none starts yet)."""

    def start(self, names: Sequence[ServiceName]) -> None:
        """Start them, in this order, and have them start again at boot."""

    def stop(self, names: Sequence[ServiceName]) -> None:
        """Stop them (and not at boot either)."""

    def is_active(self, name: ServiceName) -> bool: ...


# --- systemd ---------------------------------------------------------------------------------


def systemd_booted(marker: Path = SYSTEMD_BOOTED) -> bool:
    """Whether systemd is PID 1: it creates /run/systemd/system early at boot (sd_booted)."""
    return marker.is_dir()


class SystemdServices:
    def __init__(self, root: Path = UNITS_ROOT, run: Runner = subprocess.run) -> None:
        self.root = root
        self.run = run

    def _systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = self.run(["systemctl", *args], capture_output=True, text=True, check=False)
        if check and result.returncode != 0:
            raise ServicesError(f"systemctl {' '.join(args)} failed "
                                f"(exit {result.returncode}): {result.stderr.strip()}")
        return result

    def install(self, commands: Sequence[ServiceCommand]) -> None:
        names = [c.name for c in commands]
        for command in commands:
            _write_atomic(self.root / unit_name(command.name), unit_text(command, names))
        self._systemctl("daemon-reload")

    def start(self, names: Sequence[ServiceName]) -> None:
        # One transaction: systemd orders the starts by the units' After=.
        self._systemctl("enable", "--now", *(unit_name(n) for n in names))

    def stop(self, names: Sequence[ServiceName]) -> None:
        self._systemctl("disable", "--now", *(unit_name(n) for n in names))

    def is_active(self, name: ServiceName) -> bool:
        return self._systemctl("is-active", "--quiet", unit_name(name),
                               check=False).returncode == 0


# --- the lab supervisor ----------------------------------------------------------------------


class WantedService(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: ServiceName
    argv: list[str] = Field(min_length=1)
    env: dict[str, str] = Field(default_factory=dict)
    wanted: bool = False


class ServiceControl(BaseModel):
    """What the supervisor of a lab host is to run (`<run>/services.json`)."""

    model_config = ConfigDict(extra="ignore")

    version: Literal[1] = CONTROL_VERSION
    host: str
    services: list[WantedService] = Field(default_factory=list)

    def wanted(self) -> list[WantedService]:
        return [s for s in self.services if s.wanted]


class RunningService(BaseModel):
    model_config = ConfigDict(extra="ignore")

    pid: int


class ServiceStatus(BaseModel):
    """What the supervisor runs of a lab host right now (`<run>/services-status.json`)."""

    model_config = ConfigDict(extra="ignore")

    version: Literal[1] = CONTROL_VERSION
    services: dict[str, RunningService] = Field(default_factory=dict)


def control_path(run_dir: Path) -> Path:
    return run_dir / CONTROL_NAME


def status_path(run_dir: Path) -> Path:
    return run_dir / STATUS_NAME


def _read(cls: type[ServiceControl] | type[ServiceStatus], path: Path
          ) -> ServiceControl | ServiceStatus | None:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return cls.model_validate_json(raw)
    except ValidationError as e:
        raise ServicesError(f"{path}: {what_is_wrong(e)}") from None


def read_control(run_dir: Path) -> ServiceControl | None:
    """The lab host's wanted services, None when nothing was installed there; ServicesError
    naming the file and field when it does not read."""
    found = _read(ServiceControl, control_path(run_dir))
    assert found is None or isinstance(found, ServiceControl)
    return found


def read_status(run_dir: Path) -> ServiceStatus:
    found = _read(ServiceStatus, status_path(run_dir))
    assert found is None or isinstance(found, ServiceStatus)
    return found or ServiceStatus()


def write_status(run_dir: Path, pids: dict[str, int]) -> None:
    """For the supervisor: the host's services that run now and their pids."""
    status = ServiceStatus(services={n: RunningService(pid=p) for n, p in pids.items()})
    _write_atomic(status_path(run_dir), status.model_dump_json(indent=2) + "\n")


class SupervisedServices:
    def __init__(self, host: str, run_dir: Path) -> None:
        self.host = host
        self.run_dir = run_dir

    def _load(self) -> ServiceControl:
        return read_control(self.run_dir) or ServiceControl(host=self.host)

    def _save(self, control: ServiceControl) -> None:
        _write_atomic(control_path(self.run_dir), control.model_dump_json(indent=2) + "\n")

    def install(self, commands: Sequence[ServiceCommand]) -> None:
        """The services in this order with these command lines; each keeps whether it was
        wanted, a new one is not yet."""
        before = {s.name: s.wanted for s in self._load().services}
        self._save(ServiceControl(host=self.host, services=[
            WantedService(name=c.name, argv=list(c.argv), env=dict(c.env),
                          wanted=before.get(c.name, False))
            for c in commands
        ]))

    def _want(self, names: Sequence[ServiceName], wanted: bool) -> None:
        control = self._load()
        known = {s.name for s in control.services}
        missing = [n for n in names if n not in known]
        if missing:
            raise ServicesError(f"{control_path(self.run_dir)}: not installed: "
                                f"{', '.join(missing)}")
        for s in control.services:
            if s.name in names:
                s.wanted = wanted
        self._save(control)

    def start(self, names: Sequence[ServiceName]) -> None:
        self._want(names, True)

    def stop(self, names: Sequence[ServiceName]) -> None:
        self._want(names, False)

    def is_active(self, name: ServiceName) -> bool:
        running = read_status(self.run_dir).services.get(name)
        return running is not None and pid_alive(running.pid)


# --- which ---------------------------------------------------------------------------------


def choose(managed_by: str, booted: bool) -> Literal["systemd", "supervisor"]:
    """Who runs a host's services. A real host needs systemd as PID 1: without it nothing
    would restart the services or start them at boot."""
    if managed_by == "supervisor":
        return "supervisor"
    if not booted:
        raise ServicesError("systemd is not running as PID 1 here (no /run/systemd/system): "
                            "a real host needs it to run its services")
    return "systemd"


def services_for(config: HostConfig, units_root: Path = UNITS_ROOT) -> Services:
    if choose(config.managed_by, systemd_booted()) == "supervisor":
        return SupervisedServices(config.name, config.run_dir)
    return SystemdServices(units_root)


def install_and_start(config: HostConfig, services: Services) -> None:
    """Install the host's services with its current command lines and start them all."""
    commands = host_commands(config, platform.machine())
    services.install(commands)
    services.start([c.name for c in commands])


# --- softdog ---------------------------------------------------------------------------------


def softdog_needed(config: HostConfig, device_exists: bool) -> bool:
    """A real host whose mux is to feed a device that is not there: softdog provides one (it
    resets the machine from the kernel: no hardware behind it, but no userspace either)."""
    return (config.role == "host" and config.managed_by == "systemd"
            and config.watchdog.kind == "device" and not device_exists)


def load_softdog(config: HostConfig, run: Runner = subprocess.run,
                 modules_load_dir: Path = MODULES_LOAD_DIR) -> bool:
    """Load softdog when the host needs it, and have it loaded at every boot before the mux
    starts (modules-load.d; the mux's unit is ordered after systemd-modules-load). True when
    it was loaded."""
    if not softdog_needed(config, config.watchdog.device.exists()):
        return False
    result = run(["modprobe", "softdog"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ServicesError(f"no {config.watchdog.device} and `modprobe softdog` failed "
                            f"(exit {result.returncode}): {result.stderr.strip()}")
    _write_atomic(modules_load_dir / "corral-softdog.conf",
                  "# Written by Corral: the watchdog mux needs a watchdog device.\nsoftdog\n")
    deadline = time.monotonic() + DEVICE_WAIT
    while not config.watchdog.device.exists():
        if time.monotonic() > deadline:
            raise ServicesError(f"softdog is loaded but {config.watchdog.device} did not appear")
        time.sleep(0.1)
    return True
