"""Driving a lab cluster through the CLI, as an operator would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corral.lab.layout import spare_base_port


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


def lab_env(root: Path, tiny_images: Path) -> dict[str, str]:
    """The environment of a test lab's commands: its own lab dir and client config."""
    env = {
        **os.environ,
        "CORRAL_CONFIG": str(root / "client.json"),
        "CORRAL_IMAGES_DIR": str(tiny_images),
        "CORRAL_LAB_DIR": str(root / "lab"),
    }
    env.pop("CORRAL_URL", None)
    env.pop("CORRAL_TOKEN", None)
    return env


@contextmanager
def running_lab(tiny_images: Path, prefix: str, *up_args: str, nodes: int = 3) -> Iterator[Lab]:
    """A lab of `nodes` hosts on spare ports, started as a user starts one; destroyed
    afterwards."""
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    base = spare_base_port()
    lab = Lab(root / "lab", lab_env(root, tiny_images))
    up = lab.corral("lab", "up", "--nodes", str(nodes), "--accel", "tcg", *up_args,
                    "--base-port", str(base), "--api-port", str(base + 390), timeout=240,
                    check=False)
    try:
        assert up.returncode == 0, f"lab up failed:\n{up.stdout}\n{up.stderr}"
        yield lab
    finally:
        lab.corral("lab", "destroy", "--yes", check=False, timeout=120)
        shutil.rmtree(root, ignore_errors=True)
