"""Fixtures for tests that boot the tiny guest under TCG.

Import them into a test module: `from qemu_fixtures import qemu_run_dir, tiny_images`.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.image.tiny import build_tiny
from corral.qemu import process
from corral.qemu.driver import QemuDriver
from corral.qemu.paths import VMPaths


@pytest.fixture(scope="session")
def tiny_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An images directory holding the tiny guest, built once per session.

    CORRAL_IMAGES_DIR reuses a directory across sessions (the build is skipped when current).
    """
    if shutil.which("qemu-system-x86_64") is None:
        pytest.fail("qemu-system-x86_64 is not installed: run `make test`, which installs it")
    env = os.environ.get("CORRAL_IMAGES_DIR")
    images = Path(env) if env else tmp_path_factory.mktemp("images")
    build_tiny(images, log=lambda _line: None)
    return images


def kill_all_qemu(run_dir: Path) -> None:
    """SIGKILL every QEMU whose pidfile lies in `run_dir` and wait for it to go."""
    for pidfile in run_dir.glob("*.pid"):
        if not pidfile.stem.isdigit():
            continue
        paths = VMPaths(run_dir, int(pidfile.stem))
        pid = process.read_pidfile(pidfile)
        if pid is None or not process.is_qemu_of(pid, paths):
            continue
        process.kill(pid)
        for _ in range(100):
            if not process.is_qemu_of(pid, paths):
                break
            time.sleep(0.05)


@pytest.fixture
def qemu_run_dir() -> Iterator[Path]:
    """A short run directory under /tmp (unix socket paths are limited to 107 bytes)."""
    run_dir = Path(tempfile.mkdtemp(prefix="cq", dir="/tmp"))
    try:
        yield run_dir
    finally:
        kill_all_qemu(run_dir)
        shutil.rmtree(run_dir, ignore_errors=True)


async def wait_console(
    driver: QemuDriver, vmid: int, pattern: bytes, timeout: float = 15.0
) -> bytes:
    """The serial log once it matches the regex `pattern`; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        data, _ = driver.read_console(vmid)
        if re.search(pattern, data):
            return data
        if time.monotonic() > deadline:
            raise AssertionError(f"{pattern!r} not on the console of {vmid}:\n{data.decode()}")
        await asyncio.sleep(0.05)


async def run(*args: str) -> None:
    proc = await asyncio.create_subprocess_exec(*args)
    assert await proc.wait() == 0, args


def last_heartbeat(console: bytes) -> int:
    beats = re.findall(rb"corral-heartbeat (\d+)", console)
    return int(beats[-1]) if beats else 0
