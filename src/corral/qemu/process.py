"""Finding a VM's QEMU process from its pidfile, without trusting a stale pid."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from corral.qemu.paths import VMPaths


def read_pidfile(pidfile: Path) -> int | None:
    try:
        text = pidfile.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def is_qemu_of(pid: int, paths: VMPaths) -> bool:
    """True if `pid` is a live (not zombie) QEMU started with this VM's pidfile.

    A recycled pid, or a QEMU that exited and was not reaped, never matches.
    """
    proc = Path("/proc") / str(pid)
    try:
        stat = (proc / "stat").read_text()
        argv = (proc / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    # The state letter follows the parenthesised command name.
    if stat.rpartition(")")[2].split()[:1] in (["Z"], ["X"]):
        return False
    if not argv or b"qemu" not in os.path.basename(argv[0]):
        return False
    pidfile = os.fsencode(paths.pidfile)
    return any(arg == pidfile for arg in argv)


def launched_in(run_dir: Path) -> set[int]:
    """Every live QEMU process whose -pidfile lies in `run_dir`, found through /proc: also
    one still launching, whose daemon has not written its pidfile yet. -daemonize forks
    twice (the process started, a middle one that calls setsid, the daemon), so one VM's
    start shows up to three processes for a moment."""
    real = os.path.realpath(run_dir)
    found: set[int] = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue  # gone since the listing
        # A zombie's cmdline is empty, so the dead never match.
        if not argv or b"qemu" not in os.path.basename(argv[0]) or b"-pidfile" not in argv:
            continue
        i = argv.index(b"-pidfile")
        pidfile = argv[i + 1] if i + 1 < len(argv) else b""
        if os.path.realpath(os.path.dirname(os.fsdecode(pidfile))) == real:
            found.add(int(entry.name))
    return found


def live_pid(paths: VMPaths) -> int | None:
    pid = read_pidfile(paths.pidfile)
    if pid is None or not is_qemu_of(pid, paths):
        return None
    return pid


def kill(pid: int, sig: signal.Signals = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def remove_control_files(paths: VMPaths) -> None:
    """Drop a dead QEMU's pidfile and sockets; the serial log stays for post-mortems."""
    for path in (paths.pidfile, paths.qmp_socket, paths.serial_socket):
        path.unlink(missing_ok=True)
