"""The QEMU driver: command lines, daemonised processes, QMP control, accelerator choice."""

from corral.qemu.accel import probe_accel
from corral.qemu.cmdline import build_command
from corral.qemu.driver import AlreadyRunning, NotRunning, QemuDriver, QemuError
from corral.qemu.paths import VMPaths

__all__ = [
    "AlreadyRunning",
    "NotRunning",
    "QemuDriver",
    "QemuError",
    "VMPaths",
    "build_command",
    "probe_accel",
]
