"""Driving a lab cluster through the CLI, as an operator would."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Lab:
    root: Path
    env: dict[str, str]

    def corral(self, *args: str, check: bool = True, timeout: float = 120,
               input: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "corral.cli.main", *args], env=self.env, text=True,
            capture_output=True, timeout=timeout, input=input,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"corral {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self.corral(*args, "--json").stdout)

    def supervisor(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads((self.root / "supervisor.json").read_text())
        return state

    def child_pid(self, name: str) -> int:
        children = self.supervisor()["children"]
        pid = children[name]["pid"] if isinstance(children[name], dict) else children[name]
        if pid is None:
            raise ValueError(f"{name} is not running right now")
        return int(pid)


def wait_until(check: Callable[[], Any], timeout: float = 30.0, what: str = "it") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (AssertionError, KeyError, ValueError, OSError) as e:
            last = e
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


