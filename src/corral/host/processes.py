"""What /proc says about a process on this host."""

from __future__ import annotations

from pathlib import Path


def proc_stat(pid: int) -> list[str]:
    """Fields of /proc/<pid>/stat after the command name: [state, ppid, ...]; [] if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return raw[raw.rfind(")") + 2:].split()


def pid_alive(pid: int | None) -> bool:
    """Whether pid runs: a zombie has exited already, whatever kill(pid, 0) says."""
    if not pid:
        return False
    stat = proc_stat(pid)
    return bool(stat) and stat[0] not in ("Z", "X")
