"""Driving a lab from the outside: start its supervisor, read its state, stop it.

No printing here; `corral lab` (corral.cli.lab) shows what these return.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corral.host.processes import pid_alive
from corral.lab import netns, procs
from corral.lab.layout import LabLayout

DEFAULT_LAB_DIR = Path("/var/lib/corral/lab")
DEFAULT_IMAGES_DIR = Path("/var/lib/corral/images")
DOWN_TIMEOUT = 60.0  # agents 5 s + QEMU 5 s + etcd: well within


def lab_dir(given: Path | None = None) -> Path:
    env = os.environ.get("CORRAL_LAB_DIR")
    return (given or (Path(env) if env else DEFAULT_LAB_DIR)).absolute()


def images_dir_from_env() -> Path | None:
    env = os.environ.get("CORRAL_IMAGES_DIR")
    return Path(env).absolute() if env else None


def read_state(layout: LabLayout) -> dict[str, Any] | None:
    """supervisor.json, or None when there is none (or it is being replaced)."""
    try:
        data: dict[str, Any] = json.loads(layout.supervisor_json.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data


def supervisor_pid(layout: LabLayout) -> int | None:
    """The pid of this lab's running supervisor, checked against its command line (a stale
    supervisor.json may name a recycled pid)."""
    state = read_state(layout)
    pid = int(state["pid"]) if state and state.get("pid") else None
    if pid and pid_alive(pid) and "corral.lab.supervisor" in procs.cmdline(pid):
        return pid
    return None


def busy_ports(layout: LabLayout) -> list[int]:
    busy = []
    for port in layout.ports:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                busy.append(port)
    return busy


def etcd_initialised(layout: LabLayout) -> bool:
    return any((m.data_dir / "member").exists() for m in layout.etcd_members)


def start_supervisor(layout: LabLayout) -> subprocess.Popen[bytes]:
    """Start the supervisor detached (own session, no terminal): it outlives this command."""
    layout.logs_dir.mkdir(parents=True, exist_ok=True)
    with open(layout.log_path("supervisor"), "ab") as logf:
        return subprocess.Popen(
            [sys.executable, "-m", "corral.lab.supervisor", str(layout.root)],
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            cwd=layout.root,
            env={**os.environ, **absolute_pythonpath(os.environ), procs.LAB_ENV: str(layout.root)},
            start_new_session=True,
        )


def absolute_pythonpath(env: Mapping[str, str]) -> dict[str, str]:
    """PYTHONPATH with its relative entries made absolute: the supervisor and its children
    run in the lab dir, where `PYTHONPATH=src` would name nothing and they would import
    another installed Corral than the one that started them."""
    value = env.get("PYTHONPATH")
    if not value:
        return {}
    return {"PYTHONPATH": os.pathsep.join(os.path.abspath(p) if p else p
                                          for p in value.split(os.pathsep))}


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


@dataclass(frozen=True)
class ProcessStatus:
    name: str
    role: str
    pid: int | None
    alive: bool
    restarts: int


@dataclass(frozen=True)
class LabStatus:
    root: Path
    running: bool
    supervisor: int | None
    stage: str | None
    ready: bool
    url: str
    processes: list[ProcessStatus]
    leftovers: list[int]  # lab processes running without a supervisor

    def to_json(self) -> dict[str, Any]:
        return {
            "dir": str(self.root),
            "running": self.running,
            "supervisor": self.supervisor,
            "stage": self.stage,
            "ready": self.ready,
            "url": self.url,
            "processes": [p.__dict__ for p in self.processes],
            "leftovers": self.leftovers,
        }


def status(layout: LabLayout) -> LabStatus:
    pid = supervisor_pid(layout)
    state = read_state(layout) if pid else None
    rows = []
    if state:
        restarts = state.get("restarts", {})
        roles = state.get("roles", {})
        for name, child in state.get("children", {}).items():
            rows.append(ProcessStatus(name, roles.get(name, "?"), child, pid_alive(child),
                                      int(restarts.get(name, 0))))
    return LabStatus(
        root=layout.root,
        running=pid is not None,
        supervisor=pid,
        stage=state.get("stage") if state else None,
        ready=bool(state and state.get("ready")),
        url=layout.api_url,
        processes=rows,
        leftovers=[] if pid else procs.lab_processes(layout),
    )


@dataclass
class DownReport:
    was_running: bool
    stopped: list[str] = field(default_factory=list)  # child names the supervisor stopped
    qemu: list[int] = field(default_factory=list)  # QEMU pids running before the stop
    forced: list[int] = field(default_factory=list)  # pids that needed a kill from here


def down(layout: LabLayout, timeout: float = DOWN_TIMEOUT) -> DownReport:
    """Stop the lab through its supervisor; whatever is left after `timeout` (or without a
    supervisor) is killed from here. Afterwards no lab process runs."""
    pid = supervisor_pid(layout)
    state = read_state(layout) or {}
    report = DownReport(
        was_running=pid is not None,
        stopped=[n for n, p in state.get("children", {}).items() if pid_alive(p)],
        qemu=procs.qemu_pids(layout),
    )
    if pid:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
    # A hung or crashed supervisor leaves its children (QEMU at least) behind.
    leftovers = sorted(set(procs.lab_processes(layout)) | set(procs.qemu_pids(layout)))
    if leftovers:
        procs.terminate(leftovers, 5.0)
        report.forced = leftovers
    if not pid_alive(pid):
        layout.supervisor_json.unlink(missing_ok=True)
        if layout.netns:
            netns.down(layout)  # a crashed supervisor left the namespaces and the bridge
    return report
