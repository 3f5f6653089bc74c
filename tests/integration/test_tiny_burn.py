"""The tiny guest burns CPU on request: `corral.burn=N` on its kernel command line starts N
busy loops at boot, and `burn N` typed on its serial console sets their number. Measured on
the real QEMU process's CPU time."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import psutil
import pytest
from qemu_fixtures import qemu_run_dir, tiny_images, wait_console

from corral.cluster.models import VMConfig
from corral.qemu.driver import QemuDriver

pytestmark = pytest.mark.integration
__all__ = ["qemu_run_dir", "tiny_images"]  # fixtures used by name

VMID = 100
MEASURE_SECONDS = 4.0
BURNING = 0.3  # cores: one busy loop gives about 1, far less only on a starved machine
IDLE = 0.3


async def cores(pid: int, seconds: float = MEASURE_SECONDS) -> float:
    """CPU seconds per second the process used over `seconds`."""
    proc = psutil.Process(pid)

    def used() -> float:
        t = proc.cpu_times()
        return float(t.user + t.system)

    before, at = used(), time.monotonic()
    await asyncio.sleep(seconds)
    return (used() - before) / (time.monotonic() - at)


async def test_burn_at_boot_and_burn_0_on_the_console(qemu_run_dir: Path,
                                                       tiny_images: Path) -> None:
    driver = QemuDriver(qemu_run_dir, tiny_images, "tcg")
    pid = await driver.start(VMConfig(vmid=VMID, name="burner", memory_mb=96, cores=1,
                                      append="corral.burn=1"), [])
    await wait_console(driver, VMID, rb"corral-burn: 1\r?\n", timeout=60)
    await wait_console(driver, VMID, rb"corral-heartbeat 2\r?\n", timeout=60)
    burning = await cores(pid)
    print(f"burning: {burning:.2f} cores")
    assert burning > BURNING

    reader, writer = await asyncio.open_unix_connection(str(driver.paths(VMID).serial_socket))
    try:
        writer.write(b"\r")  # Enter starts the console's shell
        await writer.drain()
        await wait_console(driver, VMID, rb"tiny# ", timeout=30)
        writer.write(b"burn 0\r")
        await writer.drain()
        await wait_console(driver, VMID, rb"corral-burn: 0\r?\n", timeout=30)
        idle = await cores(pid)
        print(f"after burn 0: {idle:.2f} cores")
        assert idle < IDLE and idle < burning / 2

        writer.write(b"burn x\r")  # a mistake says how it is used and changes nothing
        await writer.drain()
        await wait_console(driver, VMID, rb"usage: burn N", timeout=30)
    finally:
        writer.close()
        reader.feed_eof()
        await driver.stop(VMID)
