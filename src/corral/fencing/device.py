"""The watchdog device behind a small interface: the kernel's, or a fake for tests.

A Linux watchdog (/dev/watchdog: softdog or a hardware timer) starts counting when opened and
resets the host unless written to within its timeout. WDIOC_SETTIMEOUT asks for a timeout;
drivers round it to what the hardware can do (ask 3 s, get 4 s) or refuse it, so the timeout
that counts is the one WDIOC_GETTIMEOUT reads back afterwards. Writing 'V' just before close
(the magic close) stops the timer on drivers that allow it; any other close leaves it running
(the kernel even sends one last keepalive when the device is closed without 'V').
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import math
import os
import platform
import time
from pathlib import Path
from typing import Protocol

MAGIC_CLOSE = b"V"
KEEPALIVE = b"\0"  # any byte but 'V' feeds the device


class DeviceError(OSError):
    """The device refused an operation."""


class WatchdogDevice(Protocol):
    name: str

    def open(self) -> None:
        """Open the device: from here on the timer runs."""

    def set_timeout(self, seconds: int) -> None:
        """Ask for a timeout; the device may round it or refuse it (DeviceError)."""

    def get_timeout(self) -> int:
        """The timeout the device really uses, in seconds."""

    def keepalive(self) -> None:
        """Restart the timer."""

    def magic_close(self) -> None:
        """Stop the timer and close: the only clean way out."""

    def close(self) -> None:
        """Close and leave the timer running: the host resets unless someone reopens and
        feeds the device in time."""


# --- Linux -----------------------------------------------------------------------------------

# <asm-generic/ioctl.h>: dir (2 bits) | size (14) | type (8) | nr (8). The architectures with
# another layout (alpha, mips, powerpc, sparc, parisc) are refused rather than guessed.
_IOC_WRITE, _IOC_READ = 1, 2
_GENERIC_ARCHES = ("x86_64", "i386", "i686", "aarch64", "arm", "riscv64", "s390x")


def _ioc(direction: int, nr: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (ord("W") << 8) | nr


INT_SIZE = 4
WDIOC_KEEPALIVE = _ioc(_IOC_READ, 5, INT_SIZE)
WDIOC_SETTIMEOUT = _ioc(_IOC_READ | _IOC_WRITE, 6, INT_SIZE)
WDIOC_GETTIMEOUT = _ioc(_IOC_READ, 7, INT_SIZE)


class LinuxWatchdog:
    """The kernel's watchdog device. Opening it arms it: only the mux may do that."""

    def __init__(self, path: Path) -> None:
        machine = platform.machine()
        if not (machine in _GENERIC_ARCHES or machine.startswith("arm")):
            raise DeviceError(f"watchdog ioctl numbers not known for {machine}")
        self.path = path
        self.name = str(path)
        self.fd = -1

    def open(self) -> None:
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CLOEXEC)

    def _ioctl_int(self, request: int, value: int) -> int:
        buf = array.array("i", [value])
        try:
            fcntl.ioctl(self.fd, request, buf, True)
        except OSError as e:
            raise DeviceError(e.errno, f"{self.name}: ioctl {request:#x}: {e.strerror}") from e
        return int(buf[0])

    def set_timeout(self, seconds: int) -> None:
        self._ioctl_int(WDIOC_SETTIMEOUT, seconds)

    def get_timeout(self) -> int:
        return self._ioctl_int(WDIOC_GETTIMEOUT, 0)

    def keepalive(self) -> None:
        os.write(self.fd, KEEPALIVE)

    def magic_close(self) -> None:
        try:
            os.write(self.fd, MAGIC_CLOSE)
        finally:
            self.close()

    def close(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1


# --- fake ------------------------------------------------------------------------------------


class FakeWatchdog:
    """A device for tests: records every operation, in `ops` and (optionally) one line each in
    a journal file that another process can read, after its CLOCK_MONOTONIC time. Like real
    drivers it can round the timeout up to its granularity (ask 3, use 4) or refuse to change
    it at all."""

    def __init__(self, granularity: int = 1, refuse_settimeout: bool = False,
                 timeout: int = 60, journal: Path | None = None) -> None:
        if granularity < 1 or timeout < 1:
            raise ValueError("granularity and timeout are at least 1 second")
        self.granularity = granularity
        self.refuse_settimeout = refuse_settimeout
        self.timeout = timeout  # softdog's default until set
        self.journal = journal
        self.name = f"fake watchdog{f' ({journal})' if journal else ''}"
        self.ops: list[str] = []
        self.opened = False
        self.running = False  # the timer: started by open, stopped only by the magic close

    def _record(self, op: str) -> None:
        self.ops.append(op)
        if self.journal is not None:
            with self.journal.open("a") as f:
                f.write(f"{time.monotonic():.3f} {op}\n")

    def _need_open(self, op: str) -> None:
        if not self.opened:
            raise DeviceError(f"{op} on a closed device")

    def open(self) -> None:
        if self.opened:
            raise DeviceError("device busy")  # as a real one: one opener at a time
        self.opened = self.running = True
        self._record("open")

    def set_timeout(self, seconds: int) -> None:
        self._need_open("settimeout")
        if self.refuse_settimeout:
            self._record(f"settimeout {seconds} refused")
            raise DeviceError(f"{self.name} cannot change its timeout")
        self.timeout = max(1, math.ceil(seconds / self.granularity)) * self.granularity
        self._record(f"settimeout {seconds} -> {self.timeout}")

    def get_timeout(self) -> int:
        self._need_open("gettimeout")
        self._record(f"gettimeout {self.timeout}")
        return self.timeout

    def keepalive(self) -> None:
        self._need_open("keepalive")
        self._record("keepalive")

    def magic_close(self) -> None:
        self._need_open("magic close")
        self.running = False
        self._record("magic-close")
        self.opened = False

    def close(self) -> None:
        if self.opened:
            self.opened = False
            self._record("close (still armed)" if self.running else "close")
