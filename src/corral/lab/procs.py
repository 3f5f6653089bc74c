"""Finding and stopping a lab's processes: QEMU through the hosts' pidfiles, and any leftover
lab process (marked by CORRAL_LAB in its environment, or by the lab dir in a known command)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from corral.host.processes import pid_alive, proc_stat
from corral.lab.layout import LabLayout

LAB_ENV = "CORRAL_LAB"  # every process the supervisor starts (and QEMU, by inheritance) has it


def _ppid(pid: int) -> int:
    stat = proc_stat(pid)
    return int(stat[1]) if len(stat) > 1 else 0


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (a.decode(errors="replace").partition("=") for a in raw.split(b"\0") if a)
    return {k: v for k, _, v in pairs}


def all_pids() -> Iterator[int]:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            yield int(entry)


def is_qemu(pid: int) -> bool:
    argv = cmdline(pid)
    return bool(argv) and "qemu" in Path(argv[0]).name


def qemu_pids(layout: LabLayout) -> list[int]:
    """QEMU processes of the lab's hosts: pidfiles in each run dir, checked against
    /proc/<pid>/cmdline (a stale pidfile may name a recycled pid); plus any QEMU whose command
    line points into the lab's hosts, in case a pidfile was lost."""
    found: set[int] = set()
    for i in range(1, layout.nodes + 1):
        for pidfile in layout.run_dir(i).rglob("*.pid"):
            with contextlib.suppress(OSError, ValueError):
                pid = int(pidfile.read_text().split()[0])
                if is_qemu(pid):
                    found.add(pid)
    nodes = str(layout.root / "nodes") + "/"
    for pid in all_pids():
        argv = cmdline(pid)
        if argv and "qemu" in Path(argv[0]).name and any(nodes in a for a in argv):
            found.add(pid)
    return sorted(p for p in found if pid_alive(p))


def _ours(argv: list[str]) -> bool:
    """Commands a lab runs: a process of another kind that merely names the lab dir (a user's
    `tail -f <lab>/logs/...`) is never one of them."""
    if not argv:
        return False
    exe = Path(argv[0]).name
    return (
        "qemu" in exe
        or exe == "etcd"
        or "corral.host.etcd_launch" in argv
        or "corral.lab.supervisor" in argv
        or "corral.fencing.labdog" in argv
        or ("corral.cli.main" in argv and ("agent" in argv or "api" in argv))
    )


def lab_processes(layout: LabLayout) -> list[int]:
    """Every live process that belongs to the lab, except this one and its ancestors."""
    root = str(layout.root)
    skip = {0, os.getpid()}
    pid = os.getppid()
    while pid > 1 and pid not in skip:
        skip.add(pid)
        pid = _ppid(pid)
    out: list[int] = []
    for pid in all_pids():
        if pid in skip or pid == 1:
            continue
        argv = cmdline(pid)
        names_lab = any(a == root or root + "/" in a for a in argv)
        if _environ(pid).get(LAB_ENV) == root or (_ours(argv) and names_lab):
            out.append(pid)
    return sorted(p for p in out if pid_alive(p))


def signal_all(pids: Iterable[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def terminate(pids: Iterable[int], grace: float = 5.0) -> list[int]:
    """SIGTERM, then SIGKILL whatever still runs after `grace` seconds. Returns the pids that
    needed SIGKILL."""
    pids = [p for p in pids if pid_alive(p)]
    signal_all(pids, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.05)
    stubborn = [p for p in pids if pid_alive(p)]
    signal_all(stubborn, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and any(pid_alive(p) for p in stubborn):
        time.sleep(0.05)
    return stubborn
