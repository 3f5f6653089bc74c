"""Where a VM's QEMU keeps its control files inside a host's run directory."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# sun_path is 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 107


class SocketPathTooLong(ValueError):
    pass


@dataclass(frozen=True)
class VMPaths:
    run_dir: Path
    vmid: int

    def __post_init__(self) -> None:
        length = len(os.fsencode(self.qmp_socket))
        if length > MAX_SOCKET_PATH:
            raise SocketPathTooLong(
                f"QMP socket path {self.qmp_socket} is {length} bytes, unix sockets allow "
                f"{MAX_SOCKET_PATH}: use a shorter run directory"
            )

    @property
    def qmp_socket(self) -> Path:
        return self.run_dir / f"{self.vmid}.qmp"

    @property
    def pidfile(self) -> Path:
        return self.run_dir / f"{self.vmid}.pid"

    @property
    def serial_log(self) -> Path:
        return self.run_dir / f"{self.vmid}.serial.log"
