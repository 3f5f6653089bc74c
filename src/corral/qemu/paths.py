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
        for socket in (self.qmp_socket, self.serial_socket):
            length = len(os.fsencode(socket))
            if length > MAX_SOCKET_PATH:
                raise SocketPathTooLong(
                    f"socket path {socket} is {length} bytes, unix sockets allow "
                    f"{MAX_SOCKET_PATH}: use a shorter run directory"
                )

    @property
    def qmp_socket(self) -> Path:
        return self.run_dir / f"{self.vmid}.qmp"

    @property
    def pidfile(self) -> Path:
        return self.run_dir / f"{self.vmid}.pid"

    @property
    def serial_socket(self) -> Path:
        """The serial port: QEMU listens here, the agent's console connects (one at a time)."""
        return self.run_dir / f"{self.vmid}.tty"

    @property
    def serial_log(self) -> Path:
        """Everything the guest wrote to its serial port, whether or not a console listened."""
        return self.run_dir / f"{self.vmid}.serial.log"
