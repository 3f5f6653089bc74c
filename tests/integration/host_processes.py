"""Running a host's services for a test: the real command lines of `host.commands`, started
as plain child processes (the `Services` protocol), each with its log beside the host's data.

The lab supervisor does the same for a whole lab; a test that sets up one or two hosts with
`cluster create` / `join` needs no more than this."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from corral.host.commands import ServiceCommand, ServiceName

STOP_GRACE = 10.0


class ProcessServices:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.commands: dict[ServiceName, ServiceCommand] = {}
        self.procs: dict[ServiceName, subprocess.Popen[bytes]] = {}

    def install(self, commands: Sequence[ServiceCommand]) -> None:
        self.commands = {c.name: c for c in commands}

    def start(self, names: Sequence[ServiceName]) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for name in names:
            if name in self.procs and self.procs[name].poll() is None:
                continue
            cmd = self.commands[name]
            with open(self.log_dir / f"{name}.log", "ab") as log:
                self.procs[name] = subprocess.Popen(
                    list(cmd.argv), env={**os.environ, **cmd.env}, stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self, names: Sequence[ServiceName]) -> None:
        for name in reversed(list(names)):
            proc = self.procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def is_active(self, name: ServiceName) -> bool:
        proc = self.procs.get(name)
        return proc is not None and proc.poll() is None

    def kill(self, name: ServiceName) -> None:
        """As a crash or power loss would: no goodbye."""
        proc = self.procs.pop(name, None)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def close(self) -> None:
        self.stop(list(self.procs))

    def log(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""
