"""Drive local QEMU processes: start daemonised, adopt after restarts, control through QMP.

Every QMP exchange opens its own short connection (see qmp_exchange for what it must
tolerate): nothing is held across calls, so an agent can die and restart at any point and
simply carry on with the running QEMUs, and the monitor is free between exchanges for
whoever else needs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

from corral.cluster.models import VMConfig, VMStatus
from corral.qemu import process
from corral.qemu.cmdline import build_command
from corral.qemu.paths import VMPaths
from corral.qemu.qmp_exchange import QMPError, exchange

QMP_TIMEOUT = 10.0
START_TIMEOUT = 30.0
POLL = 0.02
_PIDFILE_RE = re.compile(r"^(\d+)\.pid$")

# query-status run states -> what Corral reports. A source VM after migration
# ("postmigrate") is paused; a destination waiting for its stream ("inmigrate") is starting.
_STATUS = {
    "running": VMStatus.RUNNING,
    "paused": VMStatus.PAUSED,
    "suspended": VMStatus.PAUSED,
    "postmigrate": VMStatus.PAUSED,
    "finish-migrate": VMStatus.PAUSED,
    "save-vm": VMStatus.PAUSED,
    "restore-vm": VMStatus.PAUSED,
    "io-error": VMStatus.PAUSED,
    "watchdog": VMStatus.PAUSED,
    "debug": VMStatus.PAUSED,
    "colo": VMStatus.PAUSED,
    "prelaunch": VMStatus.STARTING,
    "inmigrate": VMStatus.STARTING,
    "shutdown": VMStatus.SHUTTING_DOWN,
}


# Awaited right before QEMU is launched or told to run the guest, after every slow step of
# the driver: the caller proves there that this host still owns the VM (and raises if not).
Guard = Callable[[], Awaitable[object]]


class QemuError(RuntimeError):
    pass


class AlreadyRunning(QemuError):
    pass


class NotRunning(QemuError):
    pass


def tiny_kernel_file(images_dir: Path, image: str) -> str:
    """The unpacked PVH kernel when the image has one (boots much faster), else the bzImage."""
    return "vmlinux" if (images_dir / image / "vmlinux").is_file() else "vmlinuz"


class QemuDriver:
    def __init__(self, run_dir: Path, images_dir: Path, accel: Literal["kvm", "tcg"]) -> None:
        self.run_dir = run_dir
        self.images_dir = images_dir
        self.accel: Literal["kvm", "tcg"] = accel
        # QEMU's QMP monitor serves one client at a time.
        self._qmp_locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._start_locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)

    def paths(self, vmid: int) -> VMPaths:
        return VMPaths(self.run_dir, vmid)

    def command(
        self,
        config: VMConfig,
        disk_paths: list[Path],
        incoming: str | None = None,
        extra_append: str = "",
    ) -> list[str]:
        kernel_file = tiny_kernel_file(self.images_dir, config.image) if config.image else "vmlinuz"
        return build_command(
            config, self.paths(config.vmid), self.accel, disk_paths, self.images_dir,
            incoming=incoming, extra_append=extra_append, kernel_file=kernel_file,
        )  # fmt: skip

    # --- lifecycle -----------------------------------------------------------------------

    async def start(
        self,
        config: VMConfig,
        disk_paths: list[Path],
        incoming: str | None = None,
        extra_append: str = "",
        guard: Guard | None = None,
    ) -> int:
        """Launch QEMU for `config` and return its pid once QMP answers."""
        paths = self.paths(config.vmid)
        async with self._start_locks[config.vmid]:
            if process.live_pid(paths) is not None:
                raise AlreadyRunning(f"VM {config.vmid} is already running")
            if config.image is not None and not (self.images_dir / config.image).is_dir():
                raise QemuError(f"image {config.image!r} not found in {self.images_dir}")
            for disk in disk_paths:
                if not disk.exists():
                    raise QemuError(f"disk {disk} of VM {config.vmid} does not exist")
            self.run_dir.mkdir(parents=True, exist_ok=True)
            process.remove_control_files(paths)
            paths.serial_log.write_bytes(b"")
            cmd = self.command(config, disk_paths, incoming, extra_append)
            if guard is not None:
                await guard()
            await self._launch(cmd, paths)
            pid = process.live_pid(paths)
            if pid is None:
                raise QemuError(f"VM {config.vmid}: QEMU exited right after starting")
            try:
                await self._wait_qmp(config.vmid, pid)
            except BaseException:
                # A QEMU whose monitor never answered is of no use and must not linger.
                process.kill(pid)
                raise
            return pid

    async def _launch(self, cmd: list[str], paths: VMPaths) -> None:
        # stderr goes to a file, not a pipe: the daemon keeps its copy of the descriptor
        # until it is fully set up, and must never write into a pipe the agent owns. Its own
        # session keeps it out of the agent's process group and its signals.
        with tempfile.TemporaryFile() as err:
            proc = await asyncio.create_subprocess_exec(
                *cmd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )
            try:
                async with asyncio.timeout(START_TIMEOUT):
                    code = await proc.wait()
            except TimeoutError:
                process.kill(proc.pid)
                await proc.wait()
                code = None
            if code != 0:
                err.seek(0)
                message = err.read().decode(errors="replace").strip()
                # A daemon that came up despite a late failure must not linger.
                pid = process.live_pid(paths)
                if pid is not None:
                    process.kill(pid)
                raise QemuError(
                    f"QEMU for VM {paths.vmid} failed (exit {code}): {message or 'no output'}"
                )

    async def _wait_qmp(self, vmid: int, pid: int) -> None:
        deadline = time.monotonic() + QMP_TIMEOUT
        while True:
            try:
                await self._qmp(vmid, "query-status")
                return
            except (TimeoutError, OSError, QemuError) as exc:
                if not process.is_qemu_of(pid, self.paths(vmid)):
                    raise QemuError(f"VM {vmid}: QEMU died before QMP answered") from exc
                if time.monotonic() > deadline:
                    raise QemuError(f"VM {vmid}: QMP did not answer: {exc}") from exc
            await asyncio.sleep(POLL)

    def running(self) -> dict[int, int]:
        """vmid -> pid of every live QEMU with a pidfile here; stale files are removed."""
        found: dict[int, int] = {}
        if not self.run_dir.is_dir():
            return found
        for entry in self.run_dir.iterdir():
            match = _PIDFILE_RE.match(entry.name)
            if not match:
                continue
            vmid = int(match.group(1))
            paths = self.paths(vmid)
            pid = process.live_pid(paths)
            if pid is not None:
                found[vmid] = pid
            elif not self._start_locks[vmid].locked():
                process.remove_control_files(paths)
        return found

    def pid(self, vmid: int) -> int | None:
        return process.live_pid(self.paths(vmid))

    async def wait_exit(self, vmid: int, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait until the VM's QEMU is gone; True if it went within `timeout`."""
        paths = self.paths(vmid)
        pid = process.live_pid(paths)
        if pid is None:
            process.remove_control_files(paths)
            return True
        deadline = time.monotonic() + timeout
        while process.is_qemu_of(pid, paths):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(POLL)
        process.remove_control_files(paths)
        return True

    async def shutdown(self, vmid: int, timeout: float) -> bool:  # noqa: ASYNC109
        """ACPI power-off, hard stop after `timeout`; True if the guest powered off itself.

        A VM that is not running counts as already off.
        """
        if self.pid(vmid) is None:
            return True
        try:
            await self._qmp(vmid, "system_powerdown")
        except (TimeoutError, OSError, QemuError):
            if self.pid(vmid) is None:
                return True
        if await self.wait_exit(vmid, timeout):
            return True
        await self.stop(vmid)
        return False

    async def stop(self, vmid: int) -> None:
        """Hard stop: QMP quit, then SIGKILL if QEMU does not go."""
        pid = self.pid(vmid)
        if pid is None:
            process.remove_control_files(self.paths(vmid))
            return
        with contextlib.suppress(TimeoutError, OSError, QemuError):
            await self._qmp(vmid, "quit", wait=2.0)
        if await self.wait_exit(vmid, 3.0):
            return
        process.kill(pid, signal.SIGKILL)
        if not await self.wait_exit(vmid, 5.0):
            raise QemuError(f"VM {vmid}: QEMU pid {pid} survived SIGKILL")

    async def pause(self, vmid: int) -> None:
        await self._qmp(vmid, "stop")

    async def resume(self, vmid: int, guard: Guard | None = None) -> None:
        await self._qmp(vmid, "cont", guard=guard)

    async def reset(self, vmid: int) -> None:
        await self._qmp(vmid, "system_reset")

    async def status(self, vmid: int, timeout: float = QMP_TIMEOUT) -> VMStatus:  # noqa: ASYNC109
        """What QEMU says; `unknown` while a live process does not answer (frozen, hung):
        never `stopped` unless the process is gone."""
        if self.pid(vmid) is None:
            return VMStatus.STOPPED
        try:
            reply = await self._qmp(vmid, "query-status", wait=timeout)
        except (TimeoutError, OSError, QemuError):
            return VMStatus.STOPPED if self.pid(vmid) is None else VMStatus.UNKNOWN
        return _STATUS.get(str(reply.get("status")), VMStatus.UNKNOWN)

    def read_console(self, vmid: int, offset: int = 0, limit: int = 65536) -> tuple[bytes, int]:
        """Serial output from `offset` on, at most `limit` bytes, and the offset to read next.

        An offset past the end means the log was truncated by a restart: read from the start.
        """
        try:
            with self.paths(vmid).serial_log.open("rb") as fh:
                size = fh.seek(0, 2)
                if offset > size:
                    offset = 0
                fh.seek(offset)
                data = fh.read(limit)
        except FileNotFoundError:
            return b"", 0
        return data, offset + len(data)

    # --- QMP -----------------------------------------------------------------------------

    async def qmp(self, vmid: int, command: str, arguments: dict[str, Any] | None = None) -> Any:
        """Run any QMP command (migration and block jobs build on this)."""
        return await self._qmp(vmid, command, arguments)

    async def _qmp(
        self,
        vmid: int,
        command: str,
        arguments: dict[str, Any] | None = None,
        wait: float = QMP_TIMEOUT,
        guard: Guard | None = None,
    ) -> Any:
        socket = self.paths(vmid).qmp_socket
        # One exchange at a time: a second client would wait in the monitor's listen
        # backlog, its timeout running, until the first hangs up.
        async with self._qmp_locks[vmid]:
            if guard is not None:
                # Last, right before the command: a proof raised here passes on unchanged.
                await guard()
            try:
                return await exchange(socket, command, arguments, wait)
            except (OSError, QMPError) as exc:
                if process.live_pid(self.paths(vmid)) is None:
                    raise NotRunning(f"VM {vmid} is not running") from exc
                raise QemuError(f"VM {vmid}: QMP {command} failed: {exc}") from exc
